"""Channel pruning vs magnitude pruning on MNIST, a small ResNet, and MobileNetV2, measured side by side in one run.

Trains a CNN on MNIST (../shared/data/mnist or --mnist_dir; else the built-in digits), then:
- channel-pruned: `tfc.prune.channels(model, ratio=0.5)` (L1), fine-tuned;
- TF-MOT 80% unstructured: `tfc.prune.magnitude` to 80%, fine-tuned and stripped.
For each, in float32 and int8: test accuracy in LiteRT, parameters (non-zero), MACs, .tflite bytes
and LiteRT latency at 1 and 2 threads (batch 1, XNNPACK). Every table's files are timed side by side
(`tfc.litert.time_side_by_side`: interleaved rounds, median of round medians), each speed-up with its 95% interval.

Fine-tuning is `tfc.prune.finetune` (Adam from 5e-4, cosine decay to zero). Then the ways of choosing what
goes, at the same 50% and the same fine-tuning epochs (float32):
uniform L1, global L1, Taylor (on 512 training images), and the iterative schedule (one step per
fine-tuning epoch). Then a small ResNet (`tfc.models.residual_net`): dense, half its channels, the same
MACs as a budget taken from the blocks' inner convolutions only (the residual stream protected), and
its least useful residual block dropped. Last, MobileNetV2
(alpha 0.35, 96x96, random weights: no ImageNet here) dense vs half its channels, and with three
residual blocks dropped: latency only.

Targets: channel-pruned >= 1.8x lower latency at 1 thread than dense, <= 1 point accuracy loss.

Run: python benchmarks/prune_channels_mnist.py [--epochs=N] [--finetune_epochs=N]
"""

import os
import sys
import tempfile

import numpy as np
from absl import flags, logging

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
    counts = tfc.prune.sparsity(model)
    return {
        "model": f"{label}, {mode}",
        "accuracy": tfc.litert.verify(path, model, x_test, y_test)["tflite_accuracy"],
        "parameters": counts["parameters"],
        "nonzero": counts["nonzero_parameters"],
        "macs": tfc.litert.inspect(path)["macs"],
        "bytes": result.bytes,
        "gzip": result.gzip_bytes,
        "path": path,
    }


