"""What the benchmarks share: the data they run on and an epoch timer."""

import os
import pathlib
import time

from absl import flags

import tfcompress as tfc
from tfcompress import keras

DEFAULT_MNIST = pathlib.Path(__file__).resolve().parents[2] / "shared" / "data" / "mnist"
flags.DEFINE_string("mnist_dir", str(DEFAULT_MNIST), "Folder with MNIST's four IDX files.")


def load_data():
    """`((x_train, y_train), (x_test, y_test)), description`: MNIST from --mnist_dir if it exists, else digits."""
    mnist_dir = flags.FLAGS.mnist_dir
    if mnist_dir and os.path.isdir(mnist_dir):
        return tfc.data.load_mnist(mnist_dir), f"MNIST ({mnist_dir})"
    return tfc.data.load_digits(), "built-in digits (MNIST folder not found)"


class EpochTimer(keras.callbacks.Callback):
    """Records the wall-clock seconds of every epoch in `seconds`."""

    def __init__(self):
        super().__init__()
        self.seconds = []

    def on_epoch_begin(self, epoch, logs=None):
        self._start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.seconds.append(time.perf_counter() - self._start)

    @property
    def steady_epoch(self):
        """Median epoch time without the first epoch, which also pays for tracing."""
        steady = sorted(self.seconds[1:] or self.seconds)
        return steady[len(steady) // 2]


def mnist_cnn(input_shape):
    """The benchmarks' CNN: conv32-conv64 (3x3, same padding, each max-pooled), dense128, 10 logits.

    Args:
      input_shape: shape of one image.

    Returns:
      An uncompiled Sequential model (421,642 parameters on 28x28x1).
    """
    return keras.Sequential(
        [
            keras.Input(input_shape),
            keras.layers.Conv2D(32, 3, padding="same", activation="relu"),
            keras.layers.MaxPooling2D(),
            keras.layers.Conv2D(64, 3, padding="same", activation="relu"),
            keras.layers.MaxPooling2D(),
            keras.layers.Flatten(),
            keras.layers.Dense(128, activation="relu"),
            keras.layers.Dense(10),
        ],
        name="mnist_cnn",
    )


def compile_classifier(model, learning_rate):
    """Compiles `model` with Adam, sparse cross-entropy from logits and accuracy; returns it."""
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    return model
