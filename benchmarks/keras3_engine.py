"""The Keras 3 engine beside the Keras 2 (TF-MOT) one, model for model, and tfc.Distiller beside keras.distillation.

Table 1, the zoo's models (tests/zoo.py), each trained once in tf_keras on digits and given
to the Keras 3 engine as its Keras 3 twin (keras.applications builds the same layers in both
Kerases; the same weights): `tfc.quantize.qat` with representative data, four epochs of QAT,
the int8 export (TF-MOT's calibrated on the representative data, for the layers it keeps in
float during QAT; the Keras 3 engine's from its learned ranges alone). For each engine: the
file's agreement with its QAT model over 200 held-out digits (top-1, and over the decided
answers of `tests/zoo.decided`), the accuracy drop from the float model to the file, the
file's bytes, its 1-thread latency over the float32 file's
(timed side by side), and the QAT epoch's time over the float model's epoch on the same 1,024
examples (the median of epochs 2 to 4 of each: the first also traces).

Table 2, keras.io's "Knowledge Distillation" setup in Keras 3 (its teacher and student, with
`LeakyReLU(negative_slope=0.2)`, alpha 0.1, T 10, Adam, batch 32) on MNIST: the student
distilled by `tfc.Distiller`, by `keras.distillation.Distiller` with
`LogitsDistillation(temperature=10, loss=keras.losses.KLDivergence())` (the instance, which
softens and scales by T²), and with its default `loss="kl_divergence"` (the function: no softmax,
no T²); test accuracy and the steady epoch time of each.

Usage: python benchmarks/keras3_engine.py [--models=mobilenet_v2] [--train_limit=12000] [--write]
"""

import os
import pathlib
import sys
import tempfile
import time

import numpy as np
from absl import flags

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))  # tests/zoo.py
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))

import _common  # noqa: E402

import tfcompress as tfc  # noqa: E402
from tests import zoo  # noqa: E402
from tfcompress import _tasks  # noqa: E402
from tfcompress._keras3 import keras_of  # noqa: E402

MODELS = ("mobilenet_v2", "mobilenet_v3_small", "efficientnet_b0", "resnet50", "transfer_tutorial", "kws_conv1d",
          "ds_cnn", "text_embedding")  # fmt: skip
flags.DEFINE_list("models", list(MODELS), "Zoo models of table 1.")
flags.DEFINE_integer("train_limit", 12000, "MNIST training images of table 2 (keras.io: all 60,000).")
flags.DEFINE_integer("epochs", 3, "Epochs of each student (keras.io: 3).")
flags.DEFINE_integer("teacher_epochs", 2, "Epochs of the teacher (keras.io: 5).")
FLAGS = flags.FLAGS


