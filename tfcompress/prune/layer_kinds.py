"""How channel pruning treats each kind of layer: what it does to channels, and how its weights are cut.

Every layer plays one role on the channels (the last axis) of the tensors it reads and
writes:
- "produce": makes a new channel space, which can be pruned (Conv, Dense, Embedding,
  recurrent layers, MultiHeadAttention's output); its kernel reads the input channels;
- "follow": weights per input channel, output channels as the input's
  (BatchNormalization, depthwise convolutions, Normalization);
- "pass": no weights, channel i stays channel i (activations, pooling, padding, dropout,
  unit-axis reshapes, arithmetic with a constant, augmentation and resizing);
- "fix": like "pass", but it mixes its input's channels without weights to cut them by
  (LayerNormalization, softmax), so they must all stay;
- "merge" (element-wise over several inputs), "concatenate", "flatten".
Anything else is unsupported, with a reason.
"""

import numpy as np

from tfcompress import _augmentation
from tfcompress._keras import keras

_L = keras.layers
_CONVOLUTIONS = (_L.Conv1D, _L.Conv2D, _L.Conv3D)  # transposed and depthwise ones subclass these
_TRANSPOSED = (_L.Conv1DTranspose, _L.Conv2DTranspose, _L.Conv3DTranspose)
_DEPTHWISE = (_L.DepthwiseConv1D, _L.DepthwiseConv2D)
_SEPARABLE = (_L.SeparableConv1D, _L.SeparableConv2D)
_RECURRENT = (_L.LSTM, _L.GRU, _L.SimpleRNN)
_GATES = {_L.LSTM: 4, _L.GRU: 3, _L.SimpleRNN: 1}
PRODUCERS = (_L.Dense, _L.Embedding, _L.MultiHeadAttention, _L.Bidirectional) + _SEPARABLE + _CONVOLUTIONS + _RECURRENT
_FOLLOW = (_L.BatchNormalization, _L.Normalization) + _DEPTHWISE
_PASS = (
    _L.InputLayer,
    _L.Activation,
    _L.ReLU,
    _L.LeakyReLU,
    _L.ELU,
    _L.PReLU,
    _L.ThresholdedReLU,
    _L.Dropout,
    _L.SpatialDropout1D,
    _L.SpatialDropout2D,
    _L.GaussianNoise,
    _L.GaussianDropout,
    _L.AlphaDropout,
    _L.ActivityRegularization,
    _L.MaxPooling1D,
    _L.MaxPooling2D,
    _L.AveragePooling1D,
    _L.AveragePooling2D,
    _L.ZeroPadding1D,
    _L.ZeroPadding2D,
    _L.Cropping1D,
    _L.Cropping2D,
    _L.UpSampling1D,
    _L.UpSampling2D,
    _L.GlobalAveragePooling1D,
    _L.GlobalAveragePooling2D,
    _L.GlobalMaxPooling1D,
    _L.GlobalMaxPooling2D,
    _L.Rescaling,
    *_augmentation.IDENTITIES_AT_INFERENCE,
    *_augmentation.SPATIAL,
)
_FIX = (_L.LayerNormalization, _L.Softmax)
_MERGES = (_L.Add, _L.Subtract, _L.Multiply, _L.Average, _L.Maximum, _L.Minimum)
# TensorFlow ops (TFOpLambda) that act on each value alone, or on two tensors element-wise.
_ELEMENTWISE_OPS = {
    "__operators__.add",
    "math.add",
    "math.subtract",
    "math.multiply",
    "math.truediv",
    "math.divide",
    "nn.relu",
    "nn.relu6",
    "nn.silu",
    "nn.swish",
    "nn.sigmoid",
    "math.sigmoid",
    "math.tanh",
    "nn.tanh",
    "math.abs",
    "math.negative",
    "math.square",
    "math.sqrt",
    "math.exp",
}


def role(layer, call=None):
    """`(role, reason)`: what `layer` does to channels (see the module), or `(None, why it is unsupported)`."""
    problem = _unsupported_setting(layer)
    if problem:
        return None, problem
    if type(layer).__name__ == "TFOpLambda":
        return _op_role(layer, call)
    if isinstance(layer, _L.Activation) and getattr(layer.activation, "__name__", "") == "softmax":
        return "fix", None
    if isinstance(layer, _L.Rescaling) and np.ndim(layer.scale) + np.ndim(layer.offset) > 0:
        return "fix", None  # a scale per channel lives in the config, which pruning does not cut
    if isinstance(layer, _L.Reshape):
        return ("pass", None) if _adds_unit_axes(layer) else (None, "reshapes more than unit axes")
    if isinstance(layer, _L.Concatenate):
        return "concatenate", None
    if isinstance(layer, _L.Flatten):
        return "flatten", None
    for kinds, name in ((_FOLLOW, "follow"), (PRODUCERS, "produce"), (_MERGES, "merge"), (_FIX, "fix")):
        if isinstance(layer, kinds):
            return name, None
    if isinstance(layer, _PASS):
        return "pass", None
    return None, "is not a layer kind it knows"


