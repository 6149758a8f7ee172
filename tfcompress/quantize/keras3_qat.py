"""The Keras 3 engine's quantization-aware training: a Keras 3 copy of the model that trains through int8's rounding.

Keras 3 has no QAT. The copy is rebuilt call by call (`tfcompress._keras3_graph`, nested bases
inlined): each BatchNormalization after a convolution or Dense is folded into it, as the int8
file holds it (any other computes from its moving statistics in two steps, as the file does);
each layer becomes a `QuantizedLayer` whose weights and output pass through fake quantization
(`keras3_quantizers`), except where the converter fuses the next op (a ReLU after a
convolution) or the op keeps its input's scale (pooling by max, reshapes). The TFLite
converter reads every scale from those ops, so the int8 file needs no calibration data. Zeros of
a pruned model stay zero: the model multiplies its kernels by their masks after every step.
"""

import numpy as np
import tensorflow as tf

from tfcompress import _keras3_graph
from tfcompress._keras3 import keras
from tfcompress._keras3_graph import one_or_all
from tfcompress._keras3_layers import static_twin
from tfcompress.data.arrays import input_arrays, input_specs
from tfcompress.quantize.keras3_quantizers import (
    FUSED_ACTIVATIONS,
    PER_CHANNEL,
    PER_TENSOR,
    ActivationQuantizer,
    QuantizedLayer,
    batchnorm_affine,
    two_step,
)

WEIGHTED = PER_CHANNEL + PER_TENSOR
# Layers whose output gets a range of its own (int8 kernels requantize their output).
OUTPUT_QUANTIZED = (
    "ReLU", "LeakyReLU", "PReLU", "ELU", "Softmax", "Activation", "Add", "Subtract", "Multiply", "Average",
    "Maximum", "Minimum", "Concatenate", "GlobalAveragePooling1D", "GlobalAveragePooling2D", "Rescaling",
    "Normalization", "LayerNormalization", "BatchNormalization", "Embedding",
)  # fmt: skip
# Layers that move or select values, whose int8 kernels keep their input's scale; and identities at inference.
SAME_SCALE = (
    "Reshape", "Flatten", "Permute", "RepeatVector", "Identity", "MaxPooling1D", "MaxPooling2D", "AveragePooling1D",
    "AveragePooling2D", "GlobalMaxPooling1D", "GlobalMaxPooling2D", "ZeroPadding1D", "ZeroPadding2D", "Cropping1D",
    "Cropping2D", "UpSampling1D", "UpSampling2D", "Dropout", "SpatialDropout1D", "SpatialDropout2D",
    "GaussianNoise", "GaussianDropout", "AlphaDropout", "ActivityRegularization",
)  # fmt: skip
# Keras 3 operations on tensors that only change their shape.
SHAPE_OPERATIONS = ("Reshape", "ExpandDims", "Squeeze", "Transpose", "Flatten")
# Ops after which the converter fuses a ReLU into the op itself.
FUSES_ACTIVATION = WEIGHTED + ("Add", "Subtract", "Multiply")
_ACTIVATION_LAYERS = ("ReLU", "Activation")


