"""The `tfcompress` command line (absl-py)."""

import contextlib
import os
import signal
import sys
import tempfile

# Before TensorFlow loads: keep its C++ start-up chatter out of the terminal.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app, flags, logging  # noqa: E402

_USAGE = """tfcompress: make Keras models small and fast enough for phones.

Usage:
  tfcompress run --recipe=FILE [--set=key.path=value ...] [--output_dir=DIR] [--overwrite]
                 [--trust_model_code]
  tfcompress demo [--output_dir=DIR] [--overwrite] [--quick]
  tfcompress inspect MODEL.tflite
  tfcompress bench MODEL.tflite [--threads=1,all] [--runs=100]
  tfcompress bench A.tflite B.tflite ... [--threads=1,all] [--rounds=200] [--baseline=A.tflite]
  (inspect and bench also take a Keras model file, .keras, .h5 or SavedModel, Keras 2 or 3:
   they look at its float32 .tflite)

Commands:
  run      Run a recipe (YAML or JSON; see examples/): load your model (.keras, .h5 or SavedModel)
           and data (built-in digits, MNIST IDX files, a folder of images, or .npz), then
           distill, prune, fine-tune quantization-aware and export a verified .tflite, writing
           a report (table, JSON, plots, TensorBoard logs). The whole recipe, the model, the
           data and the output paths are checked before any training starts.
  demo     Run the built-in recipe (tfcompress/recipes/digits.yaml): train a CNN teacher on
           the built-in digits, distill a student with a quarter of its parameters, prune 80
           percent of its weights, fine-tune it with sparsity-preserving quantization-aware
           training, export a full-integer int8 .tflite and an Android bundle, verify it in the
           LiteRT interpreter, and print what each stage did to size, accuracy and latency.
  inspect  Print what a .tflite file holds: its inputs and outputs (dtype, scale, zero point),
           every op with its dtypes and multiply-accumulates, the share of them that runs in
           int8, and which ops LiteRT's XNNPACK delegate leaves on slow reference kernels.
  bench    Time single inferences of a .tflite file in the LiteRT interpreter at each thread
           count, with and without XNNPACK, after a warm-up: median and 10th-90th percentile
           in milliseconds, and the file's size raw and gzipped (what an app download costs).
           Given several files, compare them instead: interleaved rounds, each file's median
           and spread, and each one's speed-up over the first (or --baseline) with a 95%
           interval, saying which cannot be told apart. Both name the CPU they ran on.

Exit codes: 0 success; 1 the command failed (a missing or existing file, a model or data
it cannot use); 2 a usage or recipe error; 130 interrupted, 143 terminated (no partial
files are left).
"""

FLAGS = flags.FLAGS
flags.DEFINE_string(
    "output_dir", "tfcompress_demo", "Folder for the outputs (demo); for run, overrides the recipe's output_dir."
)
flags.DEFINE_bool("overwrite", False, "Replace the outputs of an earlier run in --output_dir.")
flags.DEFINE_bool(
    "trust_model_code",
    False,
    "run, inspect, bench: load model files whose Lambda layers carry Python code, running it (only for files you "
    "trust).",
)
flags.DEFINE_string("recipe", None, "run: the recipe file (.yaml, .yml or .json).")
flags.DEFINE_multi_string("set", [], "run: override a recipe value, e.g. --set=stages.prune.sparsity=0.5 (repeatable).")
flags.DEFINE_bool("quick", False, "A few epochs per stage: checks the path end to end, at lower accuracy.")
flags.DEFINE_list("threads", ["1", "all"], "bench: interpreter thread counts; 'all' is every core of this machine.")
flags.DEFINE_integer("runs", 100, "bench: timed runs per setting (at least 5), after 10 warm-up runs.")
flags.DEFINE_integer("rounds", 200, "bench with several files: interleaved rounds (at least 5).")
flags.DEFINE_string("baseline", None, "bench with several files: the file the speed-ups are to (default: the first).")

_COMMANDS = ("run", "demo", "inspect", "bench")
# How many positional arguments each command takes.
_ARGUMENTS = {"run": 0, "demo": 0, "inspect": 1, "bench": 1}  # bench: one or more
_INTERRUPTED = 130
_TERMINATED = 143  # 128 + SIGTERM, as shells report it


def _demo() -> int:
    from tfcompress import demo

    # The converter logs every temporary SavedModel at INFO; progress lines say enough.
    logging.set_verbosity(logging.WARNING)
    try:
        report = demo.run(FLAGS.output_dir, quick=FLAGS.quick, overwrite=FLAGS.overwrite, progress=_say)
    except FileExistsError as error:
        _say(f"error: {error}\nPass --overwrite to replace them, or --output_dir=ANOTHER_FOLDER.")
        return 1
    _say("")
    _say(demo.render(report))
    return 0


