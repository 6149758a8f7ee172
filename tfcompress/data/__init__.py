"""Data: a built-in real data set and loaders for users' own data.

Examples:
  >>> (x_train, y_train), (x_test, y_test) = tfc.data.load_digits()
"""

from tfcompress.data.arrays import as_arrays
from tfcompress.data.builtin import load_digits
from tfcompress.data.idx import load_mnist, read_idx
from tfcompress.data.images import load_image_directory
from tfcompress.data.sources import load_source

__all__ = ["as_arrays", "load_digits", "load_image_directory", "load_mnist", "load_source", "read_idx"]
