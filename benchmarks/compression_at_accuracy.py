"""Compression that keeps its accuracy, on MNIST, measured side by side in one run.

Five parts (--parts picks some; all but recovery by default):
  pipeline     the recipe teacher -> distilled student -> channels 50% -> 80% magnitude -> QAT -> int8,
               without and with distillation-aided recovery (`distill_recovery: true` in each lossy stage),
               and once more with the first convolution kept in float (`stages.qat.float_layers: [first]`):
               gzip and raw bytes, LiteRT accuracy, and 1-thread latency against the float32 teacher
               and the float32 distilled student.
  resnet       the small ResNet with half its channels removed: plain fine-tuning vs distillation from the
               unpruned ResNet at equal epochs, and a longer schedule.
  recovery     the same halved ResNet over several budgets (training images x epochs) and seeds: plain
               fine-tuning against distillation from the unpruned ResNet at two settings and with hints
               on the blocks' outputs, each budget's mean accuracy against plain fine-tuning's.
  control      accuracy-controlled int8 (max accuracy drop 0.5 points) on a CNN, the same CNN with four
               outlier units, the ResNet and MobileNetV2 (alpha 0.35, 96x96 RGB made from MNIST): the raw
               TFLite converter, plain int8 and the controlled file, measured on the test set.
  calibration  how many calibration images, chosen at random or stratified by class, and what that does to
               int8 agreement on the test set, for the CNN, the ResNet and MobileNetV2.

The control and calibration models train on the first 55,000 training images; the last 5,000 are the
control's validation set; every figure is on the 10,000 test images (2,000 for MobileNetV2). Latency:
LiteRT, batch 1, 1 thread, XNNPACK, files timed side by side (`tfc.litert.time_side_by_side`: interleaved rounds,
median of round medians, each speed-up with its 95% bootstrap interval).

Run: python benchmarks/compression_at_accuracy.py [--parts=pipeline,resnet,control,calibration] [--epochs=N]
"""

import json
import os
import sys
import tempfile
import time
import warnings

import numpy as np
from absl import flags, logging

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import _common  # noqa: E402
import tensorflow as tf  # noqa: E402

import tfcompress as tfc  # noqa: E402
from tfcompress import keras  # noqa: E402
from tfcompress.report import format_table  # noqa: E402

flags.DEFINE_list("parts", ["pipeline", "resnet", "control", "calibration"], "Which parts to run.")
flags.DEFINE_integer("epochs", 3, "Training epochs of every model, and of every pipeline stage.")
flags.DEFINE_float("channels", 0.5, "pipeline: share of channels the channels stage removes.")
flags.DEFINE_integer("finetune_epochs", 2, "resnet: fine-tuning epochs of the equal-epochs comparison.")
flags.DEFINE_integer("long_epochs", 6, "resnet: fine-tuning epochs of the longer schedule.")
flags.DEFINE_float("finetune_lr", 5e-4, "resnet: peak learning rate of the fine-tuning (cosine decay to 0).")
flags.DEFINE_float("alpha", 0.1, "resnet: distillation's weight of the label loss.")
flags.DEFINE_float("temperature", 4.0, "resnet: distillation's temperature.")
flags.DEFINE_list("budgets", ["all:1", "all:2", "5000:5"], "recovery: IMAGES:EPOCHS fine-tuning budgets.")
flags.DEFINE_integer("seeds", 2, "recovery: seeds of every budget and method.")
flags.DEFINE_integer("mobilenet_images", 10000, "MobileNetV2's training images (96x96 RGB is 110 KB each).")
flags.DEFINE_string("pipeline_from", None, "pipeline: the files folder of an earlier run, to time its files again.")
flags.DEFINE_integer("rounds", 200, "Interleaved latency rounds (tfc.litert.time_side_by_side).")
FLAGS = flags.FLAGS

_VALIDATION = 5000
_TARGET = 0.005


