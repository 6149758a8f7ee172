"""Quantization-aware training: a thin layer over TF-MOT's `quantize_annotate_model` + `quantize_apply`."""

import numpy as np
import tensorflow_model_optimization as tfmot

from tfcompress._keras import clone_with_weights, ensure_graph_model
from tfcompress.prune import is_pruned
from tfcompress.quantize.cluster import is_clustered

_quantization = tfmot.quantization.keras


def qat(model, *, preserve_sparsity: bool = None, preserve_clusters: bool = False):
    """Returns a quantization-aware copy of `model`, ready to compile and fine-tune.

    Fake-quantization of weights and activations lets training adapt to int8, and the
    ranges it learns are what the int8 export uses. On a pruned model, TF-MOT's
    prune-preserving scheme keeps the zeros at zero: plain QAT would fill them back in.

    Args:
      model: a built Sequential or functional Keras 2 model, pruning wrappers stripped.
      preserve_sparsity: keep exact zeros in the kernels at zero during training. None
        (the default) turns it on when any kernel holds zeros, as a pruned model does.
      preserve_clusters: keep the weight sharing of a clustered model (stripped with
        `tfc.quantize.strip_clustering`): training moves the shared values, not the
        weights one by one (TF-MOT's cluster-preserving QAT).

    Returns:
      A new quantization-aware Keras model (TF-MOT quantize wrappers). It is not
      compiled: compile it, then fit for an epoch or a few at a small learning rate.
      `model` is not modified.

    Raises:
      TypeError: `model` is not a Keras 2 model.
      ValueError: `model` still has pruning or clustering wrappers, is already
        quantization-aware, or is subclassed or unbuilt.

    Example:
      >>> q = tfc.quantize.qat(tfc.prune.strip(pruned))
      >>> q.compile(optimizer=keras.optimizers.Adam(1e-4), loss=loss, metrics=["accuracy"])
      >>> q.fit(x, y, epochs=2)
    """
    ensure_graph_model(model)
    if is_pruned(model):
        raise ValueError(
            "`model` still has pruning wrappers. Strip them first: tfc.quantize.qat(tfc.prune.strip(model))."
        )
    if is_clustered(model):
        raise ValueError(
            "`model` still has clustering wrappers. Strip them first: "
            "tfc.quantize.qat(tfc.quantize.strip_clustering(model), preserve_clusters=True)."
        )
    if is_quantization_aware(model):
        raise ValueError("`model` is already quantization-aware; fine-tune it as it is, or export it.")
    if preserve_sparsity is None:
        preserve_sparsity = _has_zero_weights(model)
    if preserve_clusters:
        scheme = tfmot.experimental.combine.Default8BitClusterPreserveQuantizeScheme(preserve_sparsity)
    elif preserve_sparsity:
        scheme = tfmot.experimental.combine.Default8BitPrunePreserveQuantizeScheme()
    else:
        scheme = _quantization.default_8bit.Default8BitQuantizeScheme()
    annotated = _quantization.quantize_annotate_model(clone_with_weights(model))
    return _quantization.quantize_apply(annotated, scheme)


def is_quantization_aware(model) -> bool:
    """Whether `model` holds TF-MOT quantization wrappers.

    Args:
      model: a Keras 2 model.

    Returns:
      True if any layer is a TF-MOT `QuantizeWrapper`.

    Example:
      >>> is_quantization_aware(tfc.quantize.qat(model))
      True
    """
    return any(isinstance(layer, _quantization.QuantizeWrapper) for layer in model.submodules)


def _has_zero_weights(model) -> bool:
    kernels = [weight for layer in model.layers for weight in layer.trainable_weights if "kernel" in weight.name]
    return any(np.any(np.asarray(kernel) == 0) for kernel in kernels)


# Re-exported so users can load a saved quantization-aware model.
quantize_scope = _quantization.quantize_scope
