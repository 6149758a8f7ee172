"""Turning the data users hand in (numpy arrays or tf.data) into checked numpy arrays."""

import dataclasses

import numpy as np
import tensorflow as tf

from tfcompress._models import input_names


@dataclasses.dataclass(frozen=True)
class InputSpec:
    """One input of a model: its name, the shape of one example (None where any size goes), and its dtype.

    Examples:
      >>> input_specs(text_model)
      [InputSpec(name='tokens', shape=(32,), dtype='int32')]
    """

    name: str
    shape: tuple
    dtype: str

    @property
    def integer(self) -> bool:
        """Whether the input takes integers (token ids, indices), which are never scaled or quantized."""
        return np.issubdtype(np.dtype(self.dtype), np.integer)


def input_specs(model) -> list:
    """The `InputSpec` of each input of a Keras model (either Keras), in `model.inputs` order."""
    return [
        InputSpec(name, tuple(tensor.shape[1:]), tf.as_dtype(tensor.dtype).name)
        for name, tensor in zip(input_names(model), model.inputs)
    ]


def input_arrays(x, specs, *, limit: int = None, argument: str = "x") -> list:
    """One checked array per model input, each in its input's dtype, from the forms users pass."""
    if isinstance(x, tf.data.Dataset):
        x, _ = collect(x, limit, inputs=len(specs))
    arrays = _per_input(x, specs, argument)
    checked = []
    for spec, array in zip(specs, arrays):
        name = argument if len(specs) == 1 else f"{argument}[{spec.name!r}]"
        array = np.asarray(array)
        if spec.integer:
            array = _integers(array, spec, name, limit)
        else:
            array, _ = as_arrays(array, limit=limit, argument=name)
        check_input_shape(array, (None,) + spec.shape, name)
        checked.append(array)
    if len({len(array) for array in checked}) > 1:
        raise ValueError(
            f"The inputs in `{argument}` have different numbers of examples "
            f"({dict((spec.name, len(array)) for spec, array in zip(specs, checked))}); they must match."
        )
    return checked


def _per_input(x, specs, argument):
    names = [spec.name for spec in specs]
    if isinstance(x, dict):
        missing = [name for name in names if name not in x]
        if missing:
            raise ValueError(f"`{argument}` has no arrays for the inputs {missing}; it needs one for each of {names}.")
        return [x[name] for name in names]
    if len(specs) > 1:
        if not isinstance(x, (list, tuple)) or len(x) != len(specs):
            raise ValueError(
                f"The model has {len(specs)} inputs {names}; pass `{argument}` as a list of {len(specs)} arrays "
                "in that order, or a dict by input name."
            )
        return list(x)
    return [x[0] if isinstance(x, (list, tuple)) and len(x) == 1 else x]


def _integers(array, spec, name, limit):
    if limit is not None:
        array = array[:limit]
    if array.size == 0 or array.ndim == 0:
        raise ValueError(f"`{name}` is empty: expected at least one example. Received shape {array.shape}")
    if not np.issubdtype(array.dtype, np.number) or (
        not np.issubdtype(array.dtype, np.integer) and not np.all(np.equal(np.mod(array, 1), 0))
    ):
        raise ValueError(
            f"`{name}` feeds the integer input {spec.name!r} ({spec.dtype}), so it must hold whole numbers "
            f"(token ids, indices). Received dtype {array.dtype}"
        )
    return array.astype(spec.dtype)


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

    Examples:
      >>> x, y = as_arrays(train_dataset, limit=500)
    """
    if isinstance(x, tf.data.Dataset):
        if y is not None:
            raise ValueError(f"`{argument}` is a tf.data.Dataset, which carries its own labels; pass y=None.")
        x, y = collect(x, limit)
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
    """`(inputs, labels or None)` from one `data` argument: `(x, y)`, `x` alone, or a batched dataset."""
    return as_arrays(*(data if isinstance(data, tuple) else (data,)), limit=limit, argument=argument)


def labelled_arrays(data, argument: str = "data"):
    """`(inputs, labels)` from `(x, y)` arrays or a batched dataset of them; labels are required."""
    x, y = arrays_from(data, argument=argument)
    if y is None:
        raise ValueError(f"`{argument}` needs labels: pass (x, y), or a dataset of (x, y) batches.")
    return x, y


def collect(dataset, limit, inputs=1):
    """Concatenates a dataset's batches, stopping once `limit` examples are in hand."""
    expected = inputs
    inputs, labels, count = [], [], 0
    for element in dataset:
        flat_inputs = expected > 1 and isinstance(element, tuple) and len(element) == expected
        if flat_inputs and all(not isinstance(item, (tuple, list, dict)) for item in element):
            batch_x, batch_y = element, None
        else:
            batch_x, batch_y = _split(element)
        inputs.append(tf.nest.map_structure(np.asarray, batch_x))
        if batch_y is not None:
            labels.append(np.asarray(batch_y))
        count += len(tf.nest.flatten(batch_x)[0])
        if limit is not None and count >= limit:
            break
    if not inputs:
        return np.zeros((0,), np.float32), None
    joined = tf.nest.map_structure(lambda *batches: np.concatenate(batches), *inputs)
    joined = list(joined) if isinstance(joined, tuple) else joined
    return joined, (np.concatenate(labels) if labels else None)


def _split(element):
    """`(inputs, labels)` of one dataset element: `x`, `(x,)`, `(x, y)` or `(x, y, weights)`; a dict is inputs."""
    if isinstance(element, dict) or not isinstance(element, (tuple, list)):
        return element, None
    if len(element) == 1:
        return element[0], None
    return element[0], element[1]


def check_input_shape(x: np.ndarray, input_shape, argument: str = "x") -> None:
    """Raises a clear ValueError if examples in `x` do not fit a model input."""
    expected = tuple(input_shape[1:])
    got = tuple(x.shape[1:])
    fits = len(expected) == len(got) and all(e is None or e == g for e, g in zip(expected, got))
    if not fits:
        raise ValueError(
            f"`{argument}` has examples of shape {got}, but the model takes inputs of shape "
            f"{expected} (batch dimension left out). Reshape the data, e.g. x.reshape((-1,) + {expected})."
        )
