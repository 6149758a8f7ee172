"""The keras.io "Knowledge Distillation" setup: scratch vs live teacher vs cached teacher vs the keras.io loop.

Models, losses and settings are those of the keras.io example (teacher: Conv 256 stride 2,
LeakyReLU, MaxPool, Conv 512 stride 2, Dense 10; student: the same with 16/32 filters;
alpha=0.1, T=10, Adam, batch 32). In one run it trains the teacher, then four students from
the same initial weights for the same epochs, and prints test accuracy and steady-state epoch
time (the median epoch after the first, which also traces) of each:

- the student alone, from scratch;
- distilled by a plain re-implementation of the keras.io `train_step` (live teacher);
- distilled by `tfc.Distiller` with the live teacher;
- distilled by `tfc.Distiller` on `cache_teacher(...)`, plus the one-off time to fill the cache.

Ratios printed: cached / live epoch time, and tfcompress live / keras.io loop epoch time.
Reads ../shared/data/mnist (or --mnist_dir) when it is there, else the built-in digits.

Run: python benchmarks/distill_keras_io.py [--epochs=3] [--teacher_epochs=3]
"""

import time

import _common
import numpy as np
from _common import EpochTimer, load_data
from absl import flags

import tfcompress as tfc
from tfcompress import keras
from tfcompress._keras import tf
from tfcompress.report import format_table

flags.DEFINE_integer("epochs", 3, "Epochs of each student (keras.io: 3).")
flags.DEFINE_integer("teacher_epochs", 3, "Epochs of the teacher (keras.io: 5).")
flags.DEFINE_integer("batch_size", 32, "Batch size (keras.io: Keras's default, 32).")
flags.DEFINE_integer("train_limit", None, "Use only this many training images (for a quick look).")
FLAGS = flags.FLAGS

ALPHA, TEMPERATURE = 0.1, 10.0


def keras_io_model(first_filters, second_filters, input_shape, name):
    """The keras.io example's teacher (256/512) or student (16/32) for the given input shape."""
    return keras.Sequential(
        [
            keras.Input(shape=input_shape),
            keras.layers.Conv2D(first_filters, (3, 3), strides=(2, 2), padding="same"),
            keras.layers.LeakyReLU(alpha=0.2),
            keras.layers.MaxPooling2D(pool_size=(2, 2), strides=(1, 1), padding="same"),
            keras.layers.Conv2D(second_filters, (3, 3), strides=(2, 2), padding="same"),
            keras.layers.Flatten(),
            keras.layers.Dense(10),
        ],
        name=name,
    )


class KerasIoDistiller(keras.Model):
    """The keras.io example's Distiller, re-implemented plainly as the baseline to time against."""

    def __init__(self, student, teacher):
        super().__init__()
        self.teacher = teacher
        self.student = student

    def compile(self, optimizer, metrics, student_loss_fn, distillation_loss_fn, alpha, temperature):
        super().compile(optimizer=optimizer, metrics=metrics)
        self.student_loss_fn = student_loss_fn
        self.distillation_loss_fn = distillation_loss_fn
        self.alpha = alpha
        self.temperature = temperature

    def train_step(self, data):
        x, y = data
        teacher_predictions = self.teacher(x, training=False)
        with tf.GradientTape() as tape:
            student_predictions = self.student(x, training=True)
            student_loss = self.student_loss_fn(y, student_predictions)
            distillation_loss = self.distillation_loss_fn(
                tf.nn.softmax(teacher_predictions / self.temperature, axis=1),
                tf.nn.softmax(student_predictions / self.temperature, axis=1),
            )
            loss = self.alpha * student_loss + (1 - self.alpha) * distillation_loss
        variables = self.student.trainable_variables
        self.optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables))
        self.compiled_metrics.update_state(y, student_predictions)
        results = {metric.name: metric.result() for metric in self.metrics}
        results.update({"student_loss": student_loss, "distillation_loss": distillation_loss})
        return results

    def call(self, inputs):
        return self.student(inputs)


def _accuracy(model, x, y):
    logits = model.predict(x, batch_size=1024, verbose=0)
    return float(np.mean(np.argmax(logits, axis=-1) == y))


def _fresh_student(initial_weights, input_shape):
    student = keras_io_model(16, 32, input_shape, "student")
    student.set_weights(initial_weights)
    return student


