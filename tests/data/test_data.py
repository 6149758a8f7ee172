"""The built-in digits and the loaders for users' own data, on real images."""

import gzip
import os

import numpy as np
import pytest
import tensorflow as tf

import tfcompress as tfc


def test_digits_are_real_stratified_and_scaled(digits):
    (x_train, y_train), (x_test, y_test) = digits
    assert x_train.shape == (1437, 8, 8, 1) and x_test.shape == (360, 8, 8, 1)
    assert x_train.dtype == np.float32 and 0.0 == x_train.min() and x_train.max() == 1.0
    assert sorted(set(y_test)) == list(range(10))
    assert np.all(np.bincount(y_test) >= 35)


def test_digits_split_is_reproducible(digits):
    (_, y_train), _ = tfc.data.load_digits()
    np.testing.assert_array_equal(y_train, digits[0][1])


@pytest.mark.parametrize("fraction", [0, 1, -0.2, 1.5])
def test_digits_bad_fraction(fraction):
    with pytest.raises(ValueError, match=r"`test_fraction` must be between 0 and 1"):
        tfc.data.load_digits(test_fraction=fraction)


def _write_idx(path, array, compress):
    rank = array.ndim
    header = bytes([0, 0, 0x08, rank]) + b"".join(int(size).to_bytes(4, "big") for size in array.shape)
    content = header + array.astype(np.uint8).tobytes()
    with (gzip.open if compress else open)(path, "wb") as file:
        file.write(content)


@pytest.fixture
def digits_as_idx(tmp_path, digits):
    """The digits written as an MNIST-style IDX folder (images 0-255, gzip)."""
    (x_train, y_train), (x_test, y_test) = digits
    for stem, array in [
        ("train-images-idx3-ubyte", np.round(x_train[..., 0] * 255)),
        ("train-labels-idx1-ubyte", y_train),
        ("t10k-images-idx3-ubyte", np.round(x_test[..., 0] * 255)),
        ("t10k-labels-idx1-ubyte", y_test),
    ]:
        _write_idx(tmp_path / f"{stem}.gz", array, compress=True)
    return tmp_path


@pytest.mark.parametrize("compress", [True, False])
def test_read_idx_round_trip(tmp_path, digits, compress):
    labels = digits[1][1]
    path = tmp_path / ("labels.gz" if compress else "labels")
    _write_idx(path, labels, compress)
    np.testing.assert_array_equal(tfc.data.read_idx(path), labels)


def test_load_mnist_folder(digits_as_idx, digits):
    (x_train, y_train), (x_test, y_test) = tfc.data.load_mnist(digits_as_idx)
    assert x_train.shape == (1437, 8, 8, 1) and x_test.shape == (360, 8, 8, 1)
    np.testing.assert_allclose(x_test, digits[1][0], atol=1 / 255)
    np.testing.assert_array_equal(y_train, digits[0][1])


def test_load_mnist_missing_file(digits_as_idx):
    os.remove(digits_as_idx / "t10k-labels-idx1-ubyte.gz")
    with pytest.raises(FileNotFoundError, match=r"has no t10k-labels-idx1-ubyte or t10k-labels-idx1-ubyte\.gz"):
        tfc.data.load_mnist(digits_as_idx)


def test_read_idx_truncated(tmp_path, digits):
    path = tmp_path / "labels"
    _write_idx(path, digits[1][1], compress=False)
    path.write_bytes(path.read_bytes()[:-10])
    with pytest.raises(ValueError, match=r"truncated or padded: its header declares shape \(360,\)"):
        tfc.data.read_idx(path)


def test_read_idx_not_idx(tmp_path):
    path = tmp_path / "image.png"
    path.write_bytes(b"\x89PNG\r\n\x1a\n")
    with pytest.raises(ValueError, match=r"is not an IDX file: its first bytes are 89504e47"):
        tfc.data.read_idx(path)


@pytest.fixture
def image_folder(tmp_path, digits):
    """40 real digit images saved as PNG files in one folder per class (0-3)."""
    (x_train, y_train), _ = digits
    for label in range(4):
        folder = tmp_path / f"digit_{label}"
        folder.mkdir()
        for number, image in enumerate(x_train[y_train == label][:10]):
            png = tf.io.encode_png(tf.constant(np.round(image * 255).astype(np.uint8)))
            (folder / f"{number}.png").write_bytes(png.numpy())
    return tmp_path


def test_load_image_directory(image_folder):
    dataset, class_names = tfc.data.load_image_directory(image_folder, image_size=(8, 8), batch_size=16)
    x, y = tfc.data.as_arrays(dataset)
    assert class_names == ["digit_0", "digit_1", "digit_2", "digit_3"]
    assert x.shape == (40, 8, 8, 1) and sorted(np.bincount(y)) == [10, 10, 10, 10]
    assert 0.0 <= x.min() and x.max() <= 1.0 and x.max() > 0.9


def test_load_image_directory_bad_input(tmp_path, image_folder):
    with pytest.raises(FileNotFoundError, match=r"does not exist"):
        tfc.data.load_image_directory(tmp_path / "missing")
    with pytest.raises(ValueError, match=r"`color_mode` must be one of"):
        tfc.data.load_image_directory(image_folder, color_mode="cmyk")


def test_as_arrays_from_batched_dataset_with_limit(digits):
    (x_train, y_train), _ = digits
    dataset = tf.data.Dataset.from_tensor_slices((x_train, y_train)).batch(64)
    x, y = tfc.data.as_arrays(dataset, limit=100)
    np.testing.assert_array_equal(x, x_train[:100])
    np.testing.assert_array_equal(y, y_train[:100])


@pytest.mark.parametrize(
    "x, y, message",
    [
        (np.zeros((0, 8, 8, 1)), None, r"`x` is empty"),
        (np.full((3, 8, 8, 1), np.nan), None, r"holds NaN or infinite values in 3 of 3 examples"),
        (np.zeros((3, 8, 8, 1)), np.zeros(2), r"has 3 examples but the labels have 2"),
        (np.array([["a"]]), None, r"must be numeric"),
    ],
)
def test_as_arrays_bad_input(x, y, message):
    with pytest.raises(ValueError, match=message):
        tfc.data.as_arrays(x, y)


def test_as_arrays_rejects_labels_beside_a_dataset():
    dataset = tf.data.Dataset.from_tensor_slices(np.zeros((4, 2))).batch(2)
    with pytest.raises(ValueError, match=r"carries its own labels; pass y=None"):
        tfc.data.as_arrays(dataset, np.zeros(4))
