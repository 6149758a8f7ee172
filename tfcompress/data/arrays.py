"""Turning the data users hand in (numpy arrays or tf.data) into checked numpy arrays."""

import numpy as np

from tfcompress._keras import tf


def as_arrays(x, y=None, *, limit: int = None, argument: str = "x"):
    """Returns `(inputs, labels)` as numpy arrays from arrays or a batched `tf.data.Dataset`.

    Datasets follow the `model.fit` convention: they yield batches, either of inputs
    alone or of `(inputs, labels)` (a third element, sample weights, is dropped).

    Args:
      x: a numpy array (or anything `np.asarray` takes) of inputs, or a batched dataset.
      y: labels for array inputs; must be None for a dataset.
      limit: keep at most this many examples (the first ones).
      argument: the argument's name, used in error messages.

    Returns:
      `(inputs, labels)`: float32 inputs and the labels, or None where there are none.

    Raises:
      ValueError: the data is empty, holds NaN or infinity, `y` does not match `x` in
        length, or `y` is given alongside a dataset.

    Example:
      >>> x, y = as_arrays(train_dataset, limit=500)
    """
    if isinstance(x, tf.data.Dataset):
        if y is not None:
            raise ValueError(f"`{argument}` is a tf.data.Dataset, which carries its own labels; pass y=None.")
        x, y = _collect(x, limit)
    else:
        x = np.asarray(x)
        y = None if y is None else np.asarray(y)
    if limit is not None:
        x, y = x[:limit], (None if y is None else y[:limit])
    if x.size == 0 or x.ndim == 0:
        raise ValueError(f"`{argument}` is empty: expected at least one example. Received shape {x.shape}")
    if not np.issubdtype(x.dtype, np.number):
        raise ValueError(f"`{argument}` must be numeric. Received dtype {x.dtype}")
    x = x.astype(np.float32, copy=False)
    finite = np.isfinite(x.reshape(len(x), -1)).all(axis=1)
    if not finite.all():
        bad = int(np.sum(~finite))
        raise ValueError(f"`{argument}` holds NaN or infinite values in {bad} of {len(x)} examples. Clean them first.")
    if y is not None and len(y) != len(x):
        raise ValueError(f"`{argument}` has {len(x)} examples but the labels have {len(y)}; they must match.")
    return x, y


def arrays_from(data, *, limit: int = None, argument: str = "data"):
    """`(inputs, labels or None)` from one `data` argument: `(x, y)`, `x` alone, or a batched dataset.

    Args:
      data: a tuple `(x, y)` (y may be None), an array of inputs, or a batched `tf.data.Dataset`.
      limit: keep at most this many examples (the first ones).
      argument: the argument's name, used in error messages.

    Returns:
      `(inputs, labels)` as `as_arrays` returns them.

    Raises:
      ValueError: as for `as_arrays`.

    Example:
      >>> x, _ = arrays_from(x_train, limit=1024, argument="calibration")
    """
    return as_arrays(*(data if isinstance(data, tuple) else (data,)), limit=limit, argument=argument)


def labelled_arrays(data, argument: str = "data"):
    """`(inputs, labels)` from `(x, y)` arrays or a batched dataset of them; labels are required.

    Args:
      data: a tuple `(x, y)`, or a batched `tf.data.Dataset` yielding `(x, y)`.
      argument: the argument's name, used in error messages.

    Returns:
      `(inputs, labels)` as numpy arrays, checked as `as_arrays` checks them.

    Raises:
      ValueError: the data is empty, NaN, or has no labels.

    Example:
      >>> x, y = labelled_arrays((x_test, y_test), "validation_data")
    """
    x, y = arrays_from(data, argument=argument)
    if y is None:
        raise ValueError(f"`{argument}` needs labels: pass (x, y), or a dataset of (x, y) batches.")
    return x, y


def _collect(dataset, limit):
    """Concatenates a dataset's batches, stopping once `limit` examples are in hand."""
    inputs, labels = [], []
    for element in dataset:
        if isinstance(element, (tuple, list)):
            batch_x, batch_y = element[0], (element[1] if len(element) > 1 else None)
        else:
            batch_x, batch_y = element, None
        inputs.append(np.asarray(batch_x))
        if batch_y is not None:
            labels.append(np.asarray(batch_y))
        if limit is not None and sum(len(batch) for batch in inputs) >= limit:
            break
    if not inputs:
        return np.zeros((0,), np.float32), None
    return np.concatenate(inputs), (np.concatenate(labels) if labels else None)


def check_input_shape(x: np.ndarray, input_shape, argument: str = "x") -> None:
    """Raises a clear ValueError if examples in `x` do not fit a model input.

    Args:
      x: a batch of examples.
      input_shape: the model's input shape, batch first (`model.input_shape`).
      argument: the argument's name, used in the message.

    Raises:
      ValueError: the example shape differs from `input_shape[1:]`.

    Example:
      >>> check_input_shape(x_test, model.input_shape, "x_test")
    """
    expected = tuple(input_shape[1:])
    got = tuple(x.shape[1:])
    fits = len(expected) == len(got) and all(e is None or e == g for e, g in zip(expected, got))
    if not fits:
        raise ValueError(
            f"`{argument}` has examples of shape {got}, but the model takes inputs of shape "
            f"{expected} (batch dimension left out). Reshape the data, e.g. x.reshape((-1,) + {expected})."
        )
