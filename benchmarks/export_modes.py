"""One trained MNIST CNN exported in every mode, measured side by side in one run.

Trains a CNN on MNIST (../shared/data/mnist or --mnist_dir; else the built-in digits),
then exports it in each mode of `tfc.export.to_tflite`, plus an 80%-pruned copy with and
without the converter's sparse encoding, a 16-cluster copy, and int8 with its worst
layer kept in float. For each file it prints bytes, gzip bytes, the ratio to float32,
top-1 agreement with the Keras model and accuracy on the test set (LiteRT, batch 1),
LiteRT latency at 1 thread (median; XNNPACK on, as an app runs it), and whether the
exporter flagged it as off XNNPACK's fast path.

Targets: int8 <= 0.27x float32 bytes with >= 99.5% agreement; int16x8 and sparse int8
flagged.

Run: python benchmarks/export_modes.py [--epochs=N] [--output_dir=DIR]
"""

import importlib.util
import os
import sys
import tempfile
import warnings

import numpy as np
from absl import flags, logging

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import _common  # noqa: E402

import tfcompress as tfc  # noqa: E402
from tfcompress import keras  # noqa: E402
from tfcompress.report import format_table  # noqa: E402

flags.DEFINE_integer("epochs", 3, "Training epochs of the CNN (and of the pruned and clustered copies).")
flags.DEFINE_string("output_dir", None, "Where to write the .tflite files; a new temporary folder by default.")
FLAGS = flags.FLAGS

_CALIBRATION = 500
_QUANTIZER_MODES = ("weights_int8", "weights_int4", "dynamic_int4")


def _variants(model, x_train, y_train, epochs):
    """The pruned (80%) and clustered (16 values per kernel) copies, fine-tuned."""
    steps = int(np.ceil(len(x_train) / 128))
    pruned = tfc.prune.magnitude(model, target_sparsity=0.8, epochs=epochs, steps_per_epoch=steps)
    _common.compile_classifier(pruned, 1e-4).fit(
        x_train, y_train, batch_size=128, epochs=epochs + 1, callbacks=tfc.prune.callbacks(), verbose=0
    )
    clustered = tfc.quantize.cluster(model, clusters=16)
    _common.compile_classifier(clustered, 1e-4).fit(x_train, y_train, batch_size=128, epochs=1, verbose=0)
    return tfc.prune.strip(pruned), tfc.quantize.strip_clustering(clustered)


def _export(label, model, folder, calibration, **settings):
    path = os.path.join(folder, label.replace(" ", "_").replace(",", "").replace("%", "") + ".tflite")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = tfc.export.to_tflite(model, path, overwrite=True, **settings, **calibration)
    flagged = any("XNNPACK" in str(warning.message) for warning in caught)
    return result, flagged


