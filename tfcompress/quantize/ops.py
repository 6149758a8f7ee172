"""Layers rewritten so that TF-MOT's quantization wrapper can hold them, computing exactly the same.

`x + 3.0` in a functional model (MobileNetV3's hard-swish, `preprocess_input`) becomes a
TFOpLambda layer whose constant is a call argument. TF-MOT's wrappers call the layer with
its input alone, so the constant is lost and QAT fails. Before QAT, such an op becomes a
`ScalarArithmetic` layer holding its constant, and an op on two tensors becomes Keras's
Add, Subtract or Multiply layer. A MultiHeadAttention becomes `WrappableMultiHeadAttention`,
whose output shape the wrapper can ask from the query's shape alone. A Rescaling with an
offset and a Normalization are two operations each (scale then shift), and the value
between them would have no int8 range (the converter then leaves both in float): each
becomes two `ScalarArithmetic` layers, each with its own range. A BatchNormalization that
stands alone (no convolution to fold into) becomes, on images, the one op that computes it:
a 1x1 DepthwiseConv2D, its scale and shift per channel, still trainable.
"""

import numbers

import numpy as np
import tensorflow as tf

from tfcompress._graph import is_keras_tensor
from tfcompress._keras import keras

_OPERATIONS = {
    "add": tf.math.add,
    "subtract": tf.math.subtract,
    "multiply": tf.math.multiply,
    "divide": tf.math.truediv,
}
# TFOpLambda's `symbol` for each operation (operators and their tf.math names).
_SYMBOLS = {
    "__operators__.add": "add",
    "math.add": "add",
    "math.add_v2": "add",
    "math.subtract": "subtract",
    "math.multiply": "multiply",
    "math.truediv": "divide",
    "math.divide": "divide",
}
_MERGE_LAYERS = {"add": keras.layers.Add, "subtract": keras.layers.Subtract, "multiply": keras.layers.Multiply}


@keras.utils.register_keras_serializable(package="tfcompress")
class ScalarArithmetic(keras.layers.Layer):
    """`inputs <operation> constant` (or `constant <operation> inputs`) as a layer with its constant in the config.

    Args:
      operation: "add", "subtract", "multiply" or "divide".
      constant: a number, or a list of numbers, one per channel (the last axis).
      constant_first: compute `constant <operation> inputs`.
      **kwargs: Keras layer arguments (`name`, ...).

    Examples:
      >>> ScalarArithmetic("add", 3.0)(x)   # x + 3.0, as in MobileNetV3's hard-sigmoid
    """

    def __init__(self, operation, constant, constant_first=False, **kwargs):
        super().__init__(**kwargs)
        if operation not in _OPERATIONS:
            raise ValueError(f"`operation` must be one of {sorted(_OPERATIONS)}. Received: operation={operation!r}")
        constant = [float(value) for value in constant] if isinstance(constant, (list, tuple)) else float(constant)
        self.operation, self.constant, self.constant_first = operation, constant, constant_first

    def call(self, inputs):
        """Applies the operation."""
        constant = tf.cast(self.constant, inputs.dtype)
        operands = (constant, inputs) if self.constant_first else (inputs, constant)
        return _OPERATIONS[self.operation](*operands)

    def get_config(self):
        """The constructor arguments."""
        return {
            **super().get_config(),
            "operation": self.operation,
            "constant": self.constant,
            "constant_first": self.constant_first,
        }


@keras.utils.register_keras_serializable(package="tfcompress")
class WrappableMultiHeadAttention(keras.layers.MultiHeadAttention):
    """Keras's MultiHeadAttention, whose output shape follows from the query's shape alone.

    TF-MOT's QuantizeWrapper asks its layer for the output shape with one input shape;
    Keras's layer insists on the value's shape too, although the output is query-shaped.

    Examples:
      >>> WrappableMultiHeadAttention.from_config(attention.get_config())
    """

    def compute_output_shape(self, query_shape, value_shape=None, key_shape=None):
        """The query's shape, with the last axis the output's width."""
        query_shape = tf.TensorShape(query_shape)
        return query_shape[:-1].concatenate(self._output_shape) if self._output_shape else query_shape


