"""Latency of several `.tflite` files side by side: interleaved rounds, ratios with intervals.

Timing one file after another lets whatever else the machine does in one file's window
land on that file alone: three files of the same shape timed up to 30% apart that way here
(benchmarks/latency_noise.py). Here every round runs each file in turn, in a new shuffled
order, for a short batch of invokes after one untimed one; a file's latency is the median of
its per-round medians, and a ratio's interval comes from resampling whole rounds, so the
rounds' shared conditions cancel in it. Many short rounds beat a few long ones: on 2 cores
busy training, three same-shape CNNs (150 us each) came within 1.8% of each other in 200
rounds of 5 invokes, and up to 3.8% apart in 30 rounds of 20.

An interpreter can have a speed of its own, too: in one run here six interleaved
interpreters of one 20 us int8 file ran 18.2 to 24.2 us (in two later runs, within 1.6%).
So each file gets several, the rounds take them in turn, and the bootstrap draws
interpreters before rounds.
"""

import os
import tempfile
import time

import numpy as np

from tfcompress.export.latency import warmed_interpreter
from tfcompress.export.machine import cpu

_BOOTSTRAP_SAMPLES = 2000
# Untimed invokes each file gets when its turn in a round comes: the file before it left the caches cold.
_ROUND_WARMUP = 1


def compare(
    models,
    *,
    baseline=0,
    threads: int = 1,
    xnnpack: bool = True,
    rounds: int = 200,
    invokes: int = 5,
    interpreters: int = 3,
    warmup: int = 5,
    max_seconds: float = 60.0,
    confidence: float = 0.95,
    seed: int = 0,
) -> dict:
    """Times several `.tflite` files (or Keras models) side by side and gives each one's ratio to a baseline.

    Every file gets `interpreters` interpreters of its own (batch 1, random inputs of its
    dtypes, `warmup` untimed invokes each): two interpreters of one small file were once
    30% apart here, so one alone would lend the file its luck. Then each round runs every file,
    in a shuffled order, for one untimed and `invokes` timed invokes, round r on interpreter
    r mod `interpreters`; rounds stop at `rounds`, or after `max_seconds` once 5 are done.
    A file's latency is the median of its round
    medians; `speedup` is the baseline's over the file's (above 1: faster than the
    baseline), and its interval comes from a bootstrap that resamples interpreters and
    then rounds, the same rounds for both files. Two files whose interval holds 1 cannot
    be told apart on this machine.

    Args:
      models: a list of `.tflite` paths or Keras 2 models, or a dict `{label: path,
        model or the file's bytes}`; at least two. A Keras model is exported as float32
        (`to_tflite`) to a temporary file first; export it yourself for another mode.
      baseline: the label, or the position, of the file the ratios are to.
      threads: interpreter threads, as in `benchmark` (None: every core).
      xnnpack: with LiteRT's default XNNPACK delegate (as phone apps run) or without.
      rounds: the most interleaved rounds, at least 5.
      invokes: timed invokes of each file per round, at least 3.
      interpreters: interpreters per file, at least 1. Each holds its own copy of
        XNNPACK's packed weights, so memory grows with it on large models.
      warmup: untimed invokes of each interpreter before the first round.
      max_seconds: stop starting rounds after this long (5 rounds are always run).
      confidence: the intervals' coverage, in (0, 1).
      seed: seed of the shuffles, the inputs and the bootstrap.

    Returns:
      A dict: `cpu` (model and int8-relevant features, `tfc.export.cpu()`), `threads`,
      `xnnpack`, `rounds`, `invokes`, `interpreters`, `confidence`, `baseline` (its label),
      and `files`: one dict per file in the order given, with `label`, `path` (None for a
      Keras model or bytes, whose file was temporary), `median_ms`, `spread`
      ((p90 - p10) / median of its round medians), `round_ms` (the round medians),
      `interpreter_ms` (the median of each interpreter's rounds),
      `speedup`, `speedup_low`, `speedup_high` and `verdict` ("baseline", "faster",
      "slower" or "cannot be told apart"). `format_comparison` prints it as a table.

    Raises:
      ValueError: fewer than two models, a label or position that is not among them, an
        argument out of range, or a file LiteRT cannot load (XNNPACK refusing a sparse
        file included).
      FileNotFoundError: a path with no file.

    Example:
      >>> result = tfc.export.compare({"float32": "m32.tflite", "int8": "m8.tflite"})
      >>> print(tfc.export.format_comparison(result))
    """
    _check_settings(threads, rounds, invokes, interpreters, warmup, max_seconds, confidence)
    labelled = _labelled(models)
    base = _baseline_label(labelled, baseline)
    rng = np.random.default_rng(seed)
    with tempfile.TemporaryDirectory(prefix="tfcompress_compare_") as folder:
        paths = {label: _as_file(source, folder, label) for label, source in labelled.items()}
        count = (os.cpu_count() or 1) if threads is None else threads
        ready = {label: [warmed_interpreter(path, count, xnnpack, rng, warmup) for _ in range(interpreters)]
                 for label, path in paths.items()}  # fmt: skip
        round_ms = _interleaved_rounds(ready, rounds, invokes, max_seconds, rng)
    # A Keras model's or bytes' file was temporary: its row has no path.
    kept = {label: paths[label] if isinstance(source, (str, os.PathLike)) else None
            for label, source in labelled.items()}  # fmt: skip
    files = [_row(label, kept[label], round_ms, base, interpreters, confidence, rng) for label in labelled]
    return {
        "cpu": cpu(),
        "threads": threads,
        "xnnpack": xnnpack,
        "rounds": len(round_ms[base]),
        "invokes": invokes,
        "interpreters": interpreters,
        "confidence": confidence,
        "baseline": base,
        "files": files,
    }


