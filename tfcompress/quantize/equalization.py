"""Cross-layer equalization: rescale consecutive layers' channels so that no channel dominates an int8 range.

int8 activations share one scale per tensor: when a few channels of a layer's output
are far larger than the rest (a common shape of trained models), the rest are left a
handful of int8 steps. For a layer followed, through ReLU (or no activation), pooling,
padding or flattening, by one convolution or dense layer, dividing output channel c by
s_c and multiplying the next layer's input channel c by s_c computes exactly the same
function, since ReLU(x / s) = ReLU(x) / s for s > 0. Choosing s_c = sqrt(r1_c / r2_c),
with r1_c and r2_c the largest weights of the channel on both sides, gives both sides the
same range (Nagel et al., 2019, "Data-Free Quantization", as in AIMET and NNCF).
"""

import dataclasses

import numpy as np

from tfcompress._graph import calls, clone_with_weights, flat_copy, nested_models
from tfcompress._keras import keras
from tfcompress._model_guards import ensure_graph_model

_L = keras.layers
_LINEAR_ENDS = (_L.Conv1D, _L.Conv2D, _L.DepthwiseConv2D, _L.Dense)
_TRANSPOSED = (_L.Conv1DTranspose, _L.Conv2DTranspose)  # kernels laid out (..., out, in): not rescaled
# Layers that commute with a positive per-channel scale and keep channels on the last axis.
_PASS_THROUGH = (
    _L.MaxPooling1D, _L.MaxPooling2D, _L.AveragePooling1D, _L.AveragePooling2D, _L.GlobalAveragePooling1D,
    _L.GlobalAveragePooling2D, _L.GlobalMaxPooling1D, _L.GlobalMaxPooling2D, _L.Dropout, _L.ZeroPadding1D,
    _L.ZeroPadding2D, _L.LeakyReLU,
)  # fmt: skip
_PASSES = 20  # each pass balances every pair once; chains settle within a few


@dataclasses.dataclass
class _Pair:
    producer: object  # the layer whose output channels are divided
    batchnorm: object  # the BatchNormalization after it (divided instead), or None
    consumer: object  # the layer whose input channels are multiplied
    flattened: bool  # a Flatten lies between them: the consumer's inputs repeat the channels


def equalize(model):
    """A copy of `model` with cross-layer equalization applied: the same function, int8-friendlier ranges.

    Each pair of a Conv1D/Conv2D/DepthwiseConv2D/Dense layer, followed (through an
    optional BatchNormalization, ReLU or no activation, pooling, padding, Dropout or
    Flatten, each read by nothing else) by one Conv/Dense/DepthwiseConv2D layer, gets
    its channels rescaled so that both layers' weight ranges per channel are equal.
    Pairs joined by anything else (ReLU6, a sigmoid, an Add) are left as they are. The
    copy's outputs equal `model`'s up to float rounding.

    Args:
      model: a built Sequential or functional Keras 2 model; a nested base is flattened.

    Returns:
      `(equalized, pairs)`: the new model and the `(producer, consumer)` layer names it
      rescaled; `pairs` is empty (and the copy unchanged) when there is nothing to do.
      `model` is not modified.

    Raises:
      TypeError: `model` is not a Keras 2 model.

    Examples:
      >>> equalized, pairs = tfc.quantize.equalize(model)
      >>> np.allclose(equalized.predict(x), model.predict(x), atol=1e-4)
      True
    """
    model = ensure_graph_model(model)
    copy = flat_copy(model) if nested_models(model) else clone_with_weights(model)
    pairs = _pairs(copy)
    for _ in range(_PASSES):
        largest_step = max((_balance(pair) for pair in pairs), default=0.0)
        if largest_step < 1e-3:
            break
    return copy, [(pair.producer.name, pair.consumer.name) for pair in pairs]


def _pairs(model) -> list:
    found = calls(model)
    readers = {}
    for call in found:
        for tensor in call.inputs:
            readers.setdefault(id(tensor), []).append(call)
    called = {}
    for call in found:
        called[id(call.layer)] = called.get(id(call.layer), 0) + 1
    outputs = {id(tensor) for tensor in model.outputs}
    pairs = []
    for call in found:
        linear = _is_linear(call.layer) and called[id(call.layer)] == 1
        if linear and _activation(call.layer) in ("linear", "relu"):
            pair = _follow(call, readers, outputs, called, relu_seen=_activation(call.layer) == "relu")
            if pair:
                pairs.append(pair)
    return pairs


