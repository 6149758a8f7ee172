"""Quantization-aware training over TF-MOT: each layer annotated on its own, then `quantize_apply`.

TF-MOT's `quantize_model` annotates every layer and fails on the first one it has no
config for, and on any nested model. Here the model is flattened, TensorFlow-op layers
become layers TF-MOT can wrap, each layer is annotated with TF-MOT's config or one of
tfcompress's (see `configs`), and the layers neither has stay in float, named in a warning.
"""

import collections
import warnings

import numpy as np

from tfcompress import _errors
from tfcompress._graph import calls, flat_copy
from tfcompress._keras import keras, tfmot
from tfcompress._keras3 import is_keras3_model
from tfcompress._model_guards import graph_model
from tfcompress.prune import is_pruned
from tfcompress.quantize import configs, keras3_qat, ops, ranges
from tfcompress.quantize.clustering import is_clustered

_quantization = tfmot.quantization.keras


# The reason `QuantizationAwareModel.float_layers` gives for a layer the caller chose to keep in float.
REQUESTED = "kept in float as asked (float_layers)"
# ... and for a layer without weights between the input and such a layer (preprocess_input's arithmetic): were it
# quantized, the converter would see int8 on both sides of the float layer and quantize that layer too.
BEFORE_FLOAT = "kept in float: it only carries the input to a float layer"


def qat(model, *, representative_data=None, preserve_sparsity: bool = None, preserve_clusters: bool = False,
        float_layers=None):  # fmt: skip
    """Returns a quantization-aware copy of `model`, in `model`'s Keras, ready to compile and fine-tune.

    The int8 export uses the ranges it learns; on a pruned model the zeros stay zero. A tf_keras model goes through
    TF-MOT: nested bases, TensorFlow arithmetic and the layers TF-MOT lacks are handled, and what has no
    quantization-aware form (LSTM, GRU, custom layers) stays float, named in a warning. A Keras 3 model gets
    tfcompress's own fake quantization (BatchNormalization folded, every layer quantized), or a refusal that names
    the layers it has no int8 form for. The quantization guide lists what each layer gets.

    Args:
      model: a built Sequential or functional model (tf_keras or Keras 3), pruning wrappers stripped.
      representative_data: typical inputs (the first 512 are used): activation ranges start from theirs instead of
        TF-MOT's [-6, 6]. Recommended for short fine-tunes.
      preserve_sparsity: keep zeros in the kernels at zero; None turns it on when any kernel holds zeros.
      preserve_clusters: keep the weight sharing of a clustered, stripped model (cluster-preserving QAT); tf_keras.
      float_layers: names of layers at the model's input or output to keep float ("first", "last" allowed);
        export the result without `representative_data`; tf_keras.

    Returns:
      A new quantization-aware model of `model`'s Keras: a `QuantizationAwareModel` of TF-MOT wrappers, or a Keras 3
      one of quantized layers. It is not compiled: compile it, then fit for an epoch or a few at a small learning
      rate. `model` is not modified. Its `float_layers` maps each layer left in float to the reason.

    Raises:
      TypeError: `model` is not a Keras model.
      ValueError: `model` still has pruning or clustering wrappers, is already
        quantization-aware, or is subclassed or unbuilt; `representative_data` does not
        fit its inputs, or measuring ranges on it gave NaN (activations that vanish, as
        in an untrained keras.applications model); `float_layers` names a layer the
        model does not have; a Keras 3 model has a layer without an int8 form here, or is
        given a tf_keras-only option.

    Examples:
      >>> q = tfc.quantize.qat(tfc.prune.strip(pruned), representative_data=x_train)
      >>> q.compile(optimizer=keras.optimizers.Adam(1e-4), loss=loss, metrics=["accuracy"])
      >>> q.fit(x, y, epochs=2)
    """
    model = graph_model(model)
    if is_keras3_model(model):
        return _keras3_qat(model, representative_data, preserve_sparsity, preserve_clusters, float_layers)
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
    flat = flat_copy(model, substitute=ops.wrappable)
    keep_float = _checked_float_layers(flat, float_layers)
    try:
        quantized = _quantization_aware(model, flat, scheme, keep_float)
    except (ValueError, RuntimeError, TypeError, AttributeError, KeyError) as error:
        raise _errors.retold(
            f"TF-MOT could not make {model.name!r} quantization-aware",
            error,
            flat,
            "Export it post-training instead (tfc.export.to_tflite with representative_data), or replace that "
            "layer with built-in Keras layers.",
        ) from error
    if representative_data is not None:
        ranges.initialize_ranges(quantized, representative_data)
    return quantized


