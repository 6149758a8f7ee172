"""Channel pruning vs magnitude pruning on MNIST, and MobileNetV2's latency, measured side by side in one run.

Trains a CNN on MNIST (../shared/data/mnist or --mnist_dir; else the built-in digits), then:
- channel-pruned: `tfc.prune.channels(model, ratio=0.5)` (L1), fine-tuned;
- TF-MOT 80% unstructured: `tfc.prune.magnitude` to 80%, fine-tuned and stripped.
For each, in float32 and int8: test accuracy in LiteRT, parameters (non-zero), MACs, .tflite bytes
and LiteRT latency at 1 and 2 threads (batch 1, XNNPACK, median). Then MobileNetV2 (alpha 0.35,
96x96, random weights: no ImageNet here) dense vs half its channels, latency only.

Targets: channel-pruned >= 1.8x lower latency at 1 thread than dense, <= 1 point accuracy loss.

Run: python benchmarks/prune_channels_mnist.py [--epochs=N] [--finetune_epochs=N]
"""

import os
import sys
import tempfile

import numpy as np
from absl import app, flags, logging

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import _common  # noqa: E402

import tfcompress as tfc  # noqa: E402
from tfcompress import keras  # noqa: E402
from tfcompress.report import format_table  # noqa: E402

flags.DEFINE_integer("epochs", 3, "Training epochs of the dense CNN.")
flags.DEFINE_integer("finetune_epochs", 2, "Fine-tuning epochs after channel pruning (and at 80% for TF-MOT).")
FLAGS = flags.FLAGS


def _measure(label, model, folder, x_train, x_test, y_test, mode):
    path = os.path.join(folder, f"{label.replace(' ', '_').replace('%', '')}_{mode}.tflite")
    calibration = {"representative_data": x_train[:500]} if mode == "int8" else {}
    result = tfc.export.to_tflite(model, path, mode=mode, overwrite=True, **calibration)
    latency = {
        row["threads"]: row["median_ms"] * 1000
        for row in tfc.export.benchmark(path, threads=(1, 2), xnnpack=True, runs=300)["latency"]
    }
    counts = tfc.prune.report(model)
    return {
        "model": f"{label}, {mode}",
        "accuracy": tfc.export.verify(path, model, x_test, y_test)["tflite_accuracy"],
        "parameters": counts["parameters"],
        "nonzero": counts["nonzero_parameters"],
        "macs": tfc.export.inspect(path)["macs"],
        "bytes": result.bytes,
        "gzip": result.gzip_bytes,
        "us_1": latency[1],
        "us_2": latency[2],
    }


def main(argv):
    del argv
    logging.set_verbosity(logging.WARNING)
    ((x_train, y_train), (x_test, y_test)), data_name = _common.load_data()
    folder = tempfile.mkdtemp(prefix="tfcompress_channels_")
    print(f"data: {data_name}; files in {folder}", flush=True)
    fit = {"batch_size": 128, "verbose": 0}

    keras.utils.set_random_seed(0)
    dense = _common.compile_classifier(_common.mnist_cnn(x_train.shape[1:]), 1e-3)
    dense.fit(x_train, y_train, epochs=FLAGS.epochs, **fit)

    print("channel pruning 50% and fine-tuning ...", flush=True)
    channel_pruned = _common.compile_classifier(tfc.prune.channels(dense, ratio=0.5, criterion="l1"), 5e-4)
    before_finetune = channel_pruned.evaluate(x_test, y_test, verbose=0)[1]
    channel_pruned.fit(x_train, y_train, epochs=FLAGS.finetune_epochs, **fit)

    print("TF-MOT magnitude pruning to 80% ...", flush=True)
    steps = int(np.ceil(len(x_train) / 128))
    pruning = _common.compile_classifier(
        tfc.prune.magnitude(dense, 0.8, epochs=FLAGS.finetune_epochs, steps_per_epoch=steps), 5e-4
    )
    pruning.fit(x_train, y_train, epochs=FLAGS.finetune_epochs + 1, callbacks=tfc.prune.callbacks(), **fit)
    unstructured = tfc.prune.strip(pruning)

    rows = []
    for mode in ("float32", "int8"):
        for label, model in (("dense", dense), ("channels 50%", channel_pruned), ("TF-MOT 80%", unstructured)):
            rows.append(_measure(label, model, folder, x_train, x_test, y_test, mode))
    columns = [
        ("model", "model"),
        ("accuracy", "accuracy"),
        ("parameters", "parameters"),
        ("nonzero", "non-zero"),
        ("macs", "MACs"),
        ("bytes", ".tflite bytes"),
        ("gzip", "gzip bytes"),
        ("us_1", "us, 1 thread"),
        ("us_2", "us, 2 threads"),
    ]
    print()
    print(format_table(rows, columns))
    print(f"\nchannel-pruned accuracy before fine-tuning: {before_finetune:.4f}")
    for mode, offset in (("float32", 0), ("int8", 3)):
        base, channel, magnitude = rows[offset : offset + 3]
        print(
            f"{mode}: channels 50% is {base['us_1'] / channel['us_1']:.2f}x faster at 1 thread "
            f"({base['us_2'] / channel['us_2']:.2f}x at 2), {100 * (channel['accuracy'] - base['accuracy']):+.2f} "
            f"accuracy points; TF-MOT 80% is {base['us_1'] / magnitude['us_1']:.2f}x at 1 thread"
        )

    print("\nMobileNetV2 alpha 0.35, 96x96x3, random weights (latency only) ...", flush=True)
    mobilenet = keras.applications.MobileNetV2(weights=None, alpha=0.35, input_shape=(96, 96, 3), classes=10)
    half = tfc.prune.channels(mobilenet, ratio=0.5)
    mobile_rows = []
    for label, model in (("MobileNetV2 0.35", mobilenet), ("MobileNetV2 0.35, channels 50%", half)):
        path = os.path.join(folder, f"{label.replace(' ', '_').replace(',', '').replace('%', '')}.tflite")
        result = tfc.export.to_tflite(model, path, mode="float32", overwrite=True)
        latency = {
            row["threads"]: row["median_ms"] * 1000
            for row in tfc.export.benchmark(path, threads=(1, 2))["latency"]
            if row["xnnpack"]
        }
        mobile_rows.append(
            {
                "model": label,
                "parameters": model.count_params(),
                "macs": tfc.export.inspect(path)["macs"],
                "bytes": result.bytes,
                "us_1": latency[1],
                "us_2": latency[2],
            }
        )
    print(format_table(mobile_rows, [columns[0], columns[2], columns[4], columns[5], columns[7], columns[8]]))
    print(
        f"MobileNetV2: half the channels is {mobile_rows[0]['us_1'] / mobile_rows[1]['us_1']:.2f}x faster at 1 thread"
    )


if __name__ == "__main__":
    app.run(main)