@keras.saving.register_keras_serializable(package="tfcompress")
class QuantizationAwareModel(keras.Model):
    """What `tfc.quantize.qat` returns for a Keras 3 model: quantized layers, and the masks of a pruned model's zeros.

    Compile and fit it as any Keras 3 model, then export it with `tfc.export.to_tflite` (no calibration data
    needed). `float_layers` is empty: every layer is quantized, or `qat` refuses the model.

    Examples:
      >>> q = tfc.quantize.qat(keras3_model, representative_data=x_train[:512])
      >>> q.compile(optimizer=keras.optimizers.Adam(1e-4), loss=loss)
      >>> q.fit(x, y, epochs=2)
    """

    def __init__(self, inputs, outputs, masked_layers=(), name=None, **kwargs):
        super().__init__(inputs, outputs, name=name, **kwargs)
        kernels = [self.get_layer(layer).layer.kernel for layer in masked_layers]
        masks = [self.add_weight(shape=kernel.shape, initializer="ones", trainable=False, name=f"mask_{index}")
                 for index, kernel in enumerate(kernels)]  # fmt: skip
        # Plain data past Keras's attribute tracking; add_weight tracks the masks, so they are saved.
        self.__dict__.update(_masked_layers=list(masked_layers), _kernels=kernels, _masks=masks)

    @property
    def float_layers(self) -> dict:
        """The layers left in float: none in a Keras 3 quantization-aware model."""
        return {}

    def quantizers(self) -> list:
        """Every activation quantizer, in graph order."""
        return [quantizer for layer in self.layers if isinstance(layer, QuantizedLayer)
                for quantizer in layer.quantizers()] + [layer for layer in self.layers
                                                        if isinstance(layer, ActivationQuantizer)]  # fmt: skip

    def keep_zeros(self):
        """Records each masked kernel's zeros as its mask."""
        for kernel, mask in zip(self.__dict__["_kernels"], self.__dict__["_masks"]):
            mask.assign(tf.cast(tf.not_equal(kernel, 0), mask.dtype))

    def train_step(self, data):
        logs = super().train_step(data)
        return {**logs, **self.after_train_step()}

    def after_train_step(self) -> dict:
        """Zeroes the pruned weights again. A `Distiller` training this model calls it too."""
        for kernel, mask in zip(self.__dict__["_kernels"], self.__dict__["_masks"]):
            kernel.assign(kernel * tf.cast(mask, kernel.dtype))
        return {}

    def get_config(self):
        # Keras 3's Functional writes only its name for a subclass with an __init__ of its own: the graph's here.
        config = keras.Model(one_or_all(self.inputs), one_or_all(self.outputs), name=self.name).get_config()
        return {**config, "masked_layers": self.__dict__["_masked_layers"]}

    @classmethod
    def from_config(cls, config, custom_objects=None):
        config = dict(config)
        masked = config.pop("masked_layers")
        functional = keras.Model.from_config(config, custom_objects=custom_objects)
        return cls(
            one_or_all(functional.inputs), one_or_all(functional.outputs), masked_layers=masked, name=functional.name
        )


def qat(model, representative_data=None, preserve_sparsity=None):
    """A quantization-aware Keras 3 copy of `model` (see the module's docstring); `model` is not changed."""
    calls = _keras3_graph.flat_calls(model)
    _check_quantizable(model, calls)
    readers = _keras3_graph.readers(model)
    folded = _foldable_batchnorms(calls, readers)
    folded_away = {id(batchnorm) for batchnorm in folded.values()}
    fused = _feeds_a_fused_activation(calls, readers, folded)
    copies = {}
    weights = []

    def call_copy(call, args, kwargs):
        layer = call.operation
        if id(layer) in folded_away:  # a BatchNormalization folded into the layer before it
            return args[0]
        if not isinstance(layer, keras.layers.Layer):  # a Keras 3 operation: `x / 255.0`
            outputs = layer(*args, **kwargs)
            if type(layer).__name__ in SHAPE_OPERATIONS:
                return outputs
            return _copy_once(copies, id(layer), lambda: ActivationQuantizer(name=f"{layer.name}_quantizer"))(outputs)
        wrapped = _copy_once(copies, id(layer), lambda: _quantized(layer, folded, fused, weights))
        return wrapped(*args, **kwargs)

    rebuilt = _keras3_graph.rebuild(model, call_copy, name=f"{model.name}_quantization_aware",
                                    on_input=_input_quantized)  # fmt: skip
    for layer, values in weights:
        layer.set_weights(values)
    has_zeros = preserve_sparsity if preserve_sparsity is not None else _has_zero_weights(model)
    masked = [layer.name for layer in rebuilt.layers if has_zeros and isinstance(layer, QuantizedLayer)
              and type(layer.layer).__name__ in WEIGHTED]  # fmt: skip
    quantized = QuantizationAwareModel(one_or_all(rebuilt.inputs), one_or_all(rebuilt.outputs), masked_layers=masked,
                                       name=rebuilt.name)  # fmt: skip
    quantized.keep_zeros()
    if representative_data is not None:
        calibrate(quantized, representative_data)
    return quantized


