"""Representative (calibration) data for int8 conversion: from arrays, datasets or generators, checked."""

import inspect
import warnings

import numpy as np

from tfcompress._keras import tf
from tfcompress.data.arrays import as_arrays, check_input_shape

# Below this many examples, calibrated ranges are likely to miss values seen in use.
_FEW_CALIBRATION_EXAMPLES = 50


def calibration_examples(data, input_shape, limit: int = 500):
    """Calibration inputs as one float32 array, from an array, a dataset or a generator, checked.

    Args:
      data: a numpy array, a batched `tf.data.Dataset` (labels ignored), or a generator (or
        a function returning one) that yields examples or batches, bare or as `[batch]`.
      input_shape: the model's input shape, batch dimension first (None).
      limit: use at most this many examples.

    Returns:
      A float32 array of at most `limit` examples.

    Raises:
      ValueError: the data is empty, non-numeric, NaN or wrongly shaped.

    Example:
      >>> calibration_examples(x_train, model.input_shape)
    """
    if callable(data) and not isinstance(data, tf.data.Dataset):
        data = data()
    if inspect.isgenerator(data) or hasattr(data, "__next__"):
        data = _drain(data, len(input_shape), limit)
    samples, _ = as_arrays(data, limit=limit, argument="representative_data")
    check_input_shape(samples, input_shape, "representative_data")
    if len(samples) < _FEW_CALIBRATION_EXAMPLES:
        warnings.warn(
            f"Calibrating on {len(samples)} examples; ranges from so few often miss values seen in use. "
            "Pass a few hundred typical examples.",
            stacklevel=3,
        )
    return samples


def _drain(generator, input_rank, limit):
    """Collects a generator's items (examples or batches, bare or as `[batch]`) into one array."""
    batches, count = [], 0
    for item in generator:
        if isinstance(item, (list, tuple)):
            item = item[0]
        item = np.asarray(item)
        batch = item[np.newaxis] if item.ndim == input_rank - 1 else item
        batches.append(batch)
        count += len(batch)
        if count >= limit:
            break
    if not batches:
        return np.zeros((0,), np.float32)
    if len({batch.shape[1:] for batch in batches}) != 1:
        raise ValueError(
            f"`representative_data` yielded items of different shapes {sorted({b.shape for b in batches})}; "
            "yield examples (or batches) of the model's input shape."
        )
    return np.concatenate(batches)