def _keras3_qat(model, representative_data, preserve_sparsity, preserve_clusters, float_layers):
    """The Keras 3 engine's `qat`, after the checks both engines share."""
    given = {name: value for name, value in (("preserve_clusters", preserve_clusters),
                                             ("float_layers", float_layers)) if value}  # fmt: skip
    if given:
        raise ValueError(
            f"{sorted(given)} work in TF-MOT's quantization-aware training, which takes tf_keras models; "
            f"{model.name!r} is a Keras 3 model, whose quantization-aware copy quantizes every layer. Leave them out, "
            "or train through TF-MOT: tfc.quantize.qat(tfc.from_keras3(model), ...)."
        )
    if is_pruned(model):
        raise ValueError(
            "`model` is still being pruned: its masks come off with tfc.prune.strip. Strip them first: "
            "tfc.quantize.qat(tfc.prune.strip(model))."
        )
    if is_quantization_aware(model):
        raise ValueError("`model` is already quantization-aware; fine-tune it as it is, or export it.")
    return keras3_qat.qat(model, representative_data, preserve_sparsity)


def _checked_float_layers(flat, float_layers) -> set:
    """The layer names `float_layers` asks to keep in float ("first"/"last" resolved), each checked to be in `flat`."""
    if float_layers is None:
        return set()
    if isinstance(float_layers, str) or not all(isinstance(name, str) for name in float_layers):
        raise ValueError(
            f"`float_layers` must be a list of layer names, e.g. float_layers=['first']. Received: {float_layers!r}"
        )
    names = [layer.name for layer in flat.layers if layer.weights]
    ends = {"first": names[:1], "last": names[-1:]}
    missing = [name for name in float_layers if name not in names and not ends.get(name)]
    if missing:
        raise ValueError(
            f"`float_layers` names layers {missing} that {flat.name!r} does not have. Layers with weights "
            f"(nested models flattened): {names[:12]}{' ...' if len(names) > 12 else ''}, or 'first' and 'last'."
        )
    return {resolved for name in float_layers for resolved in ends.get(name, [name])}


def requested_float_layers(model) -> list:
    """The layers of a `qat` model kept in float because `float_layers` named them (or followed one)."""
    reasons = getattr(model, "float_layers", None) if isinstance(model, QuantizationAwareModel) else None
    return [name for name, why in (reasons or {}).items() if why == REQUESTED]


def _quantization_aware(model, flat, scheme, keep_float):
    """TF-MOT's quantization-aware copy of `flat`, annotated layer by layer, and the warning for float layers."""
    annotated, left_in_float = _annotate(flat, scheme.get_quantize_registry(), keep_float)
    if not any(isinstance(layer, _quantization.QuantizeWrapper) for layer in annotated.layers) and not any(
        type(layer).__name__ == "QuantizeAnnotate" for layer in annotated.layers
    ):
        reasons = "; ".join(f"{name!r}: {why}" for name, why in left_in_float.items())
        raise ValueError(f"{model.name!r} has no layer quantization-aware training can quantize ({reasons}).")
    with _quantization.quantize_scope():
        applied = _quantization.quantize_apply(annotated, _KeepIntegerInputs(scheme))
    quantized = QuantizationAwareModel(inputs=applied.inputs, outputs=applied.outputs, name=applied.name)
    unasked = {name: why for name, why in left_in_float.items() if why not in (REQUESTED, BEFORE_FLOAT)}
    if unasked:
        names = _errors.first_few((f"{name!r} ({why})" for name, why in unasked.items()), 5)
        warnings.warn(
            f"{len(unasked)} layers of {model.name!r} stay in float during quantization-aware training: "
            f"{names}. The int8 export quantizes them from representative_data after training "
            "(pass it to tfc.export.to_tflite); the rest of the model trains quantization-aware.",
            stacklevel=2,
        )
    quantized.__dict__["_float_layers"] = left_in_float  # set past Keras's attribute tracking: plain data
    return quantized


def _annotate(model, registry, keep_float):
    """`model` with each layer annotated for TF-MOT, and `{layer name: why}` for those left in float."""
    inbound = {call.layer.name: [tensor._keras_history.layer for tensor in call.inputs] for call in calls(model)}
    readers = collections.Counter(source.name for sources in inbound.values() for source in sources)
    left_in_float = {}
    carriers = _between_input_and(keep_float, inbound)

    def annotate(layer):
        if isinstance(layer, keras.layers.InputLayer):
            return layer
        sources = inbound.get(layer.name, [])
        # A BatchNormalization after a float layer is folded into it, so it stays float with it.
        follows = isinstance(layer, keras.layers.BatchNormalization) and {s.name for s in sources} & keep_float
        if layer.name in keep_float or follows:
            left_in_float[layer.name] = REQUESTED
            return layer
        if layer.name in carriers:
            left_in_float[layer.name] = BEFORE_FLOAT
            return layer
        config, reason = configs.config_for(layer, registry, sources, readers)
        if config is None:
            left_in_float[layer.name] = reason
            return layer
        if isinstance(layer, keras.layers.BatchNormalization) and config != "default":  # not folded: stands alone
            layer, config = ops.as_depthwise(layer) or layer, "default"
        return _quantization.quantize_annotate_layer(layer, None if config == "default" else config)

    return keras.models.clone_model(model, clone_function=annotate), left_in_float


