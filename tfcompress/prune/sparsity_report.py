"""Counting weights and zeros, layer by layer."""

import warnings

import numpy as np

from tfcompress._model_guards import any_keras_model

_TFMOT = "tensorflow_model_optimization"


def _innermost(layer):
    # TF-MOT's pruning and quantization wrappers hold the real layer in `.layer`; Keras's
    # own wrappers (Bidirectional, TimeDistributed) are the layer the user named.
    while type(layer).__module__.startswith(_TFMOT) and hasattr(layer, "layer"):
        layer = layer.layer
    return layer


def sparsity(model) -> dict:
    """Per-layer parameter counts and sparsity of a plain, pruned or quantization-aware model.

    Counts the trainable weights of each layer (kernels, biases, ...); pruning masks and
    quantizer ranges are not trainable, so they are not counted as parameters.

    Args:
      model: a Keras model, tf_keras or Keras 3.

    Returns:
      A dict: `layers`, a list of `{"layer", "parameters", "zeros", "sparsity"}` for each
      layer with weights; and the totals `parameters`, `nonzero_parameters`, `sparsity`.

    Raises:
      TypeError: `model` is not a Keras model.

    Examples:
      >>> tfc.prune.sparsity(small)["sparsity"]
      0.798  # the demo's student at 80%: biases are not pruned
    """
    model = any_keras_model(model)
    rows = []
    for layer in model.layers:
        # A wrapper's trainable weights are its layer's; its masks and ranges are not trainable.
        weights = [np.asarray(weight) for weight in layer.trainable_weights]
        if not weights:
            continue
        parameters = sum(weight.size for weight in weights)
        zeros = sum(int(np.sum(weight == 0)) for weight in weights)
        rows.append(
            {"layer": _innermost(layer).name, "parameters": parameters, "zeros": zeros, "sparsity": zeros / parameters}
        )
    total = sum(row["parameters"] for row in rows)
    zeros = sum(row["zeros"] for row in rows)
    return {
        "layers": rows,
        "parameters": total,
        "nonzero_parameters": total - zeros,
        "sparsity": zeros / total if total else 0.0,
    }


def report(model) -> dict:
    """Deprecated: `sparsity` under its old name, kept for one release.

    Examples:
      >>> tfc.prune.sparsity(small)   # instead of tfc.prune.report(small)
    """
    warnings.warn(
        "tfc.prune.report is now tfc.prune.sparsity; the old name goes in the next release.",
        DeprecationWarning,
        stacklevel=2,
    )
    return sparsity(model)
