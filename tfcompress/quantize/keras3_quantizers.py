"""Keras 3 layers that train through int8's rounding, with fake quantization the TFLite converter makes int8 kernels of.

`keras.quantizers.fake_quant_with_min_max_vars` lowers to TensorFlow's FakeQuant ops, from
which the converter reads every int8 scale: weights symmetric in [-127, 127] (per output channel
for convolutions, per tensor for Dense, as the converter takes them), activations asymmetric in
[-128, 127] over a range learned as TF-MOT learns it, a moving average of each batch's min and max.
"""

import inspect

import numpy as np
import tensorflow as tf

from tfcompress._keras3 import keras

# TF-MOT's MovingAverageQuantizer: the decay of its ranges' moving average, and the range it starts from.
EMA_DECAY = 0.999
INITIAL_RANGE = (-6.0, 6.0)
# Layers whose weights are fake-quantized, and how the converter quantizes them: per output channel, or per tensor
# (Dense; and Conv1D, whose per-channel kernel the converter fails to reshape into its CONV_2D).
PER_CHANNEL = ("Conv2D", "DepthwiseConv2D")
PER_TENSOR = ("Dense", "Conv1D")
# Activations the converter fuses into the op before them, so only their output needs a range.
FUSED_ACTIVATIONS = ("linear", "relu", "relu6")


@keras.saving.register_keras_serializable(package="tfcompress")
class ActivationQuantizer(keras.layers.Layer):
    """Fake-quantizes its input to int8 over a range it learns: a moving average of each training batch's min and max.

    Args:
      initial_range: the range it starts from, before calibration or training.
      **kwargs: passed to `keras.layers.Layer`.
    """

    def __init__(self, initial_range=INITIAL_RANGE, **kwargs):
        super().__init__(**kwargs)
        self.initial_range = tuple(float(bound) for bound in initial_range)
        self.observed = None  # set to [min, max] while calibration observes float values

    def build(self, input_shape):
        low, high = self.initial_range
        self.range_min = self.add_weight(shape=(), initializer=keras.initializers.Constant(low), trainable=False,
                                         name="range_min")  # fmt: skip
        self.range_max = self.add_weight(shape=(), initializer=keras.initializers.Constant(high), trainable=False,
                                         name="range_max")  # fmt: skip

    def call(self, inputs, training=None):
        if self.observed is not None:  # calibration: the float values pass, their range is kept
            low, high = float(tf.reduce_min(inputs)), float(tf.reduce_max(inputs))
            self.observed = [min(self.observed[0], low), max(self.observed[1], high)]
            return inputs
        if training:
            values = tf.cast(inputs, tf.float32)
            for variable, batch in ((self.range_min, tf.reduce_min(values)), (self.range_max, tf.reduce_max(values))):
                variable.assign(variable * EMA_DECAY + batch * (1.0 - EMA_DECAY))
        low, high = tf.minimum(self.range_min, 0.0), tf.maximum(self.range_max, 0.0)
        quantized = keras.quantizers.fake_quant_with_min_max_vars(tf.cast(inputs, tf.float32), low, high, num_bits=8)
        return tf.cast(quantized, inputs.dtype)

    def compute_output_shape(self, input_shape):
        # Said, not traced: Keras 3 marks `x * 0.5`'s output sparse, and tracing would hand call a SparseTensor.
        return input_shape

    def get_config(self):
        return {**super().get_config(), "initial_range": list(self.initial_range)}


def fake_quant_weights(kind: str, kernel):
    """`kernel` through int8's symmetric grid, as the converter stores it: per output channel, or per tensor."""
    values = tf.cast(kernel, tf.float32)
    if kind in PER_TENSOR:
        largest = tf.maximum(tf.reduce_max(tf.abs(values)), 1e-12)
        return keras.quantizers.fake_quant_with_min_max_vars(values, -largest, largest, num_bits=8, narrow_range=True)
    # A depthwise kernel (h, w, in, multiplier) has one channel per input channel and multiplier.
    channels = tf.reshape(values, list(values.shape[:-2]) + [-1]) if kind == "DepthwiseConv2D" else values
    largest = tf.maximum(tf.reduce_max(tf.abs(channels), axis=list(range(channels.shape.rank - 1))), 1e-12)
    quantized = keras.quantizers.fake_quant_with_min_max_vars(
        channels, -largest, largest, num_bits=8, narrow_range=True, axis=-1
    )
    return tf.reshape(quantized, values.shape)