def main(argv):
    del argv
    logging.set_verbosity(logging.WARNING)
    warnings.filterwarnings("ignore")
    ((x_train, y_train), (x_test, y_test)), data_name = _common.load_data()
    folder = tempfile.mkdtemp(prefix="tfcompress_accuracy_")
    print(f"data: {data_name}; CPU: {tfc.litert.cpu()}; files in {folder}", flush=True)
    start = time.perf_counter()
    if "pipeline" in FLAGS.parts:
        _pipeline(folder)
    held = min(_VALIDATION, len(x_train) // 5)
    split = (x_train[:-held], y_train[:-held]), (x_train[-held:], y_train[-held:])
    models = {}
    if {"resnet", "recovery", "control", "calibration"} & set(FLAGS.parts):
        models = _train_models(split[0], x_test, y_test)
    if "resnet" in FLAGS.parts:
        _resnet(models["ResNet"], split[0], (x_test, y_test), folder)
    if "recovery" in FLAGS.parts:
        _recovery(models["ResNet"], split[0], (x_test, y_test))
    if "control" in FLAGS.parts:
        _control(models, split, (x_test, y_test), folder)
    if "calibration" in FLAGS.parts:
        _calibration(models, split[0], (x_test, y_test), folder)
    print(f"\ntotal: {time.perf_counter() - start:.0f} s", flush=True)


def _pipeline(folder):
    """The full recipe three times: all-int8 without and with distillation-aided recovery, and the first conv float."""
    epochs = FLAGS.epochs
    reports = {}
    for run, recovery, float_layers in (("plain", False, None), ("guided", True, None), ("first", False, ["first"])):
        if FLAGS.pipeline_from:  # an earlier run's reports and files: time them again, train nothing
            with open(os.path.join(FLAGS.pipeline_from, f"pipeline_{run}", "report.json")) as file:
                reports[run] = json.load(file)
            continue
        recipe = {
            "model": "builtin:student",
            "data": {"source": "mnist", "path": FLAGS.mnist_dir},
            "output_dir": os.path.join(folder, f"pipeline_{run}"),
            "batch_size": 64,
            "stage_files": True,
            "stages": {
                "distill": {"teacher": "builtin:teacher", "teacher_epochs": epochs, "epochs": epochs},
                "channels": {"ratio": FLAGS.channels, "finetune_epochs": epochs, "distill_recovery": recovery},
                "prune": {"sparsity": 0.8, "epochs": epochs, "finetune_epochs": 1, "distill_recovery": recovery},
                "qat": {"epochs": 1, "distill_recovery": recovery, "float_layers": float_layers},
                "export": {"mode": "int8"},
            },
        }
        print(f"\npipeline, distill_recovery={recovery}, qat float_layers={float_layers} ...", flush=True)
        reports[run] = tfc.pipeline.run(recipe, progress=lambda line: print(line, flush=True))
    plain, guided, first = reports["plain"], reports["guided"], reports["first"]
    int8 = f"int8, channels {FLAGS.channels:.0%} + 80% + QAT"
    files = {
        "float32 teacher": plain["files"]["teacher (float32)"],
        "float32 distilled student": plain["files"]["distill (float32)"],
        int8: plain["files"]["model"],
        "the same, distillation-aided recovery": guided["files"]["model"],
        "the same, first conv in float (qat float_layers)": first["files"]["model"],
        "its float32 (before QAT), for comparison": plain["files"]["prune (float32)"],
    }
    rows_by_label = {
        "float32 teacher": plain["rows"][0],
        "float32 distilled student": plain["rows"][1],
        int8: plain["final"],
        "the same, distillation-aided recovery": guided["final"],
        "the same, first conv in float (qat float_layers)": first["final"],
        "its float32 (before QAT), for comparison": plain["rows"][3],
    }
    teacher = rows_by_label["float32 teacher"]
    rows = []
    for label, path in files.items():
        row = rows_by_label[label]
        rows.append(
            {
                "model": label,
                "accuracy": row["tflite_accuracy"],
                "points": 100 * (row["tflite_accuracy"] - teacher["tflite_accuracy"]),
                "bytes": row["tflite_bytes"],
                "gzip": row["gzip_bytes"],
                "smaller": teacher["gzip_bytes"] / row["gzip_bytes"],
                "path": path,
            }
        )
    cpu = _common.side_by_side(rows, baseline=1, rounds=FLAGS.rounds)  # over the float32 distilled student
    print(f"\nLiteRT, batch 1, 1 thread, XNNPACK, {FLAGS.rounds} interleaved rounds; {cpu}")
    print(format_table(rows, [
        ("model", "model"), ("accuracy", "LiteRT acc."), ("points", "points vs teacher"), ("bytes", ".tflite bytes"),
        ("gzip", "gzip bytes"), ("smaller", "gzip x smaller than teacher"), ("us_1", "us, 1 thread"),
        ("x_1", "x faster than student (95%)"),
    ]))  # fmt: skip
    print(f"(distilled student in the recovery run: {guided['rows'][1]['tflite_accuracy']:.4f}; teacher "
          f"{guided['rows'][0]['tflite_accuracy']:.4f})", flush=True)  # fmt: skip
    for label, report in (("plain", plain), ("distillation-aided", guided), ("first conv in float", first)):
        print(f"{label}: " + ", ".join(f"{row['stage']} {row['keras_accuracy']:.4f}" for row in report["rows"]))


def _train_models(train, x_test, y_test):
    """The CNN, the same CNN with four outlier units, the small ResNet and MobileNetV2, trained on `train`.

    Only the ResNet when the parts chosen need no other.
    """
    x_train, y_train = train
    fit = {"batch_size": 128, "verbose": 0}
    models = {}
    resnet_only = not {"control", "calibration"} & set(FLAGS.parts)
    print(f"\ntraining {'the ResNet' if resnet_only else 'the CNN, the ResNet and MobileNetV2'} ...", flush=True)
    keras.utils.set_random_seed(0)
    if not resnet_only:
        cnn = _common.compile_classifier(_common.mnist_cnn(x_train.shape[1:]), 1e-3)
        cnn.fit(x_train, y_train, epochs=FLAGS.epochs, **fit)
        models["CNN"] = cnn
        models["CNN, 4 outlier units"] = _with_outliers(cnn)
        keras.utils.set_random_seed(0)
    # Cosine decay to zero: with a constant rate, BatchNormalization's moving statistics lag the weights.
    schedule = keras.optimizers.schedules.CosineDecay(2e-3, FLAGS.epochs * int(np.ceil(len(x_train) / 128)))
    resnet = _common.compile_classifier(tfc.models.residual_net(16, 3, "resnet", x_train.shape[1:]), schedule)
    resnet.fit(x_train, y_train, epochs=FLAGS.epochs, **fit)
    models["ResNet"] = resnet
    if not resnet_only:
        models["MobileNetV2 0.35, 96x96 RGB"] = _trained_mobilenet(train)
    for name, model in models.items():
        x, y = (_rgb96(x_test[:2000]), y_test[:2000]) if "MobileNet" in name else (x_test, y_test)
        print(f"  {name}: Keras test accuracy {_accuracy(model, x, y):.4f}", flush=True)
    return models


def _trained_mobilenet(train):
    """MobileNetV2 (alpha 0.35) on `train` made 96x96 RGB, its BatchNorm statistics recomputed."""
    x_train, y_train = train
    keras.utils.set_random_seed(0)
    mobilenet = keras.applications.MobileNetV2(
        input_shape=(96, 96, 3), alpha=0.35, weights=None, classes=10, classifier_activation=None
    )
    images = _rgb96(x_train[: FLAGS.mobilenet_images])
    schedule = keras.optimizers.schedules.CosineDecay(2e-3, FLAGS.epochs * int(np.ceil(len(images) / 64)))
    _common.compile_classifier(mobilenet, schedule).fit(
        images, y_train[: FLAGS.mobilenet_images], epochs=FLAGS.epochs, batch_size=64, verbose=0
    )
    # keras.applications' BatchNorms average with momentum 0.999: a few hundred steps leave their moving
    # statistics far from the weights' (test accuracy near chance). Recompute them on training images.
    tfc.prune.recalibrate_batchnorm(mobilenet, images)
    return mobilenet


def _with_outliers(model, units=4, factor=100.0):
    """The same function with `units` hidden units `factor` times larger, read `factor` times weaker."""
    copy = keras.models.clone_model(model)
    copy.set_weights(model.get_weights())
    hidden, logits = [layer for layer in copy.layers if isinstance(layer, keras.layers.Dense)]
    kernel, bias = hidden.get_weights()
    kernel[:, :units] *= factor
    bias[:units] *= factor
    hidden.set_weights([kernel, bias])
    kernel, bias = logits.get_weights()
    kernel[:units] /= factor
    logits.set_weights([kernel, bias])
    return copy


def _rgb96(images):
    return np.repeat(tf.image.resize(images, (96, 96)).numpy(), 3, axis=-1)


def _test_set(name, test):
    x_test, y_test = test
    return (_rgb96(x_test[:2000]), y_test[:2000]) if "MobileNet" in name else (x_test, y_test)


def _resnet(resnet, train, test, folder):
    """Half the ResNet's channels: plain fine-tuning vs distillation from the unpruned ResNet."""
    print(f"\nResNet, channels 50%: plain vs distillation-aided fine-tuning (peak rate {FLAGS.finetune_lr}, "
          f"alpha {FLAGS.alpha}, T {FLAGS.temperature}) ...",
          flush=True)  # fmt: skip
    x_test, y_test = test
    paths = {"ResNet": _float32(resnet, folder, "resnet")}
    accuracy = {"ResNet": _accuracy(resnet, x_test, y_test)}
    epochs_log = {}
    for epochs in (FLAGS.finetune_epochs, FLAGS.long_epochs):
        for teacher in (None, resnet):
            keras.utils.set_random_seed(0)
            half = tfc.prune.channels(resnet, 0.5)
            label = f"channels 50%, {epochs} epochs, " + ("distilled" if teacher else "plain")
            history = tfc.prune.finetune(
                half, train, epochs=epochs, batch_size=128, teacher=teacher, validation_data=test,
                learning_rate=FLAGS.finetune_lr, alpha=FLAGS.alpha, temperature=FLAGS.temperature,
            )  # fmt: skip
            epochs_log[label] = history.history["val_accuracy"] if "val_accuracy" in history.history else None
            paths[label] = _float32(half, folder, label)
            accuracy[label] = _accuracy(half, x_test, y_test)
            print(f"  {label}: {accuracy[label]:.4f}", flush=True)
    base = accuracy["ResNet"]
    rows = [
        {"model": label, "accuracy": accuracy[label], "points": 100 * (accuracy[label] - base), "path": path}
        for label, path in paths.items()
    ]
    cpu = _common.side_by_side(rows, rounds=FLAGS.rounds)
    print(f"LiteRT, batch 1, 1 thread, XNNPACK, {FLAGS.rounds} interleaved rounds; {cpu}")
    print(format_table(rows, [("model", "model"), ("accuracy", "accuracy"), ("points", "points"),
                              ("us_1", "us, 1 thread"), ("x_1", "x faster (95%)")]))  # fmt: skip
    for label, log in epochs_log.items():
        if log:
            within = [epoch + 1 for epoch, value in enumerate(log) if value >= base - 0.01]
            reached = f"first within 1 point after epoch {within[0]}" if within else "never within 1 point"
            print(f"  {label}: per-epoch test accuracy {[round(v, 4) for v in log]}; {reached}")


def _recovery(resnet, train, test):
    """Does distillation from the unpruned ResNet recover more than plain fine-tuning? Budgets x methods x seeds."""
    x_train, y_train = train
    x_test, y_test = test
    hints = [layer.name for layer in resnet.layers if layer.name.endswith("_add")]
    methods = {
        "plain": {},
        "distilled, alpha 0.5, T 2": {"teacher": resnet, "alpha": 0.5, "temperature": 2.0},
        "distilled, alpha 0.1, T 4": {"teacher": resnet, "alpha": 0.1, "temperature": 4.0},
        "alpha 0.5, T 2, hints on the block outputs": {"teacher": resnet, "alpha": 0.5, "temperature": 2.0,
                                                       "hints": hints},
    }  # fmt: skip
    print(f"\nResNet, channels 50%: recovery by budget, {FLAGS.seeds} seeds, peak rate {FLAGS.finetune_lr}; "
          f"unpruned {_accuracy(resnet, x_test, y_test):.4f}", flush=True)  # fmt: skip
    rows = []
    for budget in FLAGS.budgets:
        images, epochs = budget.split(":")
        count = len(x_train) if images == "all" else int(images)
        plain = None
        for method, arguments in methods.items():
            accuracies = []
            for seed in range(FLAGS.seeds):
                keras.utils.set_random_seed(seed)
                half = tfc.prune.channels(resnet, 0.5)
                tfc.prune.finetune(half, (x_train[:count], y_train[:count]), epochs=int(epochs), batch_size=128,
                                   learning_rate=FLAGS.finetune_lr, **arguments)  # fmt: skip
                accuracies.append(_accuracy(half, x_test, y_test))
            mean = float(np.mean(accuracies))
            plain = mean if plain is None else plain
            rows.append({"budget": f"{count:,} images x {epochs} epochs", "method": method,
                         "seeds": " / ".join(f"{value:.4f}" for value in accuracies), "mean": f"{mean:.4f}",
                         "points": "" if method == "plain" else f"{100 * (mean - plain):+.2f}"})  # fmt: skip
            print(f"  {rows[-1]['budget']}, {method}: {rows[-1]['seeds']}", flush=True)
    print(format_table(rows, [("budget", "budget"), ("method", "method"), ("seeds", "accuracy per seed"),
                              ("mean", "mean"), ("points", "points vs plain")]))  # fmt: skip


def _float32(model, folder, label):
    path = os.path.join(folder, "".join(c if c.isalnum() else "_" for c in label) + ".tflite")
    return tfc.export.to_tflite(model, path, mode="float32", overwrite=True).path


def _accuracy(model, x, y):
    return float(np.mean(model.predict(x, batch_size=256, verbose=0).argmax(-1) == y))


def _control(models, split, test, folder):
    """Raw converter, plain int8 and accuracy-controlled int8, side by side on the test set."""
    (x_train, _), (x_val, y_val) = split
    rows = []
    for name, model in models.items():
        print(f"\naccuracy control: {name} ...", flush=True)
        x_test, y_test = _test_set(name, test)
        calibration = _rgb96(x_train[:500]) if "MobileNet" in name else x_train[:500]
        validation = (_rgb96(x_val[:1000]), y_val[:1000]) if "MobileNet" in name else (x_val, y_val)
        stem = os.path.join(folder, "".join(c if c.isalnum() else "_" for c in name))
        files = {"raw converter": _raw_converter(model, calibration, stem + "_raw.tflite")}
        files["plain int8"] = tfc.export.to_tflite(
            model, stem + "_plain.tflite", representative_data=calibration, io_dtype="float32", overwrite=True
        ).path
        started = time.perf_counter()
        try:
            result = tfc.export.with_accuracy_control(
                model, stem + "_controlled.tflite", representative_data=calibration, validation_data=validation,
                max_accuracy_drop=_TARGET, overwrite=True,
            )  # fmt: skip
            files["controlled"] = result.path
            chosen = result.accuracy_control
        except tfc.export.AccuracyTargetError as error:
            print(f"  {error}")
            chosen = None
        seconds = time.perf_counter() - started
        reference = model.predict(x_test, batch_size=256, verbose=0).argmax(-1)
        keras_accuracy = float(np.mean(reference == y_test))
        for kind, path in files.items():
            predicted = tfc.litert.LiteRTModel(path).predict(x_test).argmax(-1)
            accuracy = float(np.mean(predicted == y_test))
            rows.append({
                "model": name, "file": kind, "keras": keras_accuracy, "accuracy": accuracy,
                "points": 100 * (accuracy - keras_accuracy), "agreement": float(np.mean(predicted == reference)),
                "bytes": os.path.getsize(path),
                "float_layers": ", ".join(chosen.float_layers) or "none" if kind == "controlled" else "",
                "how": _how(chosen, seconds) if kind == "controlled" else "",
            })  # fmt: skip
    print()
    print(format_table(rows, [
        ("model", "model"), ("file", "file"), ("keras", "Keras acc."), ("accuracy", "LiteRT acc."),
        ("points", "points"), ("agreement", "agreement"), ("bytes", "bytes"), ("float_layers", "layers in float"),
        ("how", "chosen"),
    ]))  # fmt: skip


def _how(control, seconds):
    if control is None:
        return "target missed"
    how = "equalized" if control.chosen["equalized"] else "as trained"
    return f"{how}, {len(control.trials)} files tried, {seconds:.0f} s"


def _raw_converter(model, calibration, path):
    """What a user gets from the TFLite converter's documented int8 recipe, float I/O."""
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = lambda: ([calibration[i : i + 1]] for i in range(len(calibration)))
    with open(path, "wb") as file:
        file.write(converter.convert())
    return path


def _calibration(models, train, test, folder):
    """Int8 agreement on the test set by calibration count and selection (random, class-stratified)."""
    x_train, y_train = train
    rows = []
    for name in ("CNN", "ResNet", "MobileNetV2 0.35, 96x96 RGB"):
        model = models[name]
        x_test, y_test = _test_set(name, test)
        reference = model.predict(x_test, batch_size=256, verbose=0).argmax(-1)
        print(f"\ncalibration: {name} ...", flush=True)
        for count in (100, 200, 500, 1000):
            row = {"model": name, "count": count}
            for selection in ("random", "stratified"):
                agreements = []
                for seed in (0, 1):
                    chosen = _select(y_train, count, selection, seed)
                    images = _rgb96(x_train[chosen]) if "MobileNet" in name else x_train[chosen]
                    path = os.path.join(folder, "calibration.tflite")
                    tfc.export.to_tflite(model, path, representative_data=images, io_dtype="float32",
                                         overwrite=True)  # fmt: skip
                    predicted = tfc.litert.LiteRTModel(path).predict(x_test).argmax(-1)
                    agreements.append(float(np.mean(predicted == reference)))
                row[selection] = f"{np.mean(agreements):.2%} ({min(agreements):.2%})"
            rows.append(row)
            print(f"  {count}: {row}", flush=True)
    print()
    print("int8 agreement with the Keras model on the test set, mean over 2 seeds (worst):")
    print(format_table(rows, [("model", "model"), ("count", "images"), ("random", "random"),
                              ("stratified", "stratified by class")]))  # fmt: skip


def _select(labels, count, selection, seed):
    rng = np.random.default_rng(seed)
    if selection == "random":
        return rng.choice(len(labels), count, replace=False)
    classes = np.unique(labels)
    per_class = [rng.permutation(np.flatnonzero(labels == label)) for label in classes]
    share = count // len(classes)
    chosen = np.concatenate([indices[:share] for indices in per_class])
    rest = np.setdiff1d(np.arange(len(labels)), chosen)
    return np.concatenate([chosen, rng.choice(rest, count - len(chosen), replace=False)])


if __name__ == "__main__":
    _common.run(main, partial_flags=("parts",))
