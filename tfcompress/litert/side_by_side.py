"""Several `.tflite` files timed side by side in interleaved rounds: speed-ups with bootstrap intervals.

Why interleaved rounds, several interpreters a file, and a two-stage bootstrap: docs/design/latency.md.
"""

import dataclasses
import os
import tempfile
import time

import numpy as np

from tfcompress._results import Result
from tfcompress.litert.latency import warmed_interpreter
from tfcompress.litert.machine import cpu
from tfcompress.report import format_table

_BOOTSTRAP_SAMPLES = 2000
# Untimed invokes each file gets when its turn in a round comes: the file before it left the caches cold.
_ROUND_WARMUP = 1


@dataclasses.dataclass(frozen=True)
class SideBySide(Result):
    """What `time_side_by_side` measured.

    Attributes:
      cpu: the CPU and its int8-relevant features (`tfc.litert.cpu()`).
      threads, xnnpack, rounds, invokes, interpreters, confidence: how the files were timed (rounds: done).
      baseline: the label of the file the ratios are to.
      files: one dict per file, in order: `label`, `path` (None for bytes), `median_ms`, `spread`, `round_ms`,
        `interpreter_ms`, `speedup`, `speedup_low`, `speedup_high`, `verdict`.
    """

    cpu: str
    threads: int
    xnnpack: bool
    rounds: int
    invokes: int
    interpreters: int
    confidence: float
    baseline: str
    files: list


def time_side_by_side(
    files,
    *,
    baseline=0,
    threads: int = 1,
    xnnpack: bool = True,
    rounds: int = 200,
    invokes: int = 5,
    interpreters: int = 3,
    max_seconds: float = 60.0,
    seed: int = 0,
) -> dict:
    """Times several `.tflite` files side by side and gives each one's speed-up over a baseline, with an interval.

    Args:
      files: a list of `.tflite` paths, or a dict `{label: path or the file's bytes}`; at least two.
      baseline: the label, or the position, of the file the ratios are to.
      threads: interpreter threads, as in `benchmark` (None: every core).
      xnnpack: with LiteRT's default XNNPACK delegate (as phone apps run) or without.
      rounds: the most interleaved rounds, at least 5.
      invokes: timed invokes of each file per round, at least 3.
      interpreters: interpreters per file, at least 1 (each holds its own packed weights).
      max_seconds: stop starting rounds after this long (5 rounds are always run).
      seed: seed of the shuffles, the inputs and the bootstrap.

    Returns:
      A `SideBySide`: the CPU, the settings, and per file its median, spread, speed-up with its interval and
      verdict ("baseline", "faster", "slower" or "cannot be told apart").

    Raises:
      ValueError: fewer than two files, a Keras model, an unknown baseline, an argument out of range, or a file
        LiteRT cannot load.
      FileNotFoundError: a path with no file.

    Examples:
      >>> result = tfc.litert.time_side_by_side({"float32": "m32.tflite", "int8": "m8.tflite"})
      >>> print(tfc.litert.format_side_by_side(result))
    """
    labelled = labelled_files(files)
    for label, source in labelled.items():
        if not isinstance(source, (str, os.PathLike, bytes)):
            raise ValueError(
                f"time_side_by_side times .tflite files; {label!r} is a {type(source).__name__}. Export it first "
                f"(tfc.export.to_tflite(model, 'model.tflite', mode='float32')) and pass the file's path."
            )
    return timed(labelled, baseline=baseline, threads=threads, xnnpack=xnnpack, rounds=rounds, invokes=invokes,
                 interpreters=interpreters, max_seconds=max_seconds, seed=seed)  # fmt: skip