@keras.saving.register_keras_serializable(package="tfcompress")
class QuantizedLayer(keras.layers.Wrapper):
    """A layer of a Keras 3 quantization-aware model: its weights and output fake-quantized as int8 will hold them.

    Args:
      layer: the layer, which keeps its name, weights and trainability.
      quantize_output: learn a range for the output (False where the converter fuses the next op into this one,
        or where the op keeps its input's scale).
      quantize_before_activation: learn a range for the output before an activation the converter does not fuse.
      **kwargs: passed to `keras.layers.Wrapper`.
    """

    def __init__(self, layer, quantize_output=True, quantize_before_activation=False, **kwargs):
        super().__init__(layer, name=kwargs.pop("name", layer.name), **kwargs)
        self.quantize_output = quantize_output
        self.quantize_before_activation = quantize_before_activation
        self.output_quantizer = ActivationQuantizer(name="output_quantizer") if quantize_output else None
        self.activation_input_quantizer = (
            ActivationQuantizer(name="activation_input_quantizer") if quantize_before_activation else None
        )

    def build(self, input_shape):
        if not self.layer.built:
            self.layer.build(input_shape)
        self.built = True

    def call(self, inputs, training=None, mask=None):
        kind = type(self.layer).__name__
        given = {"mask": mask} if mask is not None and "mask" in _call_arguments(self.layer) else {}
        if kind in PER_CHANNEL + PER_TENSOR:
            outputs = _linear(self.layer, kind, inputs)
            if self.activation_input_quantizer is not None:
                outputs = self.activation_input_quantizer(outputs, training=training)
            outputs = activate(self.layer.activation, outputs)
        elif kind == "Activation":
            outputs = activate(self.layer.activation, inputs)
        elif self.activation_input_quantizer is not None:  # preprocessing in two steps: each gets a range
            outputs = _two_steps(self.layer, kind, inputs, lambda values: self.activation_input_quantizer(
                values, training=training))  # fmt: skip
        elif "training" in _call_arguments(self.layer):
            outputs = self.layer(inputs, training=training, **given)
        else:
            outputs = self.layer(inputs, **given)
        if self.output_quantizer is not None:
            outputs = self.output_quantizer(outputs, training=training)
        return outputs

    def quantizers(self) -> list:
        """Its activation quantizers."""
        return [quantizer for quantizer in (self.activation_input_quantizer, self.output_quantizer) if quantizer]

    def get_config(self):
        return {**super().get_config(), "quantize_output": self.quantize_output,
                "quantize_before_activation": self.quantize_before_activation}  # fmt: skip


def _linear(layer, kind, inputs):
    """What `layer` computes before its activation, with its kernel fake-quantized."""
    kernel = fake_quant_weights(kind, layer.kernel)
    if kind == "Dense":
        outputs = keras.ops.matmul(inputs, kernel)
    elif kind == "DepthwiseConv2D":
        outputs = keras.ops.depthwise_conv(
            inputs, kernel, strides=layer.strides, padding=layer.padding, dilation_rate=layer.dilation_rate,
            data_format=layer.data_format,
        )  # fmt: skip
    else:
        outputs = layer.convolution_op(inputs, kernel)
    return keras.ops.add(outputs, layer.bias) if layer.use_bias else outputs


# TFLite's int8 LOGISTIC writes its output on a fixed grid, 1/256 from 0 (zero point -128): the sigmoid of swish
# too, so a model of many swishes (EfficientNet) drifts from its float twin unless training sees that grid.
_LOGISTIC_GRID = (0.0, 255.0 / 256.0)


def activate(activation, values):
    """`activation(values)`, with a sigmoid's output (alone, or inside swish) on the grid int8 LOGISTIC writes."""
    name = getattr(activation, "__name__", "")
    if name not in ("sigmoid", "silu", "swish"):
        return activation(values)
    gate = keras.quantizers.fake_quant_with_min_max_vars(keras.ops.sigmoid(values), *_LOGISTIC_GRID, num_bits=8)
    return gate if name == "sigmoid" else values * gate


def two_step(layer) -> bool:
    """Whether `layer` computes in two arithmetic steps whose intermediate the converter needs a range for."""
    kind = type(layer).__name__
    if kind == "Rescaling":
        return bool(np.any(np.asarray(layer.offset) != 0))
    return kind == "BatchNormalization" or (kind == "Normalization" and not layer.invert)


def _two_steps(layer, kind, inputs, quantize):
    """A `Rescaling` with an offset (x * scale + offset), a `Normalization` ((x - mean) / std) or a
    `BatchNormalization` not folded into a layer before it (x * multiplier + shift, as the converter writes it), the
    first step's result through `quantize`."""
    values = keras.ops.cast(inputs, layer.compute_dtype)
    if kind == "Rescaling":
        return quantize(values * keras.ops.cast(layer.scale, values.dtype)) + keras.ops.cast(layer.offset, values.dtype)
    if kind == "BatchNormalization":
        # Its moving statistics in training too: the int8 file computes with them, and QAT fine-tunes a trained model.
        multiplier, shift = batchnorm_affine(layer)
        shape = [1] * len(values.shape)
        shape[layer.axis] = -1
        multiplier, shift = keras.ops.reshape(multiplier, shape), keras.ops.reshape(shift, shape)
        return quantize(values * keras.ops.cast(multiplier, values.dtype)) + keras.ops.cast(shift, values.dtype)
    centred = quantize(values - layer.mean)
    return centred / keras.ops.maximum(keras.ops.sqrt(layer.variance), keras.config.epsilon())


def batchnorm_affine(batchnorm):
    """`(multiplier, shift)` of a Keras 3 BatchNormalization at inference: x * multiplier + shift, per channel."""
    multiplier = keras.ops.rsqrt(batchnorm.moving_variance + batchnorm.epsilon)
    if batchnorm.gamma is not None:
        multiplier = multiplier * batchnorm.gamma
    shift = -batchnorm.moving_mean * multiplier
    if batchnorm.beta is not None:
        shift = shift + batchnorm.beta
    return multiplier, shift


def _call_arguments(layer):
    return inspect.signature(layer.call).parameters
