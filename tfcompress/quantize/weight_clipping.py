"""Weight ranges by least squared error: per output channel, the int8 range that rounds and clips the least.

The converter quantizes each Conv, DepthwiseConv and Dense kernel per output channel on a
symmetric grid whose step is the channel's largest |weight| / 127. One large weight makes
that step coarse for all the others. Clipping the channel to a smaller threshold t before
conversion makes the converter choose t / 127 instead, so the file stores the grid of least
squared weight error (rounding inside, clipping outside), as OCTAV and Sony's MCT choose
weight thresholds. It needs no data.
"""

import numpy as np

from tfcompress._graph import clone_with_weights, flat_copy, nested_models
from tfcompress._model_guards import ensure_graph_model
from tfcompress.quantize.learned_rounding import channels_last, rounded_layers

_STEPS = 127  # narrow range: weights use [-127, 127]
_SHRINK = np.linspace(0.5, 1.0, 101)  # the share of the largest |weight| each search tries


def clip_weights(model):
    """A copy of `model` whose kernels are clipped, channel by channel, to the int8 range of least squared error.

    Args:
      model: a built Sequential or functional Keras 2 model; a nested base is flattened.

    Returns:
      `(clipped, layers)`: the new model, whose int8 file has each channel's grid of least weight error, and the
      names of the layers with a channel clipped. `model` is not modified.

    Raises:
      TypeError: `model` is not a Keras 2 model.

    Examples:
      >>> clipped, layers = tfc.quantize.clip_weights(model)
      >>> tfc.export.to_tflite(clipped, "model.tflite", representative_data=x_train[:500])
    """
    model = ensure_graph_model(model)
    copy = flat_copy(model) if nested_models(model) else clone_with_weights(model)
    changed = []
    for layer in rounded_layers(copy):
        weights = layer.get_weights()
        kernel = _clipped(layer, weights[0])
        if not np.array_equal(kernel, weights[0]):
            weights[0] = kernel
            layer.set_weights(weights)
            changed.append(layer.name)
    return copy, changed


def _clipped(layer, kernel):
    channels = channels_last(layer, kernel)
    flat = channels.reshape(-1, channels.shape[-1]).astype(np.float64)
    largest = np.abs(flat).max(axis=0)
    best, least = largest.copy(), np.full(largest.shape, np.inf)
    for shrink in _SHRINK:
        threshold = largest * shrink
        step = np.where(threshold > 0, threshold / _STEPS, 1.0)
        error = np.square(flat - np.clip(np.round(flat / step), -_STEPS, _STEPS) * step).sum(axis=0)
        better = error < least * (1 - 1e-9)  # ties keep the wider range
        best[better], least[better] = threshold[better], error[better]
    if np.all(best >= largest):
        return kernel
    return np.clip(flat, -best, best).astype(kernel.dtype).reshape(kernel.shape)