def timed(labelled, *, baseline=0, threads=1, xnnpack=True, rounds=200, invokes=5, interpreters=3, warmup=5,
          max_seconds=60.0, confidence=0.95, seed=0) -> dict:  # fmt: skip
    """`time_side_by_side` on `{label: path or bytes}`, with its warm-up and interval coverage as arguments."""
    _check_settings(threads, rounds, invokes, interpreters, warmup, max_seconds, confidence)
    base = _baseline_label(labelled, baseline)
    rng = np.random.default_rng(seed)
    with tempfile.TemporaryDirectory(prefix="tfcompress_timing_") as folder:
        paths = {label: _as_file(source, folder, label) for label, source in labelled.items()}
        count = (os.cpu_count() or 1) if threads is None else threads
        ready = {label: [warmed_interpreter(path, count, xnnpack, rng, warmup) for _ in range(interpreters)]
                 for label, path in paths.items()}  # fmt: skip
        round_ms = _interleaved_rounds(ready, rounds, invokes, max_seconds, rng)
    # Bytes were written to a temporary file: their row has no path.
    kept = {label: paths[label] if isinstance(source, (str, os.PathLike)) else None
            for label, source in labelled.items()}  # fmt: skip
    rows = [_row(label, kept[label], round_ms, base, interpreters, confidence, rng) for label in labelled]
    return SideBySide(cpu=cpu(), threads=threads, xnnpack=xnnpack, rounds=len(round_ms[base]), invokes=invokes,
                      interpreters=interpreters, confidence=confidence, baseline=base, files=rows)  # fmt: skip


def format_side_by_side(result: SideBySide) -> str:
    """`time_side_by_side`'s result as a plain-text table headed by the CPU and the settings.

    Args:
      result: what `time_side_by_side` returned.

    Returns:
      The text: one heading line, then one row per file with its median latency, spread,
      and ratio to the baseline with its interval.

    Examples:
      >>> print(tfc.litert.format_side_by_side(tfc.litert.time_side_by_side(["a.tflite", "b.tflite"])))
    """
    count = result.threads
    threads = "every core" if count is None else f"{count} thread{'s' if count > 1 else ''}"
    heading = (
        f"LiteRT, batch 1, {threads}, XNNPACK {'on' if result.xnnpack else 'off'}; {result.rounds} interleaved "
        f"rounds of {result.invokes} invokes, {_interpreters(result.interpreters)} a file; {result.cpu}"
    )
    level = f"{result.confidence:.0%}"
    rows = [
        {
            "label": row["label"],
            "median": f"{row['median_ms']:.4f}",
            "spread": f"{row['spread']:.0%}",
            "ratio": "baseline"
            if row["verdict"] == "baseline"
            else f"{row['speedup']:.2f}x ({row['speedup_low']:.2f}-{row['speedup_high']:.2f})",
            "verdict": "" if row["verdict"] == "baseline" else row["verdict"],
        }
        for row in result.files
    ]
    columns = [("label", "file"), ("median", "median ms"), ("spread", "spread"),
               ("ratio", f"x faster than {result.baseline} ({level} interval)"), ("verdict", "verdict")]  # fmt: skip
    return heading + "\n" + format_table(rows, columns)


def _interpreters(count) -> str:
    return f"{count} interpreter{'s' if count > 1 else ''}"


def _check_settings(threads, rounds, invokes, interpreters, warmup, max_seconds, confidence):
    checks = {
        "threads": threads is None or (isinstance(threads, int) and threads >= 1),
        "rounds": isinstance(rounds, int) and rounds >= 5,
        "invokes": isinstance(invokes, int) and invokes >= 3,
        "interpreters": isinstance(interpreters, int) and interpreters >= 1,
        "warmup": isinstance(warmup, int) and warmup >= 0,
        "max_seconds": isinstance(max_seconds, (int, float)) and max_seconds > 0,
        "confidence": isinstance(confidence, float) and 0 < confidence < 1,
    }
    values = (threads, rounds, invokes, interpreters, warmup, max_seconds, confidence)
    wrong = {name: value for name, value in zip(checks, values) if not checks[name]}
    if wrong:
        raise ValueError(
            f"Side-by-side timing got {wrong}: `threads` must be None or >= 1, `rounds` >= 5, `invokes` >= 3, "
            "`interpreters` >= 1, `warmup` >= 0, `max_seconds` > 0 and `confidence` a float in (0, 1)."
        )


