"""`Distiller`: knowledge distillation as a Keras model, trained with compile() and fit()."""

from tfcompress._checks import check_number
from tfcompress._keras import ensure_keras2_model, keras, tf
from tfcompress.distill import losses


class Distiller(keras.Model):
    """Trains a student to match a frozen teacher's softened outputs and the true labels.

    API-compatible with the keras.io "Knowledge Distillation" example, with its pitfalls
    fixed: the teacher runs in inference mode outside the gradient tape and the optimizer
    only ever sees the student's variables; the soft-target loss is computed from logits
    in float32 with log-softmax and multiplied by T²; losses are running means; the
    optimizer's `minimize` applies loss scaling under mixed precision; and the loss is
    scaled for `tf.distribute` so gradients match single-device training.

    The loss is `alpha * student_loss + (1 - alpha) * distillation_loss`, plus the
    student's regularization losses, where `distillation_loss` is
    `KL(softmax(teacher / T) || softmax(student / T)) * T**2`.

    Args:
      student: the Keras 2 model to train; it must output logits. It is trained in place
        and stays usable (and savable) on its own as `distiller.student`.
      teacher: a built Keras 2 model that outputs logits of the same shape. Its weights
        and its `trainable` flags are left as they are.
      **kwargs: passed to `keras.Model` (for example `name`).

    Raises:
      TypeError: a model is not a Keras 2 model (a Keras 3 model gets a message saying so).
      ValueError: the teacher is not built, the two are the same object, or their output
        shapes differ.

    Example:
      >>> distiller = tfc.Distiller(student=student, teacher=teacher)
      >>> distiller.compile(
      ...     optimizer=keras.optimizers.Adam(),
      ...     metrics=[keras.metrics.SparseCategoricalAccuracy()],
      ...     student_loss_fn=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
      ...     distillation_loss_fn=keras.losses.KLDivergence(),
      ...     alpha=0.1,
      ...     temperature=10,
      ... )
      >>> distiller.fit(x_train, y_train, epochs=3)
      >>> distiller.student.save("student.keras")
    """

    def __init__(self, student, teacher, **kwargs):
        super().__init__(**kwargs)
        ensure_keras2_model(student, "student")
        ensure_keras2_model(teacher, "teacher")
        if student is teacher:
            raise ValueError("`student` and `teacher` are the same model; distillation needs two models.")
        if not teacher.built:
            raise ValueError(
                "`teacher` is not built: it has no weights, so it cannot have been trained. "
                "Build and train it first, e.g. start it with keras.Input(shape=...) and call fit."
            )
        _check_output_shapes(student, teacher)
        self.student = student
        self.teacher = teacher
        # Variables, not floats: the traced train step reads them, so a schedule that
        # changes them between epochs takes effect without retracing.
        self._alpha = tf.Variable(0.1, trainable=False, dtype=tf.float32, name="alpha")
        self._temperature = tf.Variable(3.0, trainable=False, dtype=tf.float32, name="temperature")
        self.student_loss_fn = None
        self.distillation_loss_fn = None
        self._loss_tracker = keras.metrics.Mean(name="loss")
        self._student_loss_tracker = keras.metrics.Mean(name="student_loss")
        self._distillation_loss_tracker = keras.metrics.Mean(name="distillation_loss")

    def compile(
        self,
        optimizer="adam",
        metrics=None,
        student_loss_fn=None,
        distillation_loss_fn=None,
        alpha: float = 0.1,
        temperature: float = 3.0,
        **kwargs,
    ):
        """Configures the distillation.

        Args:
          optimizer: a Keras optimizer or its name.
          metrics: metrics of the student's predictions against the labels.
          student_loss_fn: loss between labels and student logits; defaults to
            `SparseCategoricalCrossentropy(from_logits=True)`.
          distillation_loss_fn: loss between the teacher's and the student's softened
            distributions; defaults to `KLDivergence()`, which is computed from logits with
            log-softmax. Any other loss is called, as in the keras.io example, on
            `(softmax(teacher / T), softmax(student / T))`. Either way the result is
            multiplied by T².
          alpha: weight of the student loss, in [0, 1]; `1 - alpha` weighs distillation.
          temperature: the softening temperature T, > 0.
          **kwargs: passed to `keras.Model.compile` (for example `jit_compile`).

        Raises:
          ValueError: `alpha` is outside [0, 1], `temperature` is not > 0, or `loss` is
            passed (the losses are `student_loss_fn` and `distillation_loss_fn`).

        Example:
          >>> distiller.compile(optimizer="adam", metrics=["accuracy"], alpha=0.1, temperature=10)
        """
        if "loss" in kwargs:
            raise ValueError(
                "Distiller.compile takes `student_loss_fn` and `distillation_loss_fn`, not `loss`. "
                f"Received: loss={kwargs['loss']!r}"
            )
        self.alpha = alpha
        self.temperature = temperature
        super().compile(optimizer=optimizer, metrics=metrics, **kwargs)
        self.student_loss_fn = student_loss_fn or keras.losses.SparseCategoricalCrossentropy(from_logits=True)
        self.distillation_loss_fn = distillation_loss_fn or keras.losses.KLDivergence()

    @property
    def alpha(self) -> float:
        """Weight of the student (true-label) loss, in [0, 1]; settable between epochs."""
        return float(self._alpha.numpy())

    @alpha.setter
    def alpha(self, value):
        check_number("alpha", value, low=0, high=1)
        self._alpha.assign(value)

    @property
    def temperature(self) -> float:
        """The softening temperature T > 0; settable between epochs."""
        return float(self._temperature.numpy())

    @temperature.setter
    def temperature(self, value):
        check_number("temperature", value, low=0, low_open=True)
        self._temperature.assign(value)

    @property
    def metrics(self):
        # Listed here so Keras resets them at the start of every epoch and evaluate().
        trackers = [self._loss_tracker, self._student_loss_tracker, self._distillation_loss_tracker]
        return trackers + (self.compiled_metrics.metrics if self.compiled_metrics is not None else [])

    @property
    def trainable_weights(self):
        return self.student.trainable_weights

    @property
    def non_trainable_weights(self):
        return self.student.non_trainable_weights + self.teacher.weights

    def call(self, inputs, training=None):
        return self.student(inputs, training=training)

    def train_step(self, data):
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        # Outside the tape: no gradient reaches the teacher and none is recorded for it.
        teacher_logits = self.teacher(x, training=False)
        with tf.GradientTape() as tape:
            student_logits = self.student(x, training=True)
            student_loss, distillation_loss, loss = self._compute_losses(
                y, teacher_logits, student_logits, sample_weight
            )
            # Gradients are summed across replicas, so each replica contributes its share.
            replicas = tf.distribute.get_strategy().num_replicas_in_sync
            loss_to_minimize = loss / replicas
        self.optimizer.minimize(loss_to_minimize, self.student.trainable_variables, tape=tape)
        return self._update_metrics(y, student_logits, sample_weight, student_loss, distillation_loss, loss)

    def test_step(self, data):
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        teacher_logits = self.teacher(x, training=False)
        student_logits = self.student(x, training=False)
        student_loss, distillation_loss, loss = self._compute_losses(y, teacher_logits, student_logits, sample_weight)
        return self._update_metrics(y, student_logits, sample_weight, student_loss, distillation_loss, loss)

    def _compute_losses(self, y, teacher_logits, student_logits, sample_weight):
        if teacher_logits.shape[-1] != student_logits.shape[-1]:
            raise ValueError(
                f"The teacher outputs {teacher_logits.shape[-1]} values per example but the student "
                f"outputs {student_logits.shape[-1]}; distillation needs the same classes in both."
            )
        if y is None:
            raise ValueError("Distiller needs labels: call fit(x, y) or use a dataset of (x, y) pairs.")
        student_losses = losses.per_example(self.student_loss_fn, y, student_logits)
        distillation_losses = losses.distillation_per_example(
            self.distillation_loss_fn, teacher_logits, student_logits, self._temperature
        )
        student_loss = _weighted_mean(student_losses, sample_weight)
        distillation_loss = _weighted_mean(distillation_losses, sample_weight)
        loss = self._alpha * student_loss + (1.0 - self._alpha) * distillation_loss
        if self.student.losses:
            loss += tf.add_n([tf.cast(extra, tf.float32) for extra in self.student.losses])
        return student_loss, distillation_loss, loss

    def _update_metrics(self, y, student_logits, sample_weight, student_loss, distillation_loss, loss):
        self._loss_tracker.update_state(loss)
        self._student_loss_tracker.update_state(student_loss)
        self._distillation_loss_tracker.update_state(distillation_loss)
        self.compiled_metrics.update_state(y, student_logits, sample_weight)
        return {metric.name: metric.result() for metric in self.metrics}

    def get_config(self):
        raise NotImplementedError("A Distiller is not saved as a whole: save `distiller.student`, the model you ship.")


def _weighted_mean(values, sample_weight):
    if sample_weight is None:
        return tf.reduce_mean(values)
    weights = tf.reshape(tf.cast(sample_weight, tf.float32), tf.shape(values))
    # As Keras's "sum over batch size": weighted sum divided by the number of examples.
    return tf.reduce_sum(values * weights) / tf.cast(tf.size(values), tf.float32)


def _check_output_shapes(student, teacher):
    # Subclassed models have no static outputs; their shapes are checked at the first step.
    for name, model in (("teacher", teacher), ("student", student)):
        if model.outputs and len(model.outputs) != 1:
            raise ValueError(f"`{name}` has {len(model.outputs)} outputs; Distiller needs one output of logits.")
    if not (teacher.outputs and student.outputs):
        return
    teacher_shape, student_shape = tuple(teacher.output_shape[1:]), tuple(student.output_shape[1:])
    if teacher_shape != student_shape:
        raise ValueError(
            f"The teacher's outputs have shape {teacher_shape} but the student's have shape "
            f"{student_shape} (batch left out); they must be equal, one logit per class in both."
        )
