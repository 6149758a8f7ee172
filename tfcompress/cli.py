"""The `tfcompress` command line (absl-py)."""

import os
import sys

# Before TensorFlow loads: keep its C++ start-up chatter out of the terminal.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app, flags, logging  # noqa: E402

_USAGE = """tfcompress: make Keras models small and fast enough for phones.

Usage:
  tfcompress demo [--output_dir=DIR] [--overwrite] [--quick]
  tfcompress inspect MODEL.tflite

Commands:
  demo     Train a CNN teacher on the built-in digits, distill a student with a quarter of
           its parameters, prune 80 percent of its weights, fine-tune it with sparsity-preserving
           quantization-aware training, export a full-integer int8 .tflite, verify it in the
           LiteRT interpreter, and print what each stage did to size and accuracy.
  inspect  Print what a .tflite file holds: its inputs and outputs (dtype, scale, zero point),
           every op with its dtypes and multiply-accumulates, the share of them that runs in
           int8, and which ops LiteRT's XNNPACK delegate leaves on slow reference kernels.
"""

FLAGS = flags.FLAGS
flags.DEFINE_string("output_dir", "tfcompress_demo", "Folder for the .tflite files and report.json.")
flags.DEFINE_bool("overwrite", False, "Replace the outputs of an earlier run in --output_dir.")
flags.DEFINE_bool("quick", False, "A few epochs per stage: checks the path end to end, at lower accuracy.")

_COMMANDS = ("demo", "inspect")
# How many positional arguments each command takes.
_ARGUMENTS = {"demo": 0, "inspect": 1}


def _demo() -> int:
    from tfcompress import demo

    # The converter logs every temporary SavedModel at INFO; progress lines say enough.
    logging.set_verbosity(logging.WARNING)

    settings = demo.DemoSettings.quick() if FLAGS.quick else demo.DemoSettings()
    try:
        report = demo.run(FLAGS.output_dir, settings, overwrite=FLAGS.overwrite, progress=_say)
    except FileExistsError as error:
        _say(f"error: {error}\nPass --overwrite to replace them, or --output_dir=ANOTHER_FOLDER.")
        return 1
    _say("")
    _say(demo.render(report))
    return 0


def _inspect(path: str) -> int:
    from tfcompress.export.inspection import inspect
    from tfcompress.report import format_table

    try:
        report = inspect(path)
    except (FileNotFoundError, ValueError) as error:
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
    _say(f"not delegated to XNNPACK: {', '.join(slow) if slow else 'none (besides I/O conversions)'}")
    return 0


def _say(line: str) -> None:
    print(line, flush=True)


def main(argv) -> int:
    """Runs the command named in `argv` and returns the process exit code.

    Args:
      argv: the command line after absl removed its flags: `[program, command, ...]`.

    Returns:
      0 on success, 1 when the command failed, 2 for a usage error.

    Example:
      >>> main(["tfcompress", "demo"])
    """
    arguments = argv[1:]
    if not arguments:
        _say(_USAGE)
        return 2
    command, extra = arguments[0], arguments[1:]
    if command not in _COMMANDS:
        _say(f"error: unknown command {command!r}; the commands are: {', '.join(_COMMANDS)}.\n\n{_USAGE}")
        return 2
    if len(extra) != _ARGUMENTS[command]:
        wanted = "no positional arguments" if not _ARGUMENTS[command] else "one argument: the .tflite file"
        _say(f"error: {command} takes {wanted}; received {extra}.")
        return 2
    return _inspect(extra[0]) if command == "inspect" else _demo()


def run() -> None:
    """Entry point of the `tfcompress` console script.

    Example:
      $ tfcompress demo --output_dir=demo_output
    """
    # absl's own --help exits with status 1; asking for help is not a failure.
    if any(argument in ("-h", "--help", "help") for argument in sys.argv[1:]):
        _say(_USAGE)
        _say("Flags:\n" + FLAGS.module_help(__name__))
        sys.exit(0)
    app.run(lambda argv: sys.exit(main(argv)))
