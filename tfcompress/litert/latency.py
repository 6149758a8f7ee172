"""Latency of a `.tflite` file in the LiteRT interpreter, and its size raw and gzipped."""

import gzip
import os
import time

import numpy as np

from tfcompress.litert.interpreter import XNNPackRefusedError, load_interpreter


def benchmark(
    path,
    *,
    threads=(1, None),
    xnnpack=(True, False),
    warmup: int = 10,
    runs: int = 100,
    max_seconds: float = 10.0,
    seed: int = 0,
) -> dict:
    """Times single inferences (batch 1, as on a phone) in LiteRT, for each setting asked.

    Each setting gets its own interpreter and random inputs. To compare files, time them together with
    `tfc.litert.time_side_by_side`: two separate timing windows carry different noise.

    Args:
      path: the `.tflite` file.
      threads: interpreter thread counts to time; None stands for every core of this machine.
      xnnpack: with (True) and/or without (False) LiteRT's default XNNPACK delegate.
      warmup: untimed runs before timing each setting.
      runs: timed runs per setting, at least 5.
      max_seconds: stop timing a setting after this long (at least 5 runs are kept).
      seed: seed of the random inputs.

    Returns:
      A dict with `path`, `bytes`, `gzip_bytes`, `batch` (1), and `latency`: one dict per
      setting with `threads`, `xnnpack`, `runs`, `median_ms`, `min_ms`, `p10_ms`,
      `p90_ms`, `spread` ((p90 - p10) / median) and `error` (None, or why the setting
      could not run: XNNPACK refuses sparse-encoded models).

    Raises:
      FileNotFoundError: `path` does not exist.
      ValueError: LiteRT cannot load the file, or an argument is out of range.

    Examples:
      >>> report = tfc.litert.benchmark("model.tflite")
      >>> [(row["threads"], row["xnnpack"], row["median_ms"]) for row in report["latency"]]
    """
    path = os.fspath(path)
    threads = _settings(threads, "threads", lambda count: count is None or (isinstance(count, int) and count >= 1))
    xnnpack = _settings(xnnpack, "xnnpack", lambda value: isinstance(value, bool))
    if not (isinstance(runs, int) and runs >= 5) or not (isinstance(warmup, int) and warmup >= 0):
        raise ValueError(f"`runs` must be an int >= 5 and `warmup` an int >= 0. Received: runs={runs}, warmup={warmup}")
    if not max_seconds > 0:
        raise ValueError(f"`max_seconds` must be positive. Received: {max_seconds}")
    load_interpreter(path, xnnpack=False)  # A clear error for a missing or corrupt file, before any timing.
    counts = sorted({(os.cpu_count() or 1) if count is None else count for count in threads})
    latency = [
        _time_setting(path, count, delegate, warmup, runs, max_seconds, seed)
        for delegate in xnnpack
        for count in counts
    ]
    with open(path, "rb") as file:
        content = file.read()
    return {
        "path": os.path.abspath(path),
        "bytes": len(content),
        "gzip_bytes": len(gzip.compress(content, compresslevel=9)),
        "batch": 1,
        "latency": latency,
    }


def _settings(values, name, valid):
    values = tuple(values) if isinstance(values, (list, tuple)) else (values,)
    if not values or not all(valid(value) for value in values):
        raise ValueError(f"`{name}` has a value out of range: {values!r}. See tfc.litert.benchmark's docstring.")
    return values


def warmed_interpreter(path, threads, xnnpack: bool, rng, warmup: int):
    """An interpreter for `path` (batch 1), its inputs set to random values, after `warmup` untimed invokes."""
    interpreter = load_interpreter(path, threads, xnnpack=xnnpack)
    for detail in interpreter.get_input_details():
        interpreter.set_tensor(detail["index"], _random_input(rng, detail))
    for _ in range(warmup):
        interpreter.invoke()
    return interpreter


def _time_setting(path, threads, xnnpack, warmup, runs, max_seconds, seed) -> dict:
    row = {"threads": threads, "xnnpack": xnnpack, "runs": 0, "error": None}
    row.update(dict.fromkeys(("median_ms", "min_ms", "p10_ms", "p90_ms", "spread")))
    try:
        interpreter = warmed_interpreter(path, threads, xnnpack, np.random.default_rng(seed), warmup)
    except XNNPackRefusedError as error:
        row["error"] = str(error)
        return row
    times = []
    deadline = time.perf_counter() + max_seconds
    while len(times) < runs and (len(times) < 5 or time.perf_counter() < deadline):
        start = time.perf_counter()
        interpreter.invoke()
        times.append((time.perf_counter() - start) * 1e3)
    p10, median, p90 = np.percentile(times, [10, 50, 90])
    row.update(
        runs=len(times),
        median_ms=float(median),
        min_ms=float(min(times)),
        p10_ms=float(p10),
        p90_ms=float(p90),
        spread=float((p90 - p10) / median) if median > 0 else 0.0,
    )
    return row


def _random_input(rng, detail):
    dtype = np.dtype(detail["dtype"])
    if np.issubdtype(dtype, np.integer) and not detail["quantization"][0]:
        return np.zeros(detail["shape"], dtype)  # token ids: 0 is in every vocabulary, and gathers cost the same
    if np.issubdtype(dtype, np.integer):
        limits = np.iinfo(dtype)
        return rng.integers(limits.min, limits.max, size=detail["shape"], endpoint=True).astype(dtype)
    if dtype == np.bool_:
        return rng.random(detail["shape"]) < 0.5
    return rng.random(detail["shape"]).astype(dtype)
