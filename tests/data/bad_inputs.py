"""Bad inputs to data: its cases of the catalogue (tests/test_bad_inputs.py)."""

import numpy as np

import tfcompress as tfc
from tests.bad_inputs_support import file

CASES = {
    "data: MNIST folder missing": (lambda t, m, x: tfc.data.load_mnist(t / "mnist"), FileNotFoundError, "mnist"),
    "data: image folder missing": (
        lambda t, m, x: tfc.data.load_image_directory(t / "images"),
        FileNotFoundError,
        "does not exist",
    ),
    "data: not an IDX file": (
        lambda t, m, x: tfc.data.read_idx(file(t, "train-images-idx3-ubyte", b"\x00\x00\x09\x03" + b"\x00" * 4)),
        ValueError,
        "is truncated or padded",
    ),
    "data: empty array": (lambda t, m, x: tfc.data.as_arrays(np.zeros((0, 8, 8, 1))), ValueError, "is empty"),
}
