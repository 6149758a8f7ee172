"""What the benchmarks share: the data they run on, an epoch timer, files timed side by side, and the results page."""

import contextlib
import datetime
import io
import os
import pathlib
import re
import sys
import time
from importlib import metadata

from absl import app, flags

import tfcompress as tfc
from tfcompress import keras

DEFAULT_MNIST = pathlib.Path(__file__).resolve().parents[2] / "shared" / "data" / "mnist"
flags.DEFINE_string("mnist_dir", str(DEFAULT_MNIST), "Folder with MNIST's four IDX files.")
flags.DEFINE_bool("write", False, "Write this run's results page, docs/results/<script>.md (a whole run only).")
RESULTS = pathlib.Path(__file__).resolve().parents[1] / "docs" / "results"
_PACKAGES = ("tensorflow", "tf-keras", "tensorflow-model-optimization", "ai-edge-litert")


def run(main, *, partial_flags=(), packages=()):
    """`app.run(main)`; with --write, what the run printed becomes its results page (or what `main` returns).

    Args:
      main: the script's `main(argv)`. It may return the page's body as Markdown; by default the page holds
        everything the run printed.
      partial_flags: flags that run only part of the benchmark: --write refuses them.
      packages: distributions beyond the core ones whose versions the page names (an optional extra the run uses).
    """

    def write_page(argv):
        chosen = [name for name in partial_flags if flags.FLAGS[name].present]
        if flags.FLAGS.write and chosen:
            raise SystemExit(f"--write records a whole run; leave out {', '.join('--' + name for name in chosen)}.")
        printed = io.StringIO()
        with contextlib.redirect_stdout(_Tee(sys.stdout, printed)):
            body = main(argv)
        if isinstance(body, int) and body:
            raise SystemExit(body)
        if flags.FLAGS.write:
            script = pathlib.Path(sys.argv[0]).stem
            body = body if isinstance(body, str) else f"```text\n{printed.getvalue().strip()}\n```\n"
            write_results(script, body, packages=packages)

    app.run(write_page)


def heading(script, packages=()) -> str:
    """The line every results page starts with: the command, the date, the versions and the CPU."""
    module = sys.modules["__main__"]
    title = (module.__doc__ or script).strip().splitlines()[0].rstrip(".")
    arguments = " ".join(argument for argument in sys.argv[1:] if argument != "--write")
    command = f"python benchmarks/{script}.py {arguments}".strip()
    versions = ", ".join(f"{name} {_version(name)}" for name in (*_PACKAGES, *packages))
    return (f"# {title}\n\nWritten by `{command} --write` on {datetime.date.today().isoformat()}: "
            f"tfcompress {tfc.__version__}, {versions}; CPU: {tfc.litert.cpu()}.\n")  # fmt: skip


def _version(name) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "not installed"


def write_results(script, body, *, between=None, packages=()) -> pathlib.Path:
    """Writes docs/results/<script>.md: the heading, then `body`; or only the block `between` two marker lines."""
    path = RESULTS / f"{script}.md"
    if between is None:
        text = heading(script, packages) + "\n" + body.strip() + "\n"
    else:
        start, end = between
        text = path.read_text(encoding="utf-8")
        pattern = re.compile(re.escape(start) + ".*?" + re.escape(end), flags=re.S)
        if not pattern.search(text):
            raise SystemExit(f"{path} has no {start!r} ... {end!r} block to write into.")
        text = pattern.sub(lambda _: f"{start}\n{body.strip()}\n{end}", text)
    temporary = path.with_suffix(".md.tmp")
    temporary.write_text(text, encoding="utf-8")
    os.replace(temporary, path)
    print(f"Wrote {path}.", file=sys.__stdout__)
    return path


class _Tee(io.TextIOBase):
    """Writes to the terminal and keeps a copy."""

    def __init__(self, *streams):
        self.streams = streams

    def write(self, text):
        for stream in self.streams:
            stream.write(text)
        return len(text)

    def flush(self):
        for stream in self.streams:
            stream.flush()


def markdown_table(header, rows) -> str:
    """A Markdown table: `header` a list of headings, `rows` lists of cells (strings) in the same order."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in rows])


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
    """Times the rows' files together (`tfc.litert.time_side_by_side`); fills in latency and speed-up, in place.

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
        files = {row["model"]: row["path"] for row in rows}
        result = tfc.litert.time_side_by_side(files, baseline=baseline, threads=count,
                                    rounds=rounds, max_seconds=120)  # fmt: skip
        for row, timing in zip(rows, result.files):
            row[f"us_{count}"] = 1000 * timing["median_ms"]
            row[f"x_{count}"] = _speedup_text(timing)
    return tfc.litert.cpu()


def _speedup_text(timing) -> str:
    if timing["verdict"] == "baseline":
        return "1.00x"
    same = " same" if timing["verdict"] == "cannot be told apart" else ""
    return f"{timing['speedup']:.2f}x ({timing['speedup_low']:.2f}-{timing['speedup_high']:.2f}){same}"