def _unsupported_setting(layer):
    if isinstance(layer, keras.Model):
        return "is a nested model"
    if isinstance(layer, _L.Bidirectional) and not (
        isinstance(layer.forward_layer, _RECURRENT) and layer.merge_mode in ("concat", "sum", "ave", "mul")
    ):
        return "is a Bidirectional wrapper of a layer other than LSTM, GRU or SimpleRNN, or without a merge mode"
    if isinstance(layer, _RECURRENT + (_L.Bidirectional,)) and getattr(_rnn(layer), "return_state", False):
        return "returns its states"
    if isinstance(layer, _DEPTHWISE + _SEPARABLE) and layer.depth_multiplier != 1:
        return "has a depth multiplier other than 1"
    if isinstance(layer, _CONVOLUTIONS) and getattr(layer, "groups", 1) != 1:
        return "is a grouped convolution"
    if isinstance(layer, (_L.BatchNormalization, _L.LayerNormalization, _L.Normalization)):
        axis = layer.axis if isinstance(layer.axis, (list, tuple)) else [layer.axis]
        if list(axis) not in ([-1], [len(layer.input_shape) - 1]):
            return "normalizes an axis other than channels"
    if isinstance(layer, _L.Concatenate) and layer.axis not in (-1, len(layer.input_shape[0]) - 1):
        return "concatenates along an axis other than channels"
    if getattr(layer, "data_format", "channels_last") != "channels_last":
        return "uses channels_first"
    return None


def _op_role(layer, call):
    if layer.symbol not in _ELEMENTWISE_OPS or call is None:
        return None, f"is the TensorFlow op tf.{layer.symbol}, whose effect on channels it cannot tell"
    return ("merge", None) if len(call.inputs) > 1 else ("pass", None)


def inputs_read(layer, call) -> list:
    """The tensors a layer call reads, in the order `cut_weights` takes their kept channels."""
    if not isinstance(layer, _L.MultiHeadAttention):
        return call.inputs
    arguments = dict(zip(("query", "value", "key"), call.args)) | call.kwargs
    return [arguments[name] for name in ("query", "value", "key") if arguments.get(name) is not None]


def _adds_unit_axes(layer):
    before, after = layer.input_shape[1:], layer.output_shape[1:]
    return before[-1:] == after[-1:] and [s for s in before if s != 1] == [s for s in after if s != 1]


def _rnn(layer):
    return layer.forward_layer if isinstance(layer, _L.Bidirectional) else layer


def directions(layer) -> int:
    """How many copies of its channels a producer writes side by side: 2 for a concatenating Bidirectional."""
    return 2 if isinstance(layer, _L.Bidirectional) and layer.merge_mode == "concat" else 1


def output_kernels(layer) -> list:
    """`(variable, axis of the output channels)` for each weight that makes a producer's channels."""
    if isinstance(layer, _L.Bidirectional):
        return [pair for direction in (layer.forward_layer, layer.backward_layer) for pair in output_kernels(direction)]
    if isinstance(layer, _RECURRENT):
        return [(layer.cell.kernel, -1)]
    if isinstance(layer, _L.Embedding):
        return [(layer.embeddings, -1)]
    if isinstance(layer, _L.MultiHeadAttention):
        return [(layer._output_dense.kernel, -1)]  # noqa: SLF001  (the layer keeps its projections there)
    if isinstance(layer, _SEPARABLE):
        return [(layer.pointwise_kernel, -1)]
    if isinstance(layer, _TRANSPOSED):
        return [(layer.kernel, -2)]
    return [(layer.kernel, -1)]


def output_biases(layer) -> list:
    """`(variable, -1)` for each bias a producer adds to its channels (an RNN's per gate), as `output_kernels`."""
    if isinstance(layer, _L.Bidirectional):
        return [pair for direction in (layer.forward_layer, layer.backward_layer) for pair in output_biases(direction)]
    owner = {_L.MultiHeadAttention: "_output_dense"}.get(type(layer))
    owner = getattr(layer, owner) if owner else (layer.cell if isinstance(layer, _RECURRENT) else layer)
    bias = getattr(owner, "bias", None) if getattr(owner, "use_bias", False) else None
    return [] if bias is None else [(bias, -1)]