class EpochTimer:
    """A callback of either Keras (duck-typed: both fits take it) that records each epoch's seconds."""

    def __init__(self):
        self.seconds, self.model, self.params = [], None, {}

    def set_model(self, model):
        self.model = model

    def set_params(self, params):
        self.params = params

    def on_epoch_begin(self, epoch, logs=None):
        self._start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.seconds.append(time.perf_counter() - self._start)

    def __getattr__(self, name):  # every other hook does nothing
        if name.startswith("on_"):
            return lambda *args, **kwargs: None
        if name.startswith("_implements_"):
            return lambda: False
        raise AttributeError(name)

    @property
    def steady(self):
        """The median epoch after the first, which also traces."""
        steady = sorted(self.seconds[1:] or self.seconds)
        return steady[len(steady) // 2]


def _epoch_seconds(model, x, y, loss, learning_rate):
    keras = keras_of(model)
    model.compile(optimizer=keras.optimizers.Adam(learning_rate), loss=loss)
    timer = EpochTimer()
    model.fit(x, y, batch_size=32, epochs=4, verbose=0, callbacks=[timer])
    return timer.steady


def _engine_row(name, engine, model, data, folder):
    """QAT, one epoch of it, the int8 file, and what they measured, for one engine."""
    (x, y), calibration, (x_train, y_train) = data
    keras = keras_of(model)
    task = _tasks.infer(model, task=zoo.TASKS.get(name))
    loss = task.loss(keras)
    float_copy = keras.models.clone_model(model)
    float_copy.set_weights(model.get_weights())
    float_epoch = _epoch_seconds(float_copy, x_train, y_train, loss, 1e-5)
    start = time.perf_counter()
    quantization_aware = tfc.quantize.qat(model, representative_data=calibration)
    qat_seconds = time.perf_counter() - start
    qat_epoch = _epoch_seconds(quantization_aware, x_train, y_train, loss, 1e-5)
    # TF-MOT keeps some layers in float during QAT (EfficientNet's squeeze-and-excite), which the export calibrates;
    # the Keras 3 engine quantizes every layer, so its file needs no data.
    given = {"representative_data": calibration} if engine == "keras2" else {}
    exported = tfc.export.to_tflite(quantization_aware, os.path.join(folder, f"{name}_{engine}.tflite"), **given)
    float32 = tfc.export.to_tflite(model, os.path.join(folder, f"{name}_{engine}_float32.tflite"), mode="float32")
    check = tfc.litert.verify(exported.path, quantization_aware, x, y if y is not None else None)
    tflite = tfc.litert.LiteRTModel(exported.path).predict(x)
    decided = zoo.decided(quantization_aware, x, tasks=[task])[0]
    _, clear, count = zoo.agreement(tflite, quantization_aware.predict(x, verbose=0), decided, task)
    float_accuracy = _tasks.evaluate(model, x, y, task) if y is not None else None
    return {
        "model": f"{name} ({engine})",
        "path": exported.path,
        "float32": float32.path,
        "agreement": check["agreement"],
        "clear": f"{clear:.1%} of {count}",
        "drop": None if float_accuracy is None else (float_accuracy - check["tflite_accuracy"]) * 100,
        "bytes": exported.bytes,
        "integer_only": not tfc.litert.inspect(exported.path)["float_ops"],
        "epoch_ratio": qat_epoch / float_epoch,
        "qat_seconds": qat_seconds,
    }


def _zoo_table(folder):
    rows = []
    for name in FLAGS.models:
        model = zoo.build(name, trained=True)
        if name in zoo.IMAGE_CLASSIFIERS:
            data = (zoo.digit_images(name, 200, offset=1200), zoo.digit_images(name, 128, 1400)[0],
                    zoo.digit_images(name, 1024))  # fmt: skip
        else:  # audio and text: random inputs, the model's own answers as labels
            x, calibration, x_train = (zoo.inputs_for(name, model, count, seed) for count, seed in
                                       ((200, 1), (128, 2), (1024, 3)))  # fmt: skip
            y_train = model.predict(x_train, verbose=0).argmax(-1)
            data = ((x, model.predict(x, verbose=0).argmax(-1)), calibration, (x_train, y_train))
        twin = zoo.keras3_twin(name, model)
        for engine, engine_model in (("keras2", model), ("keras3", twin)):
            try:
                rows.append(_engine_row(name, engine, engine_model, data, folder))
            except Exception as error:  # the table shows a failure as it reached the user
                rows.append({"model": f"{name} ({engine})", "error": f"{type(error).__name__}: {error}"[:200]})
            print(rows[-1], flush=True)
    return rows


def _latency(rows):
    """Each file's 1-thread latency over its float32 file's, the two timed side by side."""
    for row in rows:
        if "error" in row:
            continue
        timed = tfc.litert.time_side_by_side({"float32": row["float32"], "int8": row["path"]}, threads=1,
                                             rounds=100, max_seconds=60)  # fmt: skip
        float_ms, int8_ms = (timing["median_ms"] for timing in timed.files)
        row["latency"] = int8_ms / float_ms


def _keras_io_table():
    import keras

    (x_train, y_train), (x_test, y_test) = _common.load_data()[0]
    x_train, y_train = x_train[: FLAGS.train_limit], y_train[: FLAGS.train_limit]

    def model(first, second, name):
        layers = keras.layers
        return keras.Sequential([keras.Input(x_train.shape[1:]), layers.Conv2D(first, 3, strides=2, padding="same"),
                                 layers.LeakyReLU(negative_slope=0.2),
                                 layers.MaxPooling2D(pool_size=2, strides=1, padding="same"),
                                 layers.Conv2D(second, 3, strides=2, padding="same"), layers.Flatten(),
                                 layers.Dense(10)], name=name)  # fmt: skip

    keras.utils.set_random_seed(0)
    teacher = model(256, 512, "teacher")
    teacher.compile(optimizer=keras.optimizers.Adam(),
                    loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))  # fmt: skip
    teacher.fit(x_train, y_train, epochs=FLAGS.teacher_epochs, batch_size=32, verbose=0)
    initial = model(16, 32, "student").get_weights()
    rows = [{"run": "teacher", "accuracy": _accuracy(teacher, x_test, y_test)}]
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    for run in ("tfc.Distiller", "keras.distillation, KLDivergence()", 'keras.distillation, "kl_divergence"'):
        keras.utils.set_random_seed(1)
        student = model(16, 32, "student")
        student.set_weights(initial)
        if run == "tfc.Distiller":
            distiller = tfc.Distiller(student=student, teacher=teacher)
            distiller.compile(optimizer=keras.optimizers.Adam(), student_loss_fn=loss,
                              distillation_loss_fn=keras.losses.KLDivergence(), alpha=0.1, temperature=10)  # fmt: skip
        else:
            kl = keras.losses.KLDivergence() if "()" in run else "kl_divergence"
            distiller = keras.distillation.Distiller(
                teacher=teacher, student=student, student_loss_weight=0.1,
                distillation_losses=keras.distillation.LogitsDistillation(temperature=10, loss=kl),
            )  # fmt: skip
            distiller.compile(optimizer=keras.optimizers.Adam(), loss=loss)
        timer = EpochTimer()
        distiller.fit(x_train, y_train, epochs=FLAGS.epochs, batch_size=32, verbose=0, callbacks=[timer])
        rows.append({"run": run, "accuracy": _accuracy(student, x_test, y_test), "epoch_s": timer.steady})
        print(rows[-1], flush=True)
    return rows


