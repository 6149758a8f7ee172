"""Bias correction: cancel the mean shift that rounding a layer's weights to int8 adds to its outputs.

The converter stores every Conv/Dense kernel as int8 per output channel (symmetric, scale
= largest |weight| / 127). Rounding errs a little on every weight; summed over a
channel's inputs, the errors shift that channel's mean output by (W_int8 - W) · E[x].
Subtracting that shift from the bias, with E[x] measured on calibration data, removes
it in the int8 file while leaving the weights as they are (Nagel et al., 2019).
"""

import numpy as np

from tfcompress._graph import clone_with_weights, flat_copy, nested_models
from tfcompress._keras import keras
from tfcompress._model_guards import ensure_graph_model

_L = keras.layers
_CORRECTED = (_L.Conv1D, _L.Conv2D, _L.DepthwiseConv2D, _L.Dense)
_TRANSPOSED = (_L.Conv1DTranspose, _L.Conv2DTranspose)  # kernels laid out (..., out, in)
_INT8_STEPS = 127  # narrow range: weights use [-127, 127]


def correct_bias(model, data, *, examples: int = 512):
    """A copy of `model` whose biases cancel the mean error of int8 weights.

    Args:
      model: a built Sequential or functional Keras 2 model; a nested base is flattened.
      data: calibration inputs (an array for one input, a list for several), typical of use.
      examples: use at most this many to measure each layer's mean input.

    Returns:
      `(corrected, layers)`: the new model and the names of the layers whose bias
      changed. `model` is not modified. In float the copy's outputs differ from
      `model`'s by the corrections; in int8 it is closer to `model` in float.

    Raises:
      TypeError: `model` is not a Keras 2 model.

    Examples:
      >>> corrected, layers = tfc.quantize.correct_bias(model, x_train[:500])
    """
    model = ensure_graph_model(model)
    copy = flat_copy(model) if nested_models(model) else clone_with_weights(model)
    layers = [
        layer
        for layer in copy.layers
        if isinstance(layer, _CORRECTED)
        and not isinstance(layer, _TRANSPOSED)
        and getattr(layer, "use_bias", False)
        and len(layer.inbound_nodes) == 1
        and getattr(layer, "groups", 1) == 1
    ]
    if not layers:
        return copy, []
    probe = keras.Model(copy.inputs, [layer.input for layer in layers])
    batch = [array[:examples] for array in data] if isinstance(data, (list, tuple)) else data[:examples]
    inputs = probe.predict(batch, batch_size=64, verbose=0)
    inputs = inputs if isinstance(inputs, list) else [inputs]
    for layer, values in zip(layers, inputs):
        mean = values.reshape(-1, values.shape[-1]).astype(np.float64).mean(axis=0)
        weights = layer.get_weights()
        weights[1] = weights[1] - _mean_shift(layer, weights[0], mean).astype(weights[1].dtype)
        layer.set_weights(weights)
    return copy, [layer.name for layer in layers]


def _mean_shift(layer, kernel, mean):
    """(W_int8 - W) · E[x] per output channel, for the layer's kernel layout."""
    if isinstance(layer, _L.DepthwiseConv2D):  # (..., in, multiplier): output channel c * multiplier + m
        flat = kernel.reshape(kernel.shape[:-2] + (-1,))
        error = (_int8_rounded(flat) - flat).reshape(kernel.shape)
        return np.einsum("kcm,c->cm", error.reshape((-1,) + error.shape[-2:]), mean).reshape(-1)
    error = _int8_rounded(kernel) - kernel
    return np.einsum("kio,i->o", error.reshape((-1,) + error.shape[-2:]), mean)


def _int8_rounded(kernel):
    """The kernel as the converter stores it: symmetric int8 per output channel (last axis), dequantized."""
    largest = np.abs(kernel.reshape(-1, kernel.shape[-1])).max(axis=0)
    scale = np.where(largest > 0, largest / _INT8_STEPS, 1.0)
    return np.clip(np.round(kernel / scale), -_INT8_STEPS, _INT8_STEPS) * scale