def _follow(start, readers, outputs, called, relu_seen):
    """The pair starting at `start`'s layer, or None if the path to the next linear layer is not a plain chain."""
    batchnorm, flattened, call = None, False, start
    while True:
        (tensor,) = call.outputs if isinstance(call.outputs, list) else [call.outputs]
        following = readers.get(id(tensor), [])
        if id(tensor) in outputs or len(following) != 1 or called[id(following[0].layer)] != 1:
            return None
        call = following[0]
        layer = call.layer
        if len(call.inputs) != 1:
            return None
        if _is_linear(layer):
            grouped = getattr(layer, "groups", 1) != 1
            ok = not grouped and not (flattened and not isinstance(layer, _L.Dense))
            return _Pair(start.layer, batchnorm, layer, flattened) if ok else None
        if isinstance(layer, _L.BatchNormalization):
            channels_last = layer.axis in ([-1], [len(layer.input_shape) - 1])
            if relu_seen or batchnorm or flattened or not channels_last or not layer.scale:
                return None  # after a ReLU a scale does not pass through BatchNorm's shift; no gamma, no scale
            batchnorm = layer
        elif isinstance(layer, (_L.ReLU, _L.Activation)):
            if _activation(layer) != "relu" and _activation(layer) != "linear":
                return None
            relu_seen = relu_seen or _activation(layer) == "relu"
        elif isinstance(layer, _L.Flatten):
            flattened = True
        elif not isinstance(layer, _PASS_THROUGH):
            return None


def _is_linear(layer) -> bool:
    return isinstance(layer, _LINEAR_ENDS) and not isinstance(layer, _TRANSPOSED)


def _activation(layer) -> str:
    """'linear', 'relu' (positively homogeneous), or another name."""
    if isinstance(layer, _L.ReLU):
        plain = layer.max_value is None and float(layer.negative_slope) == 0 and float(layer.threshold) == 0
        return "relu" if plain else "other"
    return getattr(getattr(layer, "activation", None), "__name__", "linear")


def _balance(pair) -> float:
    """Rescales one pair's channels in place; returns the largest |log s| applied."""
    producer_weights = pair.producer.get_weights()
    kernel = producer_weights[0]
    if isinstance(pair.producer, _L.DepthwiseConv2D):
        kernel = kernel.reshape(kernel.shape[:-2] + (-1,))
    effective = np.abs(kernel.reshape(-1, kernel.shape[-1]))
    if pair.batchnorm is not None:
        effective = effective * np.abs(_batchnorm_gain(pair.batchnorm))
    producer_range = effective.max(axis=0)
    consumer_weights = pair.consumer.get_weights()
    by_channel = _consumer_by_channel(pair, consumer_weights[0], producer_range.size)
    consumer_range = np.abs(by_channel).max(axis=(0, 2))
    usable = (producer_range > 0) & (consumer_range > 0)
    scale = np.ones_like(producer_range)
    scale[usable] = np.sqrt(producer_range[usable] / consumer_range[usable])
    _divide_outputs(pair, producer_weights, scale)
    consumer_weights[0] = (by_channel * scale[np.newaxis, :, np.newaxis]).reshape(consumer_weights[0].shape)
    pair.consumer.set_weights(consumer_weights)
    return float(np.max(np.abs(np.log(scale))))


def _batchnorm_gain(layer):
    weights = dict(zip((w.name.split("/")[-1].split(":")[0] for w in layer.weights), layer.get_weights()))
    gamma = weights.get("gamma", np.ones_like(weights["moving_variance"]))
    return gamma / np.sqrt(weights["moving_variance"] + layer.epsilon)


def _divide_outputs(pair, producer_weights, scale):
    if pair.batchnorm is not None:
        layer = pair.batchnorm
        names = [w.name.split("/")[-1].split(":")[0] for w in layer.weights]
        weights = layer.get_weights()
        for index, name in enumerate(names):
            if name in ("gamma", "beta"):
                weights[index] = weights[index] / scale
        layer.set_weights(weights)
        return
    kernel = producer_weights[0]
    if isinstance(pair.producer, _L.DepthwiseConv2D):  # output channel c * multiplier + m
        producer_weights[0] = (kernel.reshape(kernel.shape[:-2] + (-1,)) / scale).reshape(kernel.shape)
    else:
        producer_weights[0] = kernel / scale
    if pair.producer.use_bias:
        producer_weights[1] = producer_weights[1] / scale
    pair.producer.set_weights(producer_weights)


def _consumer_by_channel(pair, kernel, channels):
    """The consumer's kernel as (anything, channel, anything): the axis that input channel c scales."""
    if isinstance(pair.consumer, _L.DepthwiseConv2D):  # (..., in, multiplier)
        return kernel.reshape(-1, kernel.shape[-2], kernel.shape[-1])
    if pair.flattened:  # Dense over (positions x channels), channels last
        return kernel.reshape(-1, channels, kernel.shape[-1])
    return kernel.reshape(-1, kernel.shape[-2], kernel.shape[-1])