def wrappable(layer, args, kwargs):
    """For `flat_copy`'s `substitute`: `layer` as a layer TF-MOT can wrap, or None to keep it."""
    if type(layer) is keras.layers.MultiHeadAttention:
        return WrappableMultiHeadAttention.from_config(layer.get_config()), args, kwargs
    steps = _affine_steps(layer)
    if steps:
        return steps, args, kwargs
    if type(layer).__name__ != "TFOpLambda" or layer.symbol not in _SYMBOLS:
        return None
    operation = _SYMBOLS[layer.symbol]
    operands = list(args) + [value for key, value in kwargs.items() if key in ("y", "x")]
    if len(operands) != 2 or any(key not in ("x", "y", "name") for key in kwargs):
        return None
    tensors = [is_keras_tensor(operand) for operand in operands]
    if all(tensors) and operation in _MERGE_LAYERS:
        return _MERGE_LAYERS[operation](name=layer.name), ([operands[0], operands[1]],), {}
    if tensors.count(True) == 1 and isinstance(operands[tensors.index(False)], numbers.Real):
        constant_first = not tensors[0]
        constant = operands[0 if constant_first else 1]
        replacement = ScalarArithmetic(operation, constant, constant_first=constant_first, name=layer.name)
        return replacement, (operands[1 if constant_first else 0],), {}
    return None


def _affine_steps(layer):
    """A Rescaling with an offset, or a Normalization of the last axis, as two `ScalarArithmetic` layers; else None."""
    if type(layer) is keras.layers.Rescaling and np.any(np.asarray(layer.offset) != 0):
        scale, offset = _per_channel(layer.scale), _per_channel(layer.offset)
        first = ("multiply", scale)
        second = ("add", offset)
    elif type(layer) is keras.layers.Normalization and not layer.invert and _last_axis_only(layer):
        # As Keras computes it: (x - mean) / max(sqrt(variance), epsilon).
        deviation = np.maximum(np.sqrt(np.asarray(layer.variance, np.float64)), keras.backend.epsilon())
        first = ("subtract", _per_channel(np.asarray(layer.mean)))
        second = ("divide", _per_channel(deviation))
    else:
        return None
    return [
        ScalarArithmetic(first[0], first[1], name=layer.name),
        ScalarArithmetic(second[0], second[1], name=f"{layer.name}_{second[0]}"),
    ]


def _per_channel(value):
    """A number, or one per channel as a list, from a Keras layer's constant (a scalar or a broadcast array)."""
    value = np.asarray(value, np.float64).reshape(-1)
    return float(value[0]) if value.size == 1 else [float(item) for item in value]


def _last_axis_only(layer) -> bool:
    axis = layer.axis if isinstance(layer.axis, (list, tuple)) else (layer.axis,)
    return list(axis) in ([-1], [len(layer.input_shape) - 1])


def as_depthwise(layer):
    """A BatchNormalization of image channels as a 1x1 DepthwiseConv2D computing the same (inference); else None."""
    axis = layer.axis if isinstance(layer.axis, (list, tuple)) else [layer.axis]
    if len(layer.input_shape) != 4 or list(axis) not in ([-1], [3]):
        return None
    scale = np.ones(layer.input_shape[-1]) if layer.gamma is None else np.asarray(layer.gamma, np.float64)
    scale = scale / np.sqrt(np.asarray(layer.moving_variance, np.float64) + layer.epsilon)
    shift = -np.asarray(layer.moving_mean, np.float64) * scale
    shift = shift if layer.beta is None else shift + np.asarray(layer.beta, np.float64)
    return keras.layers.DepthwiseConv2D(
        1,
        name=layer.name,
        depthwise_initializer=keras.initializers.Constant(scale.reshape(1, 1, -1, 1).tolist()),
        bias_initializer=keras.initializers.Constant(shift.tolist()),
        trainable=layer.trainable,
    )