def is_quantization_aware(model) -> bool:
    """Whether `model` is a Keras 3 quantization-aware model."""
    return isinstance(model, QuantizationAwareModel)


def not_finite(model) -> list:
    """The names of the layers whose activation ranges hold NaN or infinity (training diverged there)."""
    ranges = [(quantizer, [float(quantizer.range_min.numpy()), float(quantizer.range_max.numpy())])
              for quantizer in model.quantizers()]  # fmt: skip
    return [quantizer.path.split("/")[0] for quantizer, bounds in ranges if not np.isfinite(bounds).all()]


def calibrate(model, data, examples: int = 512, batch_size: int = 64):
    """Starts every activation range at the float range its input takes on `data` (the first `examples`)."""
    arrays = input_arrays(data, input_specs(model), argument="representative_data")
    arrays = [array[:examples] for array in arrays]
    quantizers = model.quantizers()
    for quantizer in quantizers:
        quantizer.observed = [np.inf, -np.inf]
    try:
        for start in range(0, len(arrays[0]), batch_size):
            batch = [array[start : start + batch_size] for array in arrays]
            model(batch if len(batch) > 1 else batch[0], training=False)
    finally:
        observed = [quantizer.observed for quantizer in quantizers]
        for quantizer in quantizers:
            quantizer.observed = None
    broken = [
        quantizer.name for quantizer, (low, high) in zip(quantizers, observed) if not np.isfinite([low, high]).all()
    ]
    if broken:
        raise ValueError(
            f"Measuring activation ranges on `representative_data` gave NaN or infinity at {broken[:3]}: the "
            "model's activations are not finite there (an untrained keras.applications model's can vanish). Train "
            "the model first, or leave `representative_data` out to start from [-6, 6]."
        )
    for quantizer, (low, high) in zip(quantizers, observed):
        quantizer.range_min.assign(min(low, 0.0))
        quantizer.range_max.assign(max(high, 0.0))


def _check_quantizable(model, calls):
    refused = [f"{call.operation.name!r} ({type(call.operation).__name__})" for call in calls
               if isinstance(call.operation, keras.layers.Layer) and not _known(call.operation)]  # fmt: skip
    if refused:
        raise ValueError(
            f"tfcompress's Keras 3 quantization-aware training has no int8 form for {len(refused)} layers of "
            f"{model.name!r}: {', '.join(refused[:6])}{' ...' if len(refused) > 6 else ''}. Export it post-training "
            "instead (tfc.export.to_tflite(model, path, representative_data=x)), or train it quantization-aware "
            "through TF-MOT, which keeps such layers in float: tfc.quantize.qat(tfc.from_keras3(model))."
        )


def _known(layer) -> bool:
    name = type(layer).__name__
    if not type(layer).__module__.startswith("keras."):
        return False
    if name in WEIGHTED:
        return getattr(layer, "data_format", "channels_last") == "channels_last" and getattr(layer, "groups", 1) == 1
    return name in OUTPUT_QUANTIZED + SAME_SCALE or name.startswith("Random")


def _foldable_batchnorms(calls, readers) -> dict:
    """`{id(weighted layer): BatchNormalization}` for each BatchNormalization that folds into the layer before."""
    producers = {id(tensor): call for call in calls for tensor in call.outputs}
    folded = {}
    for call in calls:
        if type(call.operation).__name__ != "BatchNormalization" or len(call.inputs) != 1:
            continue
        source = producers.get(id(call.inputs[0]))
        last_axis = call.operation.axis in (-1, len(call.outputs[0].shape) - 1)
        if source is None or type(source.operation).__name__ not in WEIGHTED or not last_axis:
            continue
        # The layer's only call, its linear output read by the BatchNormalization alone.
        alone = len(readers.get(id(call.inputs[0]), [])) == 1 and len(_inbound(source.operation)) == 1
        if alone and _activation_name(source.operation) == "linear":
            folded[id(source.operation)] = call.operation
    return folded