def format_comparison(result: dict) -> str:
    """`compare`'s result as a plain-text table headed by the CPU and the settings.

    Args:
      result: what `compare` returned.

    Returns:
      The text: one heading line, then one row per file with its median latency, spread,
      and ratio to the baseline with its interval.

    Example:
      >>> print(format_comparison(tfc.export.compare(["a.tflite", "b.tflite"])))
    """
    from tfcompress.report import format_table  # report imports plotting; only needed here

    count = result["threads"]
    threads = "every core" if count is None else f"{count} thread{'s' if count > 1 else ''}"
    heading = (
        f"LiteRT, batch 1, {threads}, XNNPACK {'on' if result['xnnpack'] else 'off'}; {result['rounds']} interleaved "
        f"rounds of {result['invokes']} invokes, {_interpreters(result['interpreters'])} a file; {result['cpu']}"
    )
    level = f"{result['confidence']:.0%}"
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
        for row in result["files"]
    ]
    columns = [("label", "file"), ("median", "median ms"), ("spread", "spread"),
               ("ratio", f"x faster than {result['baseline']} ({level} interval)"), ("verdict", "verdict")]  # fmt: skip
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
            f"compare got {wrong}: `threads` must be None or >= 1, `rounds` >= 5, `invokes` >= 3, "
            "`interpreters` >= 1, `warmup` >= 0, `max_seconds` > 0 and `confidence` a float in (0, 1)."
        )


def _labelled(models) -> dict:
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
            "`models` must be a list of .tflite paths or Keras models, or a dict {label: path or model}. "
            f"Received: {type(models).__name__}"
        )
    if len(labelled) < 2:
        raise ValueError(
            f"compare needs at least two files to put side by side; received {len(labelled)}. "
            "For one file, use tfc.export.benchmark."
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
    from tfcompress.export.tflite import to_tflite  # the exporter imports the converter stack

    return to_tflite(source, os.path.join(folder, f"{safe}.tflite"), mode="float32").path


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