def _between_input_and(keep_float, inbound) -> set:
    """Names of the weightless layers through which the input reaches a float layer, when only such layers lie there."""
    carriers = set()
    for name in keep_float:
        stack, seen = list(inbound.get(name, [])), set()
        while stack:
            layer = stack.pop()
            if isinstance(layer, keras.layers.InputLayer) or layer.name in seen or layer.name in keep_float:
                continue
            if layer.weights:  # an int8 layer before it: the float layer sits inside the graph, not at its input
                seen = set()
                break
            seen.add(layer.name)
            stack += inbound.get(layer.name, [])
        carriers |= seen
    return carriers


def is_quantization_aware(model) -> bool:
    """Whether `model` is quantization-aware: it holds TF-MOT quantization wrappers, or is a Keras 3 one of `qat`.

    Args:
      model: a Keras model.

    Returns:
      True for what `qat` returns.

    Examples:
      >>> is_quantization_aware(tfc.quantize.qat(model))
      True
    """
    if is_keras3_model(model):
        return keras3_qat.is_quantization_aware(model)
    return any(isinstance(layer, _quantization.QuantizeWrapper) for layer in model.submodules)


def not_finite_ranges(model) -> list:
    """The layers of a quantization-aware model (either Keras) whose ranges hold NaN or infinity."""
    return keras3_qat.not_finite(model) if is_keras3_model(model) else ranges.not_finite(model)


def _has_zero_weights(model) -> bool:
    kernels = [weight for layer in model.layers for weight in layer.trainable_weights if "kernel" in weight.name]
    return any(np.any(np.asarray(kernel) == 0) for kernel in kernels)


def quantize_scope(*args):
    """A scope in which a saved quantization-aware `tf_keras` model loads: TF-MOT's objects and tfcompress's.

    A Keras 3 one needs no scope: its classes register with Keras 3 when `tfc.quantize` is imported.

    Args:
      *args: dicts of further custom objects, as for TF-MOT's `quantize_scope`.

    Returns:
      A context manager.

    Examples:
      >>> with tfc.quantize.quantize_scope():
      ...     model = keras.models.load_model("qat.h5")
    """
    ours = {
        "QuantizationAwareModel": QuantizationAwareModel,
        "LayerQuantizeConfig": configs.LayerQuantizeConfig,
        "ScalarArithmetic": ops.ScalarArithmetic,
        "WrappableMultiHeadAttention": ops.WrappableMultiHeadAttention,
    }
    return _quantization.quantize_scope(ours, *args)


@keras.utils.register_keras_serializable(package="tfcompress")
class QuantizationAwareModel(keras.Model):
    """The model `qat` returns: TF-MOT's quantization-aware model, in which frozen layers stay frozen.

    TF-MOT's wrapper lists every weight it fake-quantizes among its trainable weights,
    whatever the layer's `trainable`, so `fit` would train a frozen base. Here those
    weights count as non-trainable: the optimizer leaves them alone, and `weights`,
    `get_weights` and saving still hold them.

    Attributes:
      float_layers: `{layer name: why}` for the layers left in float.

    Examples:
      >>> q = tfc.quantize.qat(transfer_model)        # its base frozen
      >>> len(q.trainable_weights) == 2                 # the head's kernel and bias
    """

    @property
    def trainable_weights(self):
        frozen = self._frozen_ids()
        return [weight for weight in super().trainable_weights if id(weight) not in frozen]

    @property
    def non_trainable_weights(self):
        frozen = self._frozen_ids()
        extra = [weight for weight in super().trainable_weights if id(weight) in frozen]
        return super().non_trainable_weights + extra

    @property
    def float_layers(self) -> dict:
        """The layers left in float: `{layer name: why}`."""
        return dict(self.__dict__.get("_float_layers", {}))

    def _frozen_ids(self) -> set:
        return {
            id(weight)
            for layer in self.layers
            if isinstance(layer, _quantization.QuantizeWrapper) and not layer.layer.trainable
            for weight in layer.trainable_weights
        }


class _KeepIntegerInputs(_quantization.QuantizeScheme):
    """A quantization scheme that never fake-quantizes an integer input (token ids), and is otherwise `scheme`.

    TF-MOT's layout step puts a quantizer after every input that feeds a quantized layer;
    on int32 token ids it fails with a TypeError. Integer inputs are kept out of that step.
    """

    def __init__(self, scheme):
        self._scheme = scheme

    def get_layout_transformer(self):
        return _IntegerInputsLayout(self._scheme.get_layout_transformer())

    def get_quantize_registry(self):
        return self._scheme.get_quantize_registry()


class _IntegerInputsLayout(_quantization.QuantizeLayoutTransform):
    def __init__(self, layout):
        self._layout = layout

    def apply(self, model, layer_quantize_map):
        integer_inputs = [
            layer.name
            for layer in model.layers
            if isinstance(layer, keras.layers.InputLayer) and layer.output.dtype.is_integer
        ]
        kept = {name: entry for name, entry in layer_quantize_map.items() if name not in integer_inputs}
        return self._layout.apply(model, kept)