def channel_matrix(value, axis, channels) -> np.ndarray:
    """A producer's weight as rows of values by columns of output channels (gates of an RNN folded into rows)."""
    return np.moveaxis(np.asarray(value), axis, -1).reshape(-1, channels)


def resized(layer, width: int):
    """A new, unbuilt layer like `layer` with `width` output channels (a producer's, or a unit-axis Reshape's)."""
    return layer.__class__.from_config(resized_config(layer, layer.get_config(), width))


def resized_config(layer, config: dict, width: int) -> dict:
    """`config` (of `layer`, or of its Keras 3 twin: the keys are the same) with `width` output channels."""
    config = dict(config)
    if isinstance(layer, _L.Bidirectional):
        for part in ("layer", "backward_layer"):
            if config.get(part):
                config[part] = {**config[part], "config": {**config[part]["config"], "units": width}}
    elif isinstance(layer, _L.MultiHeadAttention):
        config["output_shape"] = width
    elif isinstance(layer, _L.Reshape):
        config["target_shape"] = tuple(config["target_shape"][:-1]) + (width,)
    else:
        key = {_L.Dense: "units", _L.Embedding: "output_dim"}.get(type(layer))
        config[key or ("units" if isinstance(layer, _RECURRENT) else "filters")] = width
    return config


def cut_weights(layer, weights, kept_in, kept_out) -> list:
    """`layer`'s weights with only the kept input and output channels."""
    first = kept_in[0] if kept_in else None
    if isinstance(layer, _L.Bidirectional):
        half = len(weights) // 2
        return [
            weight
            for direction, part in ((layer.forward_layer, weights[:half]), (layer.backward_layer, weights[half:]))
            for weight in cut_weights(direction, part, kept_in, kept_out)
        ]
    if isinstance(layer, _RECURRENT):
        return _cut_recurrent(layer, weights, first, kept_out)
    if isinstance(layer, _L.MultiHeadAttention):
        return _cut_attention(layer, weights, kept_in, kept_out)
    if isinstance(layer, _L.Embedding):
        return [weights[0][:, kept_out]]
    if isinstance(layer, _L.Normalization):
        return [weight[..., first] if np.ndim(weight) else weight for weight in weights]
    if isinstance(layer, (_L.BatchNormalization, _L.LayerNormalization)):
        return [weight[first] for weight in weights]
    if isinstance(layer, _DEPTHWISE):
        depthwise, *bias = weights
        return [depthwise[..., first, :]] + [b[first] for b in bias]
    if isinstance(layer, _SEPARABLE):
        depthwise, pointwise, *bias = weights
        return [depthwise[..., first, :], pointwise[..., first, :][..., kept_out]] + [b[kept_out] for b in bias]
    if isinstance(layer, _TRANSPOSED):
        kernel, *bias = weights
        return [kernel[..., kept_out, :][..., first]] + [b[kept_out] for b in bias]
    if isinstance(layer, _CONVOLUTIONS + (_L.Dense,)):
        kernel, *bias = weights
        return [kernel[..., first, :][..., kept_out]] + [b[kept_out] for b in bias]
    raise ValueError(f"Layer {layer.name!r} ({type(layer).__name__}) holds weights channel pruning cannot cut.")


def _cut_recurrent(layer, weights, kept_in, kept_out):
    """Kernel (in, gates x units), recurrent kernel (units, gates x units), bias (gates x units, or 2 rows for GRU)."""
    units = layer.units
    gated = np.concatenate([gate * units + np.asarray(kept_out, int) for gate in range(_GATES[type(layer)])])
    kernel, recurrent, *bias = weights
    return [kernel[kept_in][:, gated], recurrent[kept_out][:, gated]] + [b[..., gated] for b in bias]


def _cut_attention(layer, weights, kept_in, kept_out):
    """Query, key and value kernels read their inputs' channels on axis 0; the output kernel and bias write them."""
    query, value = kept_in[0], kept_in[1] if len(kept_in) > 1 else kept_in[0]
    key = kept_in[2] if len(kept_in) > 2 else value
    reads = {"query/kernel": query, "key/kernel": key, "value/kernel": value}
    cut = []
    for variable, weight in zip(layer.weights, weights):
        name = variable.name
        part = next((kept for suffix, kept in reads.items() if suffix in name), None)
        if part is not None:
            weight = weight[part]
        elif "attention_output" in name:
            weight = weight[..., kept_out]
        cut.append(weight)
    return cut
