"""What the benchmarks share: the data they run on, an epoch timer, and files timed side by side."""

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


def side_by_side(rows, threads=(1,), baseline=0, rounds=200) -> str:
    """Times the rows' files together (`tfc.export.compare`) and fills in each row's latency and speed-up, in place.

    For each thread count t: `us_t` (median of round medians, microseconds) and `x_t`
    ("2.31x (2.25-2.40)": the baseline row's latency over this row's, with its 95%
    interval; "same" where the interval holds 1).

    Args:
      rows: dicts with `model` (a unique label) and `path` (the .tflite file).
      threads: interpreter thread counts, one comparison each.
      baseline: the position of the row the speed-ups are to.
      rounds: interleaved rounds.

    Returns:
      The CPU they ran on, to print with the table.
    """
    for count in threads:
        result = tfc.export.compare({row["model"]: row["path"] for row in rows}, baseline=baseline, threads=count,
                                    rounds=rounds, max_seconds=120)  # fmt: skip
        for row, timing in zip(rows, result["files"]):
            row[f"us_{count}"] = 1000 * timing["median_ms"]
            row[f"x_{count}"] = _speedup_text(timing)
    return tfc.export.cpu()


def _speedup_text(timing) -> str:
    if timing["verdict"] == "baseline":
        return "1.00x"
    same = " same" if timing["verdict"] == "cannot be told apart" else ""
    return f"{timing['speedup']:.2f}x ({timing['speedup_low']:.2f}-{timing['speedup_high']:.2f}){same}"