def main(argv):
    del argv
    logging.set_verbosity(logging.WARNING)
    ((x_train, y_train), (x_test, y_test)), data_name = _common.load_data()
    folder = FLAGS.output_dir or tempfile.mkdtemp(prefix="tfcompress_export_modes_")
    os.makedirs(folder, exist_ok=True)
    print(f"data: {data_name}; {len(x_train)} training, {len(x_test)} test images; files in {folder}", flush=True)

    keras.utils.set_random_seed(0)
    model = _common.compile_classifier(_common.mnist_cnn(x_train.shape[1:]), 1e-3)
    model.fit(x_train, y_train, batch_size=128, epochs=FLAGS.epochs, verbose=0)
    pruned, clustered = _variants(model, x_train, y_train, FLAGS.epochs)
    calibration = {"representative_data": x_train[:_CALIBRATION]}
    quantizer_modes = _QUANTIZER_MODES if _has_quantizer() else ()

    plans = [("float32", model, {"mode": "float32"}, {})]
    plans += [(mode, model, {"mode": mode}, {}) for mode in ("float16", "dynamic")]
    plans += [("int8", model, {"mode": "int8"}, calibration), ("int16x8", model, {"mode": "int16x8"}, calibration)]
    plans += [(mode, model, {"mode": mode}, {}) for mode in quantizer_modes]
    worst = tfc.export.layer_errors(model, calibration["representative_data"])["worst"][:1]
    plans += [("int8, worst layer float", model, {"mode": "int8", "float_layers": worst}, calibration)]
    plans += [("pruned 80%, int8", pruned, {"mode": "int8"}, calibration)]
    plans += [("pruned 80%, int8 sparse", pruned, {"mode": "int8", "sparse": True}, calibration)]
    plans += [("clustered 16, int8", clustered, {"mode": "int8"}, calibration)]

    rows = []
    for label, source, settings, data in plans:
        print(f"exporting {label} ...", flush=True)
        result, flagged = _export(label, source, folder, data, **settings)
        check = tfc.litert.verify(result.path, source, x_test, y_test)
        (timing,) = tfc.litert.benchmark(result.path, threads=1, xnnpack=True, runs=5)["latency"]
        alone = timing["error"] is not None
        if alone:  # XNNPACK refuses the file; time what an app could still run, on its own
            (timing,) = tfc.litert.benchmark(result.path, threads=1, xnnpack=False, runs=200)["latency"]
            label += " (no XNNPACK, timed alone)"
        rows.append(
            {
                "file": label,
                "bytes": result.bytes,
                "gzip": result.gzip_bytes,
                "agreement": check["top1_agreement"],
                "accuracy": check["tflite_accuracy"],
                "latency_us": timing["median_ms"] * 1000 if alone else None,
                "path": None if alone else result.path,
                "flagged": "yes" if flagged else "",
                "float_layers": result.fallback.float_layers if result.fallback else None,
            }
        )

    # Every file XNNPACK runs, timed side by side against the float32 file.
    timed = [row for row in rows if row["path"]]
    comparison = tfc.litert.time_side_by_side({row["file"]: row["path"] for row in timed}, max_seconds=300)
    for row, timing in zip(timed, comparison.files):
        row["latency_us"] = 1000 * timing["median_ms"]
        low, high = 1 / timing["speedup_high"], 1 / timing["speedup_low"]
        row["slowdown"] = f"{1 / timing['speedup']:.2f}x ({low:.2f}-{high:.2f})"
    for row in rows:
        row["ratio"] = row["bytes"] / rows[0]["bytes"]
    columns = [
        ("file", "file"),
        ("bytes", "bytes"),
        ("ratio", "bytes x f32"),
        ("gzip", "gzip bytes"),
        ("agreement", "agree"),
        ("accuracy", "accuracy"),
        ("latency_us", "1-thread us"),
        ("slowdown", "latency x f32 (95%)"),
        ("flagged", "flagged"),
    ]
    print()
    print(f"Keras model: {model.count_params():,} parameters, test accuracy "
          f"{model.evaluate(x_test, y_test, verbose=0)[1]:.4f}")  # fmt: skip
    print(f"LiteRT, batch 1, 1 thread, {comparison.rounds} interleaved rounds; {comparison.cpu}")
    print(format_table(rows, columns))
    int8 = rows[[label for label, *_ in plans].index("int8")]
    print()
    print(f"int8 bytes / float32 bytes: {int8['ratio']:.3f} (target <= 0.27)")
    print(f"int8 top-1 agreement with Keras: {int8['agreement']:.4f} (target >= 0.995)")
    fallback = next(row for row in rows if row["file"].startswith("int8, worst layer float"))
    print(f"layer kept in float (the worst by tfc.export.layer_errors): {fallback['float_layers']}")
    flagged = [row["file"] for row in rows if row["flagged"]]
    print(f"flagged as off XNNPACK's fast path: {flagged}")
    if not quantizer_modes:
        print('(weights_int8/weights_int4/dynamic_int4 skipped: pip install "tfcompress[quantizer]")')


def _has_quantizer():
    return importlib.util.find_spec("litert_quantizer") is not None


if __name__ == "__main__":
    _common.run(main, packages=("litert-quantizer",))
