"""A recipe's `data` section as arrays: the built-in digits, MNIST IDX files, a folder of images, or `.npz`."""

import os

import numpy as np

from tfcompress.data.arrays import as_arrays
from tfcompress.data.builtin import load_digits
from tfcompress.data.idx import load_mnist
from tfcompress.data.images import load_image_directory


def load_source(spec: dict, seed: int = 0):
    """Loads training and test data as a checked recipe's `data` section describes it.

    Args:
      spec: `source` ("builtin", "mnist", "directory" or "npz") with `path`,
        `test_fraction`, `image_size` and `color_mode` as `tfc.pipeline.recipe.check` fills them in.
      seed: the split's seed (built-in digits and image folders).

    Returns:
      `((x_train, y_train), (x_test, y_test), class_names)`: float32 images, their
      labels (integer classes 0..n-1, except from `.npz`, which may hold any task's
      labels: 0/1, multi-hot, values), and the class names of an image folder (None otherwise).

    Raises:
      FileNotFoundError: the file or folder does not exist.
      ValueError: the arrays are missing, empty, hold NaN, or their labels or shapes do
        not match (named in the message).

    Examples:
      >>> (x_train, y_train), (x_test, y_test), names = load_source({"source": "npz", "path": "data.npz"})
    """
    source, path = spec["source"], spec.get("path")
    class_names = None
    if source == "builtin":
        train, test = load_digits(test_fraction=spec["test_fraction"], seed=seed)
    elif source == "mnist":
        train, test = load_mnist(path)
    elif source == "npz":
        train, test = _load_npz(path)
    else:
        (train_set, test_set), class_names = load_image_directory(
            path,
            image_size=spec["image_size"],
            color_mode=spec["color_mode"],
            validation_split=spec["test_fraction"],
            subset="both",
            seed=seed,
        )
        train, test = (train_set,), (test_set,)  # as_arrays below reads the datasets
    (x_train, y_train), (x_test, y_test) = (
        as_arrays(*train, argument="data (training)"),
        as_arrays(*test, argument="data (test)"),
    )
    for labels, part in ((y_train, "training"), (y_test, "test")):
        numeric = labels is not None and (np.issubdtype(labels.dtype, np.number) or labels.dtype == bool)
        if not numeric or labels.ndim == 0 or not np.all(np.isfinite(labels.astype(np.float64))):
            raise ValueError(
                f"The {part} labels must be numbers, one row per example (integer classes, 0/1, multi-hot rows, "
                "or values). Received: " + ("none" if labels is None else f"dtype {labels.dtype}, shape {labels.shape}")
            )
    if x_train.shape[1:] != x_test.shape[1:]:
        raise ValueError(f"Training images have shape {x_train.shape[1:]} but test images {x_test.shape[1:]}.")
    if y_train.shape[1:] != y_test.shape[1:]:
        raise ValueError(
            f"Training labels have shape {y_train.shape[1:]} per example but test labels {y_test.shape[1:]}."
        )
    return (x_train, y_train), (x_test, y_test), class_names


def _load_npz(path):
    if not os.path.isfile(path):
        raise FileNotFoundError(f"No .npz file at {path}.")
    with np.load(path, allow_pickle=False) as arrays:
        missing = [key for key in ("x_train", "y_train", "x_test", "y_test") if key not in arrays.files]
        if missing:
            raise ValueError(f"{path} lacks the arrays {missing}; it needs x_train, y_train, x_test and y_test.")
        return (arrays["x_train"], arrays["y_train"]), (arrays["x_test"], arrays["y_test"])