def _run() -> int:
    from tfcompress import pipeline
    from tfcompress.pipeline.schema import RecipeError

    logging.set_verbosity(logging.WARNING)
    if not FLAGS.recipe:
        _say("error: run needs --recipe=FILE (a .yaml or .json recipe; see examples/ and the demo's, tfc.demo.RECIPE).")
        return 2
    overrides = list(FLAGS.set)
    if FLAGS["output_dir"].present:
        overrides.append(f"output_dir={FLAGS.output_dir}")
    for name in ("overwrite", "trust_model_code"):
        if FLAGS[name].present:
            overrides.append(f"{name}={str(FLAGS[name].value).lower()}")
    try:
        report = pipeline.run(FLAGS.recipe, overrides=overrides, progress=_say, verbose=1 if sys.stdout.isatty() else 2)
    except RecipeError as error:
        _say(f"error in the recipe: {error}")
        return 2
    except (FileNotFoundError, FileExistsError, PermissionError, ValueError, TypeError) as error:
        _say(f"error: {error}")
        return 1
    _say("")
    for key, path in report["files"].items():
        _say(f"{key}: {path}" if isinstance(path, str) else f"{key}: {path['model']}")
    return 0


@contextlib.contextmanager
def _as_tflite(paths):
    """The paths as `.tflite` files: a Keras model file, loaded by the Keras that saved it, exported as float32."""
    with tempfile.TemporaryDirectory(prefix="tfcompress_") as folder:
        converted = []
        for path in paths:
            is_model = os.path.isdir(path) or path.lower().endswith((".keras", ".h5", ".hdf5"))
            if not is_model:
                converted.append(path)
                continue
            from tfcompress import _model_files
            from tfcompress.export.tflite import to_tflite

            logging.set_verbosity(logging.WARNING)  # the converter logs every temporary SavedModel at INFO
            model = _model_files.load(path, trust_code=FLAGS.trust_model_code, argument="the model file")
            stem = os.path.splitext(os.path.basename(os.path.normpath(path)))[0]
            tflite = to_tflite(model, os.path.join(folder, f"{stem}_float32.tflite"), mode="float32").path
            _say(f"{path}: a Keras model file; this is its float32 .tflite (int8 needs calibration data: "
                 "tfcompress run, or tfc.export.to_tflite(model, path, representative_data=...)).")  # fmt: skip
            converted.append(tflite)
        yield converted


def _inspect(path: str) -> int:
    from tfcompress.litert.inspection import inspect_tflite
    from tfcompress.report import format_table

    try:
        with _as_tflite([path]) as (tflite,):
            report = dict(inspect_tflite(tflite), path=path)
    except (FileNotFoundError, ValueError, RuntimeError) as error:
        _say(f"error: {error}")
        return 1
    _say(f"{report['path']}: {report['bytes']:,} bytes")
    for role in ("inputs", "outputs"):
        for tensor in report[role]:
            _say(
                f"{role[:-1]:>6} {tensor['name']}: {tensor['dtype']} {tensor['shape']}, "
                f"scale {tensor['scale']:.6g}, zero point {tensor['zero_point']}"
            )
    rows = [
        dict(
            op,
            dtypes=f"{','.join(op['input_dtypes'])} -> {','.join(op['output_dtypes'])}",
            xnnpack="yes" if op["delegated"] else "no",
        )
        for op in report["ops"]
    ]
    _say("")
    columns = [("index", "#"), ("op", "op"), ("dtypes", "dtypes in -> out"), ("macs", "MACs"), ("xnnpack", "XNNPACK")]
    _say(format_table(rows, columns))
    share = report["int8_mac_share"]
    _say("")
    _say(f"MACs: {report['macs']:,}; in int8: {'n/a' if share is None else f'{share:.0%}'}")
    slow = report["undelegated_compute_ops"]
    if not report["xnnpack_loads"]:
        _say("XNNPACK refuses to load this file: an app with LiteRT's default settings cannot load it.")
    _say(f"not delegated to XNNPACK: {', '.join(slow) if slow else 'none (besides I/O conversions)'}")
    return 0


def _thread_counts():
    """The --threads values as `benchmark` takes them, or None when one is neither a count nor 'all'."""
    if not all(count == "all" or (count.isdigit() and int(count) >= 1) for count in FLAGS.threads):
        _say(f"error: --threads takes thread counts or 'all', e.g. --threads=1,4,all; received {FLAGS.threads}.")
        return None
    return [None if count == "all" else int(count) for count in FLAGS.threads]


