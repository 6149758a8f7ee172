"""What the benchmarks share: the data they run on, an epoch timer, the CPU's name and alternating latencies."""

import os
import pathlib
import platform
import subprocess
import time

import numpy as np
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


def cpu() -> str:
    """The CPU's model name and the features int8 speed depends on (AVX2, AVX-512, VNNI), from `lscpu`."""
    try:
        lines = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=10).stdout.splitlines()
        fields = dict(line.split(":", 1) for line in lines if ":" in line)
        flags_ = fields.get("Flags", "").split()
        features = [name for name in ("avx2", "avx512f", "avx512_vnni", "avx_vnni") if name in flags_]
        return f"{fields.get('Model name', '').strip()} ({', '.join(features) or 'no AVX2'})"
    except (OSError, subprocess.SubprocessError):
        return platform.processor()


def alternating_latencies(paths, rounds: int = 5, runs: int = 100) -> dict:
    """Median over rounds of each file's median latency (ms, 1 thread, XNNPACK), the files timed in turn each round.

    Timing the files in turn, round after round, spreads whatever else the machine does
    over all of them instead of landing on one file's window.
    """
    medians = {path: [] for path in paths}
    for _ in range(rounds):
        for path in paths:
            (timing,) = tfc.export.benchmark(path, threads=1, xnnpack=True, runs=runs, max_seconds=5)["latency"]
            medians[path].append(timing["median_ms"])
    return {path: float(np.median(values)) for path, values in medians.items()}