def _feeds_a_fused_activation(calls, readers, folded) -> set:
    """Ids of the layers whose output (after a folded BatchNormalization) goes only to a ReLU the converter fuses."""
    by_id = {id(call.operation): call for call in calls}
    fused = set()
    for call in calls:
        if type(call.operation).__name__ not in FUSES_ACTIVATION:
            continue
        output = call.outputs[0]
        if id(call.operation) in folded:  # the BatchNormalization's output stands for the layer's
            output = by_id[id(folded[id(call.operation)])].outputs[0]
        after = readers.get(id(output), [])
        if len(after) == 1 and _is_fused_activation(after[0].operation):
            fused.add(id(call.operation))
    return fused


def _is_fused_activation(operation) -> bool:
    if type(operation).__name__ not in _ACTIVATION_LAYERS:
        return False
    if type(operation).__name__ == "ReLU":
        return operation.negative_slope == 0 and operation.threshold == 0 and operation.max_value in (None, 6)
    return _activation_name(operation) in FUSED_ACTIVATIONS[1:]


def _quantized(layer, folded, fused, weights):
    """The `QuantizedLayer` standing for `layer` in the copy, its weights (folded) queued for after building."""
    name = type(layer).__name__
    config = layer.get_config()
    values = layer.get_weights()
    if id(layer) in folded:
        config["use_bias"] = True
        values = _fold(name, layer, folded[id(layer)])
    copy = static_twin(type(layer).from_config(config))
    copy.trainable = layer.trainable
    if values:
        weights.append((copy, values))
    if name in SAME_SCALE or name.startswith("Random"):
        return copy
    activation = _activation_name(layer) if name in WEIGHTED else "linear"
    in_between = activation not in FUSED_ACTIVATIONS or two_step(layer)  # a range before the activation or offset
    return QuantizedLayer(copy, quantize_output=id(layer) not in fused, quantize_before_activation=in_between)


def _fold(kind, layer, batchnorm):
    """`[kernel, bias]` of `layer` with the BatchNormalization after it folded in (its moving statistics)."""
    kernel = np.asarray(layer.kernel, np.float64)
    bias = np.asarray(layer.bias, np.float64) if layer.use_bias else np.zeros(kernel.shape[-1] * (
        kernel.shape[-2] if kind == "DepthwiseConv2D" else 1))  # fmt: skip
    scale, shift = (np.asarray(values, np.float64) for values in batchnorm_affine(batchnorm))
    if kind == "DepthwiseConv2D":
        kernel = kernel * scale.reshape(kernel.shape[-2], kernel.shape[-1])
    else:
        kernel = kernel * scale
    return [kernel.astype(np.float32), (bias * scale + shift).astype(np.float32)]


def _input_quantized(tensor):
    """A float input through an activation quantizer, from which the converter reads the file's input scale."""
    if "float" not in str(tensor.dtype):  # token ids stay integers
        return tensor
    return ActivationQuantizer(name=f"{tensor._keras_history[0].name}_quantizer")(tensor)  # noqa: SLF001


def _activation_name(layer) -> str:
    activation = getattr(layer, "activation", None)
    return getattr(activation, "__name__", activation if isinstance(activation, str) else "linear") or "linear"


def _inbound(layer):
    return list(getattr(layer, "_inbound_nodes", []))


def _copy_once(copies, key, make):
    if key not in copies:  # a layer called twice stays one layer in the copy
        copies[key] = make()
    return copies[key]


def _has_zero_weights(model) -> bool:
    kernels = [weight for weight in model.trainable_weights if weight.name in ("kernel", "depthwise_kernel")]
    return any(np.any(np.asarray(kernel) == 0) for kernel in kernels)