def main(argv):
    del argv
    logging.set_verbosity(logging.WARNING)
    ((x_train, y_train), (x_test, y_test)), data_name = _common.load_data()
    folder = tempfile.mkdtemp(prefix="tfcompress_channels_")
    print(f"data: {data_name}; CPU: {tfc.litert.cpu()}; files in {folder}", flush=True)
    fit = {"batch_size": 128, "verbose": 0}

    keras.utils.set_random_seed(0)
    dense = _common.compile_classifier(_common.mnist_cnn(x_train.shape[1:]), 1e-3)
    dense.fit(x_train, y_train, epochs=FLAGS.epochs, **fit)

    print("channel pruning 50% and fine-tuning ...", flush=True)
    channel_pruned = tfc.prune.channels(dense, ratio=0.5, criterion="l1")
    before_finetune = _accuracy(channel_pruned, x_test, y_test)
    tfc.prune.finetune(channel_pruned, (x_train, y_train), epochs=FLAGS.finetune_epochs, batch_size=fit["batch_size"])

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
    _common.side_by_side(rows, threads=(1, 2))
    columns = [
        ("model", "model"),
        ("accuracy", "accuracy"),
        ("parameters", "parameters"),
        ("nonzero", "non-zero"),
        ("macs", "MACs"),
        ("bytes", ".tflite bytes"),
        ("gzip", "gzip bytes"),
        ("us_1", "us, 1 thread"),
        ("x_1", "x faster, 1 thread (95%)"),
        ("us_2", "us, 2 threads"),
        ("x_2", "x faster, 2 threads (95%)"),
    ]
    print()
    print(format_table(rows, columns))
    print(f"\nchannel-pruned accuracy before fine-tuning: {before_finetune:.4f}")
    _compare_choices(dense, channel_pruned, (x_train, y_train), (x_test, y_test), folder, fit)
    for mode, offset in (("float32", 0), ("int8", 3)):
        base, channel, magnitude = rows[offset : offset + 3]
        print(
            f"{mode}: channels 50% is {channel['x_1']} faster than dense float32 at 1 thread "
            f"({channel['x_2']} at 2), {100 * (channel['accuracy'] - base['accuracy']):+.2f} "
            f"accuracy points; TF-MOT 80% is {magnitude['x_1']} at 1 thread"
        )

    _resnet(x_train, y_train, x_test, y_test, folder, fit)

    print("\nMobileNetV2 alpha 0.35, 96x96x3, random weights (latency only) ...", flush=True)
    mobilenet = keras.applications.MobileNetV2(weights=None, alpha=0.35, input_shape=(96, 96, 3), classes=10)
    half = tfc.prune.channels(mobilenet, ratio=0.5)
    shallower = tfc.prune.drop_blocks(mobilenet, ["block_5_add", "block_9_add", "block_12_add"])
    mobile_rows = []
    for label, model in (
        ("MobileNetV2 0.35", mobilenet),
        ("MobileNetV2 0.35, channels 50%", half),
        ("MobileNetV2 0.35, 3 blocks dropped", shallower),
    ):
        path = os.path.join(folder, f"{label.replace(' ', '_').replace(',', '').replace('%', '')}.tflite")
        result = tfc.export.to_tflite(model, path, mode="float32", overwrite=True)
        mobile_rows.append(
            {
                "model": label,
                "parameters": model.count_params(),
                "macs": tfc.litert.inspect(path)["macs"],
                "bytes": result.bytes,
                "path": path,
            }
        )
    _common.side_by_side(mobile_rows, threads=(1, 2))
    print(format_table(mobile_rows, [columns[i] for i in (0, 2, 4, 5, 7, 8, 9, 10)]))
    print(f"MobileNetV2: half the channels is {mobile_rows[1]['x_1']} faster at 1 thread; "
          f"3 blocks dropped, {mobile_rows[2]['x_1']}")  # fmt: skip


_CHOICE_COLUMNS = [
    ("model", "model"),
    ("before", "accuracy before fine-tuning"),
    ("accuracy", "accuracy"),
    ("parameters", "parameters"),
    ("macs", "MACs"),
    ("us_1", "us, 1 thread"),
    ("x_1", "x faster, 1 thread (95%)"),
]


def _accuracy(model, x, y):
    """Keras test accuracy of a model that is not compiled yet (straight after pruning)."""
    return _common.compile_classifier(model, 1e-3).evaluate(x, y, verbose=0)[1]


def _float_row(label, model, folder, x_test, y_test, before=None):
    path = os.path.join(folder, f"{label.replace(' ', '_').replace(',', '').replace('%', '')}.tflite")
    tfc.export.to_tflite(model, path, mode="float32", overwrite=True)
    counts = tfc.prune.cost(model)
    return {
        "model": label,
        "before": before,
        "accuracy": tfc.litert.verify(path, model, x_test, y_test)["tflite_accuracy"],
        "parameters": counts["parameters"],
        "macs": counts["macs"],
        "path": path,
    }