def _accuracy(model, x, y):
    return float(np.mean(np.argmax(model.predict(x, batch_size=1024, verbose=0), axis=-1) == y))


def main(argv):
    del argv
    with tempfile.TemporaryDirectory(prefix="keras3_engine_") as folder:
        zoo_rows = _zoo_table(folder)
        _latency(zoo_rows)
    keras_io_rows = _keras_io_table()
    header = ["model (engine)", "int8 = QAT model (top-1)", "on clear answers", "accuracy drop (points)",
              "integer-only", "bytes", "int8 / float32 latency, 1 thread", "QAT epoch / float epoch"]  # fmt: skip
    cells = []
    for row in zoo_rows:
        if "error" in row:
            cells.append([row["model"], f"✗ {row['error']}"] + [""] * (len(header) - 2))
            continue
        drop = "—" if row["drop"] is None else f"{row['drop']:+.1f}"
        cells.append([row["model"], f"{row['agreement']:.1%}", row["clear"], drop, "yes" if row["integer_only"] else
                      "no", f"{row['bytes']:,}", f"{row['latency']:.2f}x", f"{row['epoch_ratio']:.2f}x"])  # fmt: skip
    distill = _common.markdown_table(
        ["student of keras.io's setup", "test accuracy", "epoch s"],
        [[row["run"], f"{row['accuracy']:.4f}", f"{row['epoch_s']:.1f}" if "epoch_s" in row else "—"]
         for row in keras_io_rows],
    )  # fmt: skip
    page = (
        "## The zoo through QAT and int8, in both engines\n\n"
        + _common.markdown_table(header, cells)
        + f"\n\nCPU: {tfc.litert.cpu()}. 200 held-out digits (audio and text: random inputs, the float model's "
        "answers as labels); QAT and float epochs of 1,024 examples, batch 32, Adam 1e-5 (the median of epochs 2 "
        "to 4).\n\n"
        "## Distillation: tfc.Distiller beside keras.distillation\n\n"
        + distill
        + f"\n\nMNIST, the first {FLAGS.train_limit:,} training images, {FLAGS.teacher_epochs} teacher epochs, "
        f"{FLAGS.epochs} student epochs; epoch s is the median epoch after the first (which also traces).\n"
    )
    print(page)
    return page


if __name__ == "__main__":
    _common.run(main, partial_flags=("models", "train_limit", "epochs", "teacher_epochs"))
