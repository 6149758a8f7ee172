"""Reading the IDX format of MNIST-style data sets (plain or gzip-compressed)."""

import gzip
import os

import numpy as np

# The third byte of the magic number names the element type.
_IDX_TYPES = {
    0x08: np.dtype(np.uint8),
    0x09: np.dtype(np.int8),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}

_MNIST_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}


def read_idx(path) -> np.ndarray:
    """Reads one IDX file, such as MNIST's `train-images-idx3-ubyte(.gz)`.

    Args:
      path: the file; a name ending in `.gz` is decompressed.

    Returns:
      The array, with the shape and element type its header declares.

    Raises:
      ValueError: the header is not IDX, or the file holds fewer bytes than it declares.

    Examples:
      >>> labels = tfc.data.read_idx("mnist/t10k-labels-idx1-ubyte.gz")
      >>> labels.shape
      (10000,)
    """
    path = os.fspath(path)
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as file:
        content = file.read()
    if len(content) < 4 or content[0] != 0 or content[1] != 0 or content[2] not in _IDX_TYPES:
        raise ValueError(
            f"{path} is not an IDX file: its first bytes are {content[:4].hex() or 'missing'}, "
            "expected 0000 then a type byte (08 for unsigned bytes) and the number of dimensions."
        )
    dtype = _IDX_TYPES[content[2]]
    rank = content[3]
    header_size = 4 + 4 * rank
    shape = tuple(int.from_bytes(content[4 + 4 * i : 8 + 4 * i], "big") for i in range(rank))
    expected = header_size + int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if len(content) != expected:
        raise ValueError(
            f"{path} is truncated or padded: its header declares shape {shape} "
            f"({expected} bytes in all) but the file holds {len(content)} bytes. "
            "Download or decompress it again."
        )
    return np.frombuffer(content, dtype=dtype, offset=header_size).reshape(shape).astype(dtype.newbyteorder("="))


def _find(directory: str, stem: str) -> str:
    for name in (stem + ".gz", stem):
        candidate = os.path.join(directory, name)
        if os.path.exists(candidate):
            return candidate
    raise FileNotFoundError(
        f"{directory} has no {stem} or {stem}.gz; an MNIST-style folder holds "
        f"{', '.join(name for pair in _MNIST_FILES.values() for name in pair)} (each may end in .gz)."
    )


def load_mnist(directory):
    """Loads an MNIST-style folder of IDX files (MNIST, Fashion-MNIST, KMNIST, ...).

    Args:
      directory: folder with `train-images-idx3-ubyte`, `train-labels-idx1-ubyte`,
        `t10k-images-idx3-ubyte` and `t10k-labels-idx1-ubyte`, each possibly `.gz`.

    Returns:
      `((x_train, y_train), (x_test, y_test))` with `x` float32 of shape `(n, 28, 28, 1)`
      scaled to [0, 1] and `y` int64 labels.

    Raises:
      FileNotFoundError: a file is missing.
      ValueError: images and labels disagree in count, or a file is not valid IDX.

    Examples:
      >>> (x_train, y_train), (x_test, y_test) = tfc.data.load_mnist("data/mnist")
    """
    directory = os.fspath(directory)
    splits = []
    for images_stem, labels_stem in _MNIST_FILES.values():
        images = read_idx(_find(directory, images_stem))
        labels = read_idx(_find(directory, labels_stem))
        if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
            raise ValueError(
                f"{images_stem} has shape {images.shape} and {labels_stem} has shape "
                f"{labels.shape}; expected (n, height, width) images and n labels."
            )
        scale = 255.0 if images.dtype == np.uint8 else 1.0
        splits.append(((images / scale).astype(np.float32)[..., np.newaxis], labels.astype(np.int64)))
    return tuple(splits)