def _bench(path: str) -> int:
    from tfcompress.litert.latency import benchmark
    from tfcompress.litert.machine import cpu
    from tfcompress.report import format_table

    threads = _thread_counts()
    if threads is None:
        return 2
    try:
        with _as_tflite([path]) as (tflite,):
            report = dict(benchmark(tflite, threads=threads, runs=FLAGS.runs), path=path)
    except (FileNotFoundError, ValueError, RuntimeError) as error:
        _say(f"error: {error}")
        return 1
    _say(f"{report['path']}: {report['bytes']:,} bytes, {report['gzip_bytes']:,} gzipped; batch 1; {cpu()}")
    rows = [dict(row, xnnpack="yes" if row["xnnpack"] else "no", **_latency_cells(row)) for row in report["latency"]]
    columns = [("threads", "threads"), ("xnnpack", "XNNPACK"), ("median", "median ms"), ("range", "p10-p90 ms"),
               ("spread", "spread")]  # fmt: skip
    _say(format_table(rows, columns + [("runs", "runs")]))
    _say("To compare files, time them together: tfcompress bench A.tflite B.tflite (interleaved rounds).")
    return 0


def _latency_cells(row) -> dict:
    if row["error"] is not None:
        return {"median": "refused", "range": "XNNPACK cannot load this file", "spread": ""}
    return {
        "median": f"{row['median_ms']:.3f}",
        "range": f"{row['p10_ms']:.3f}-{row['p90_ms']:.3f}",
        "spread": f"{row['spread']:.0%}",
    }


def _compare(paths) -> int:
    from tfcompress.litert.side_by_side import format_side_by_side, time_side_by_side

    threads = _thread_counts()
    if threads is None:
        return 2
    if FLAGS.rounds < 5:
        _say(f"error: --rounds must be at least 5; received {FLAGS.rounds}.")
        return 2
    if FLAGS.baseline is not None and FLAGS.baseline not in paths:
        _say(f"error: --baseline must be one of the files given ({', '.join(paths)}); received {FLAGS.baseline!r}.")
        return 2
    baseline = paths.index(FLAGS.baseline) if FLAGS.baseline is not None else 0
    try:
        with _as_tflite(paths) as files:
            for count in dict.fromkeys(threads):  # in order, once each
                result = time_side_by_side(files, baseline=baseline, threads=count, rounds=FLAGS.rounds)
                _say(format_side_by_side(result) + "\n")
    except (FileNotFoundError, ValueError, RuntimeError) as error:
        _say(f"error: {error}")
        return 1
    return 0


def _say(line: str) -> None:
    print(line, flush=True)


def main(argv) -> int:
    """Runs the command named in `argv` and returns the process exit code."""
    arguments = argv[1:]
    if not arguments:
        _say(_USAGE)
        return 2
    command, extra = arguments[0], arguments[1:]
    if command not in _COMMANDS:
        _say(f"error: unknown command {command!r}; the commands are: {', '.join(_COMMANDS)}.\n\n{_USAGE}")
        return 2
    if len(extra) != _ARGUMENTS[command] and not (command == "bench" and extra):
        wanted = "no positional arguments" if not _ARGUMENTS[command] else "one argument: the .tflite file"
        wanted = "one or more .tflite files" if command == "bench" else wanted
        _say(f"error: {command} takes {wanted}; received {extra}.")
        return 2
    # `timeout`, CI runners and job schedulers stop a process with SIGTERM: unwind as for Ctrl-C.
    previous = signal.signal(signal.SIGTERM, _terminate)
    try:
        if command in ("run", "demo"):
            return _run() if command == "run" else _demo()
        if command == "bench" and len(extra) > 1:
            return _compare(extra)
        return {"inspect": _inspect, "bench": _bench}[command](extra[0])
    except KeyboardInterrupt:
        _say("interrupted; files are written only once complete, so none was left half-written.")
        return _INTERRUPTED
    except _Terminated:
        _say("terminated; files are written only once complete, so none was left half-written.")
        return _TERMINATED
    finally:
        signal.signal(signal.SIGTERM, previous)


class _Terminated(BaseException):
    """SIGTERM arrived; a BaseException, like KeyboardInterrupt, so no `except Exception` swallows it."""


def _terminate(signum, frame):
    raise _Terminated()


def run() -> None:
    """Entry point of the `tfcompress` console script."""
    # absl's own --help exits with status 1; asking for help is not a failure.
    if any(argument in ("-h", "--help", "help") for argument in sys.argv[1:]):
        _say(_USAGE)
        _say("Flags:\n" + FLAGS.module_help(__name__))
        sys.exit(0)
    app.run(lambda argv: sys.exit(main(argv)))
