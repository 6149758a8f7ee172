"""Real data that ships inside a package, so nothing has to be downloaded."""

import numpy as np


def load_digits(test_fraction: float = 0.2, seed: int = 0):
    """Loads scikit-learn's 1,797 handwritten 8x8 digits, split into train and test.

    The images are real scans (UCI "Optical Recognition of Handwritten Digits") and ship
    inside scikit-learn, so this works with no network.

    Args:
      test_fraction: share of the images held out for testing, stratified by class.
      seed: seed of the split, so the same images are held out every time.

    Returns:
      `((x_train, y_train), (x_test, y_test))` like `keras.datasets.mnist.load_data()`,
      with `x` float32 of shape `(n, 8, 8, 1)` scaled to [0, 1] and `y` int64 labels 0-9.

    Raises:
      ValueError: `test_fraction` is not strictly between 0 and 1.

    Examples:
      >>> (x_train, y_train), (x_test, y_test) = tfc.data.load_digits()
      >>> x_train.shape
      (1437, 8, 8, 1)
    """
    if not 0 < test_fraction < 1:
        raise ValueError(
            f"`test_fraction` must be between 0 and 1 (exclusive). Received: test_fraction={test_fraction}"
        )
    from sklearn.datasets import load_digits as sklearn_digits
    from sklearn.model_selection import train_test_split

    digits = sklearn_digits()
    # Pixel intensities in the data set run from 0 to 16.
    images = (digits.images / 16.0).astype(np.float32)[..., np.newaxis]
    labels = digits.target.astype(np.int64)
    x_train, x_test, y_train, y_test = train_test_split(
        images, labels, test_size=test_fraction, random_state=seed, stratify=labels
    )
    return (x_train, y_train), (x_test, y_test)
