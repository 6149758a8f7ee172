"""BatchNormalization statistics recomputed after pruning (adaptive BN, Li et al. 2020, "EagleEye").

Removing channels changes what every later layer sees, but BatchNormalization keeps the
moving mean and variance it learned for the old model, and a short fine-tuning run moves
them only slowly (momentum 0.99). Recomputing them on a batch of training data makes a
pruned model's accuracy honest again, before and after fine-tuning.
"""

import numpy as np

from tfcompress._checks import check_positive_integer
from tfcompress._keras3 import keras_of
from tfcompress._keras3_graph import one_or_all
from tfcompress._model_guards import graph_model
from tfcompress.data.arrays import arrays_from

_BATCH = 128


def recalibrate_batchnorm(model, data, *, examples: int = 1024) -> int:
    """Sets every BatchNormalization's moving mean and variance to its input's statistics on `data`.

    Layers are visited in graph order, each measured with the earlier ones already
    recalibrated, so the statistics are exactly those of the model as it now is. Like
    `fit`, it changes `model` in place (only the moving statistics).

    Args:
      model: a built Sequential or functional model of either Keras.
      data: training inputs: an array, `(x, y)` (labels unused) or a batched `tf.data.Dataset`.
      examples: how many examples to measure on (the first ones).

    Returns:
      How many BatchNormalization layers were recalibrated.

    Raises:
      TypeError: `model` is not a Keras model.
      ValueError: `examples` is not a positive integer, or the data is empty or NaN.

    Examples:
      >>> smaller = tfc.prune.channels(model, 0.5)
      >>> tfc.prune.recalibrate_batchnorm(smaller, x_train)
      7
    """
    model = graph_model(model)
    keras = keras_of(model)
    check_positive_integer("examples", examples)
    x, _ = arrays_from(data, limit=examples, argument="data")
    layers = [layer for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization)]
    for layer in layers:
        if layer.axis not in (-1, [-1], len(layer.input.shape) - 1, [len(layer.input.shape) - 1]):
            raise ValueError(f"Layer {layer.name!r} normalizes an axis other than the last; it cannot be recalibrated.")
        probe = keras.Model(one_or_all(model.inputs), layer.input)
        total, squares, count = 0.0, 0.0, 0
        for start in range(0, len(x), _BATCH):
            values = np.asarray(probe(x[start : start + _BATCH], training=False), dtype=np.float64)
            values = values.reshape(-1, values.shape[-1])
            total, squares = total + values.sum(axis=0), squares + np.square(values).sum(axis=0)
            count += len(values)
        mean = total / count
        layer.moving_mean.assign(mean.astype(np.float32))
        layer.moving_variance.assign(np.maximum(squares / count - np.square(mean), 0).astype(np.float32))
    return len(layers)