def labelled_files(models) -> dict:
    """`{label: path or model}`: dict keys, else the file names (whole paths where two share one), else model names."""
    if isinstance(models, dict):
        labelled = {str(label): source for label, source in models.items()}
    elif isinstance(models, (list, tuple)):
        names = [_name(source) for source in models]
        if len(set(names)) < len(names):
            names = [os.fspath(source) if isinstance(source, (str, os.PathLike)) else name
                     for source, name in zip(models, names)]  # fmt: skip
        if len(set(names)) < len(names):
            names = [f"{index}: {name}" for index, name in enumerate(names)]
        labelled = dict(zip(names, models))
    else:
        raise ValueError(
            "`files` must be a list of .tflite paths, or a dict {label: path or bytes}. "
            f"Received: {type(models).__name__}"
        )
    if len(labelled) < 2:
        raise ValueError(
            f"Timing side by side needs at least two files to put side by side; received {len(labelled)}. "
            "For one file, use tfc.litert.benchmark."
        )
    return labelled


def _name(source) -> str:
    if isinstance(source, (str, os.PathLike)):
        return os.path.basename(os.fspath(source))
    return getattr(source, "name", type(source).__name__)


def _baseline_label(labelled, baseline) -> str:
    labels = list(labelled)
    if isinstance(baseline, int) and not isinstance(baseline, bool) and -len(labels) <= baseline < len(labels):
        return labels[baseline]
    if isinstance(baseline, str) and baseline in labelled:
        return baseline
    raise ValueError(f"`baseline` must be one of {labels} or a position 0..{len(labels) - 1}. Received: {baseline!r}")


def _as_file(source, folder, label) -> str:
    if isinstance(source, (str, os.PathLike)):
        return os.path.abspath(os.fspath(source))
    safe = "".join(c if c.isalnum() else "_" for c in label)
    if isinstance(source, bytes):
        path = os.path.join(folder, f"{safe}.tflite")
        with open(path, "wb") as file:
            file.write(source)
        return path
    raise ValueError(f"{label!r} is not a .tflite path or a file's bytes.")


def _interleaved_rounds(interpreters, rounds, invokes, max_seconds, rng) -> dict:
    """`{label: [median ms of each round]}`: files in a new random order each round, round r on interpreter r mod k."""
    labels = list(interpreters)
    turn = len(interpreters[labels[0]])
    round_ms = {label: [] for label in labels}
    deadline = time.perf_counter() + max_seconds
    for done in range(rounds):
        if done >= 5 and time.perf_counter() > deadline:
            break
        for index in rng.permutation(len(labels)):
            interpreter, times = interpreters[labels[index]][done % turn], []
            for _ in range(_ROUND_WARMUP):
                interpreter.invoke()
            for _ in range(invokes):
                start = time.perf_counter()
                interpreter.invoke()
                times.append(time.perf_counter() - start)
            round_ms[labels[index]].append(1e3 * float(np.median(times)))
    return round_ms


def _row(label, path, round_ms, base, interpreters, confidence, rng) -> dict:
    mine, theirs = np.asarray(round_ms[label]), np.asarray(round_ms[base])
    p10, median, p90 = np.percentile(mine, [10, 50, 90])
    speedup = float(np.median(theirs) / median)
    # Paired two-stage bootstrap: draw interpreters (round r ran on interpreter r mod k, in every file),
    # then rounds of each drawn one; the same rounds for both files, so what a round shared cancels.
    used = min(interpreters, len(mine))
    rounds_of = np.array([len(range(start, len(mine), interpreters)) for start in range(used)])
    drawn = rng.integers(0, used, size=(_BOOTSTRAP_SAMPLES, used, 1))
    shape = (_BOOTSTRAP_SAMPLES, used, int(rounds_of.min()))
    within = (rng.random(shape) * rounds_of[drawn]).astype(int)
    picks = (drawn + interpreters * within).reshape(_BOOTSTRAP_SAMPLES, -1)
    ratios = np.median(theirs[picks], axis=1) / np.median(mine[picks], axis=1)
    tail = 100 * (1 - confidence) / 2
    low, high = (float(value) for value in np.percentile(ratios, [tail, 100 - tail]))
    if label == base:
        verdict = "baseline"
    elif low <= 1 <= high:
        verdict = "cannot be told apart"
    else:
        verdict = "faster" if low > 1 else "slower"
    return {
        "label": label,
        "path": path,
        "median_ms": float(median),
        "spread": float((p90 - p10) / median),
        "round_ms": [float(value) for value in mine],
        "interpreter_ms": [float(np.median(mine[start::interpreters])) for start in range(used)],
        "speedup": speedup,
        "speedup_low": low,
        "speedup_high": high,
        "verdict": verdict,
    }