def _compare_choices(dense, uniform, train, test, folder, fit):
    """Uniform vs global allocation vs Taylor vs the iterative schedule, at 50% and equal fine-tuning."""
    print("\nchoosing the channels: global allocation, Taylor, iterative ...", flush=True)
    x_test, y_test = test
    rows = [_float_row("dense", dense, folder, x_test, y_test)]
    rows.append(_float_row("uniform L1 (above)", uniform, folder, x_test, y_test))
    scoring = (train[0][:512], train[1][:512])
    for label, options in (
        ("global L1", {"allocation": "global"}),
        ("uniform Taylor", {"criterion": "taylor", "data": scoring}),
    ):
        keras.utils.set_random_seed(0)
        model = tfc.prune.channels(dense, 0.5, **options)
        before = _accuracy(model, x_test, y_test)
        tfc.prune.finetune(model, train, epochs=FLAGS.finetune_epochs, batch_size=fit["batch_size"])
        rows.append(_float_row(label, model, folder, x_test, y_test, before))
    keras.utils.set_random_seed(0)
    model, log = tfc.prune.iterative(
        dense, train, 0.5, steps=FLAGS.finetune_epochs, epochs_per_step=1, validation_data=test,
        finetune_options={"batch_size": fit["batch_size"]},
    )  # fmt: skip
    rows.append(_float_row(f"iterative L1, {FLAGS.finetune_epochs} steps", model, folder, x_test, y_test,
                           log[0]["accuracy_pruned"]))  # fmt: skip
    _common.side_by_side(rows)
    print(format_table(rows, _CHOICE_COLUMNS))
    print("(iterative: 'before' is the first step's, pruned by 1/steps of the way)")


def _resnet(x_train, y_train, x_test, y_test, folder, fit):
    """A small ResNet: dense, half its channels, and its least useful block dropped; each fine-tuned alike."""
    print("\nsmall ResNet: training, channel pruning, block removal ...", flush=True)
    keras.utils.set_random_seed(0)
    # Cosine decay to zero: with a constant rate, BatchNormalization's moving statistics lag the weights.
    schedule = keras.optimizers.schedules.CosineDecay(2e-3, FLAGS.epochs * int(np.ceil(len(x_train) / 128)))
    resnet = _common.compile_classifier(tfc.models.residual_net(16, 3, "resnet", x_train.shape[1:]), schedule)
    resnet.fit(x_train, y_train, epochs=FLAGS.epochs, **fit)
    rows = [_float_row("ResNet", resnet, folder, x_test, y_test)]
    half = tfc.prune.channels(resnet, 0.5)
    before = _accuracy(half, x_test, y_test)
    tfc.prune.finetune(half, (x_train, y_train), epochs=FLAGS.finetune_epochs, batch_size=fit["batch_size"])
    rows.append(_float_row("ResNet, channels 50%", half, folder, x_test, y_test, before))
    # The same MACs, taken from the blocks' inner convolutions only: protecting the stem keeps the whole stream
    # the skips tie to it, the group whose cut costs most accuracy (see tfc.prune.sensitivity).
    budget = tfc.prune.channels(resnet, budget={"macs": tfc.prune.cost(half)["macs"]}, protect=["first"])
    before = _accuracy(budget, x_test, y_test)
    tfc.prune.finetune(budget, (x_train, y_train), epochs=FLAGS.finetune_epochs, batch_size=fit["batch_size"])
    rows.append(_float_row("ResNet, same MACs, stream kept", budget, folder, x_test, y_test, before))
    blocks = tfc.prune.residual_blocks(resnet, data=(x_train[:2000], y_train[:2000]))  # chosen on training data
    least = min(blocks, key=lambda block: block["drop"])
    shallower = tfc.prune.drop_blocks(resnet, [least["add"]])
    before = _accuracy(shallower, x_test, y_test)
    tfc.prune.finetune(shallower, (x_train, y_train), epochs=FLAGS.finetune_epochs, batch_size=fit["batch_size"])
    rows.append(_float_row(f"ResNet, {least['add']} dropped", shallower, folder, x_test, y_test, before))
    _common.side_by_side(rows)
    print(format_table(rows, _CHOICE_COLUMNS))
    drops = ", ".join(f"{block['add']} {block['drop']:+.2f}" for block in blocks)
    print(f"accuracy points lost by dropping each block alone, no fine-tuning (2,000 training images): {drops}")
    for row in rows[1:]:
        points = 100 * (row["accuracy"] - rows[0]["accuracy"])
        print(f"{row['model']}: {row['x_1']} faster at 1 thread, {points:+.2f} accuracy points")


if __name__ == "__main__":
    _common.run(main)