def _distill_kwargs():
    return dict(
        optimizer=keras.optimizers.Adam(),
        metrics=[keras.metrics.SparseCategoricalAccuracy()],
        student_loss_fn=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        distillation_loss_fn=keras.losses.KLDivergence(),
        alpha=ALPHA,
        temperature=TEMPERATURE,
    )


def main(argv):
    del argv
    ((x_train, y_train), (x_test, y_test)), name = load_data()
    if FLAGS.train_limit:
        x_train, y_train = x_train[: FLAGS.train_limit], y_train[: FLAGS.train_limit]
    input_shape, epochs, batch = x_train.shape[1:], FLAGS.epochs, FLAGS.batch_size
    print(f"data: {name}; {len(x_train)} training and {len(x_test)} test images", flush=True)

    keras.utils.set_random_seed(0)
    teacher = keras_io_model(256, 512, input_shape, "teacher")
    teacher.compile(
        optimizer=keras.optimizers.Adam(),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=[keras.metrics.SparseCategoricalAccuracy()],
    )
    teacher.fit(x_train, y_train, epochs=FLAGS.teacher_epochs, batch_size=batch, verbose=0)
    rows = [{"run": "teacher", "params": teacher.count_params(), "accuracy": _accuracy(teacher, x_test, y_test)}]
    print(f"teacher trained: accuracy {rows[0]['accuracy']:.4f}", flush=True)
    initial = keras_io_model(16, 32, input_shape, "student").get_weights()

    def record(run, model, timer, extra_seconds=None):
        rows.append(
            {
                "run": run,
                "params": model.count_params(),
                "accuracy": _accuracy(model, x_test, y_test),
                "epoch_s": timer.steady_epoch,
                "extra_s": extra_seconds,
            }
        )
        print(f"{run}: accuracy {rows[-1]['accuracy']:.4f}, epoch {timer.steady_epoch:.1f} s", flush=True)
        return timer.steady_epoch

    def timed_fit(model, *data, **kwargs):
        timer = EpochTimer()
        model.fit(*data, epochs=epochs, verbose=0, callbacks=[timer], **kwargs)
        return timer

    keras.utils.set_random_seed(1)
    scratch = _fresh_student(initial, input_shape)
    scratch.compile(
        optimizer=keras.optimizers.Adam(),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=[keras.metrics.SparseCategoricalAccuracy()],
    )
    record("student from scratch", scratch, timed_fit(scratch, x_train, y_train, batch_size=batch))

    live_epochs = {}
    for run, distiller_class in (("keras.io train_step", KerasIoDistiller), ("tfc.Distiller", tfc.Distiller)):
        keras.utils.set_random_seed(1)
        distiller = distiller_class(student=_fresh_student(initial, input_shape), teacher=teacher)
        distiller.compile(**_distill_kwargs())
        timer = timed_fit(distiller, x_train, y_train, batch_size=batch)
        live_epochs[run] = record(f"{run}, live teacher", distiller.student, timer)

    keras.utils.set_random_seed(1)
    cached = tfc.Distiller(student=_fresh_student(initial, input_shape), teacher=teacher)
    cached.compile(**_distill_kwargs())
    start = time.perf_counter()
    dataset = cached.cache_teacher(x_train, y_train, batch_size=batch, seed=1)
    cache_seconds = time.perf_counter() - start
    cached_epoch = record("tfc.Distiller, cached teacher", cached.student, timed_fit(cached, dataset), cache_seconds)
    keras_io_epoch, live_epoch = live_epochs["keras.io train_step"], live_epochs["tfc.Distiller"]

    print()
    print(
        format_table(
            rows,
            [
                ("run", "run"),
                ("params", "params"),
                ("accuracy", "test accuracy"),
                ("epoch_s", "epoch s"),
                ("extra_s", "one-off s"),
            ],
        )
    )
    print()
    print(f"epochs {epochs}, batch {batch}, alpha {ALPHA}, T {TEMPERATURE:g}; epoch s = median epoch after the first")
    print(f"cached / live teacher epoch time: {cached_epoch / live_epoch:.2f}x (target <= 0.55x)")
    print(f"tfc live / keras.io loop epoch time: {live_epoch / keras_io_epoch:.2f}x (target <= 1.0x)")
    return 0


if __name__ == "__main__":
    _common.run(main)
