"""Representative (calibration) data for int8 conversion: from arrays, datasets or generators, checked."""

import inspect
import warnings

import numpy as np

from tfcompress._keras import tf
from tfcompress.data.arrays import input_arrays

# Below this many examples, calibrated ranges are likely to miss values seen in use.
_FEW_CALIBRATION_EXAMPLES = 50


def calibration_examples(data, specs, limit: int = 500) -> list:
    """Calibration inputs, one array per model input, from arrays, a dataset or a generator, checked."""
    if callable(data) and not isinstance(data, tf.data.Dataset):
        data = data()
    if inspect.isgenerator(data) or hasattr(data, "__next__"):
        data = _drain(data, specs, limit)
    samples = input_arrays(data, specs, limit=limit, argument="representative_data")
    if len(samples[0]) < _FEW_CALIBRATION_EXAMPLES:
        warnings.warn(
            f"Calibrating on {len(samples[0])} examples; ranges from so few often miss values seen in use. "
            "Pass a few hundred typical examples.",
            stacklevel=3,
        )
    return samples


def _drain(generator, specs, limit):
    """Collects a generator's items (examples or batches, bare or as `[batch]`) into one array per input."""
    columns, count = [[] for _ in specs], 0
    for item in generator:
        parts = list(item) if isinstance(item, (list, tuple)) else [item]
        if isinstance(item, dict):
            parts = [item[spec.name] for spec in specs]
        elif len(specs) == 1:
            parts = parts[:1]  # `[batch]`, or `(batch, labels)` with the labels ignored
        if len(parts) != len(specs):
            raise ValueError(
                f"`representative_data` yielded {len(parts)} arrays, but the model has {len(specs)} inputs; "
                "yield one array (or batch) per input, in input order."
            )
        for column, part, spec in zip(columns, parts, specs):
            part = np.asarray(part)
            column.append(part[np.newaxis] if part.ndim == len(spec.shape) else part)
        count += len(columns[0][-1])
        if count >= limit:
            break
    if not columns[0]:
        return [np.zeros((0,), np.float32) for _ in specs]
    for column in columns:
        if len({batch.shape[1:] for batch in column}) != 1:
            raise ValueError(
                f"`representative_data` yielded items of different shapes {sorted({b.shape for b in column})}; "
                "yield examples (or batches) of the model's input shape."
            )
    joined = [np.concatenate(column) for column in columns]
    return joined if len(joined) > 1 else joined[0]
