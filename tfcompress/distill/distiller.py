"""`Distiller`: knowledge distillation as a Keras model, trained with compile() and fit(), in the student's Keras.

What distillation computes is written once here, in TensorFlow; each engine module makes it a
model of its Keras (`keras2_distiller`: tf_keras, `keras3_distiller`: Keras 3) and supplies the
few steps the two Kerases take differently (the optimizer's step, the compiled metrics).
`Distiller(student=..., teacher=...)` builds the engine of the student's Keras.
"""

import collections
import dataclasses
import importlib

import tensorflow as tf

from tfcompress import _tasks
from tfcompress._checks import check_number, check_one_of
from tfcompress._choices import TASKS
from tfcompress._keras3 import is_keras3_model, is_keras3_object, keras_of
from tfcompress._models import graph_outputs, inbound_nodes, is_graph_model
from tfcompress.distill import cache, losses
from tfcompress.distill.features import FeatureLoss

DistillationBatch = collections.namedtuple(
    "DistillationBatch",
    "x y sample_weight student_logits teacher_logits temperature student_features teacher_features",
)
DistillationBatch.__doc__ = """What an `extra_losses` hook receives for each batch.

Fields:
  x: the inputs; y: the labels; sample_weight: the weights, or None.
  student_logits: the student's outputs (in training mode during fit).
  teacher_logits: the teacher's logits, float32 (for several teachers, the fused ensemble's,
    whose softmax at `temperature` is the weighted average of theirs).
  temperature: the current temperature, a scalar float32 tensor.
  student_features, teacher_features: dicts from layer name to output, for the layers that
    `feature_losses` name (student features before any adapter).
"""


class _ByStudentsKeras(type):
    """Makes `Distiller(...)` an instance of the engine of the student's Keras."""

    def __call__(cls, *args, **kwargs):
        if cls is Distiller:
            student = kwargs["student"] if "student" in kwargs else (args[0] if args else None)
            teacher = kwargs["teacher"] if "teacher" in kwargs else (args[1] if len(args) > 1 else None)
            _check_one_keras(student, teacher)
            # Looked up by name: each engine's module subclasses this one.
            engine = "keras3_distiller" if is_keras3_model(student) else "keras2_distiller"
            cls = importlib.import_module(f"tfcompress.distill.{engine}").ENGINE
        return super().__call__(*args, **kwargs)


def _check_one_keras(student, teacher):
    """A Distiller trains in one Keras: a teacher of the other Keras than the student's is refused with the fix."""
    teachers = list(teacher) if isinstance(teacher, (list, tuple)) else [teacher]
    models = [model for model in [student, *teachers] if hasattr(model, "layers")]  # the rest: TypeError later
    if len({is_keras3_model(model) for model in models}) < 2:
        return
    if is_keras3_model(student):
        raise TypeError(
            "The student is a Keras 3 model and a teacher a Keras 2 (tf_keras) one; a Distiller trains in one "
            "Keras. Save the teacher as .keras and load it with Keras 3 (keras.models.load_model), or build the "
            "student with tf_keras."
        )
    raise TypeError(
        "The student is a Keras 2 (tf_keras) model and a teacher a Keras 3 one; a Distiller trains in one Keras. "
        "Build the student with Keras 3 (import keras), or rebuild the teacher as Keras 2: teacher = "
        "tfc.from_keras3(teacher)."
    )


class Distiller(metaclass=_ByStudentsKeras):
    """Trains a student to match a frozen teacher's softened outputs and the true labels: `compile()`, then `fit()`.

    The loss is `alpha * student_loss + (1 - alpha) * distillation_loss` (by default `KL(softmax(teacher / T) ||
    softmax(student / T)) * T**2`), plus any feature and extra losses, each logged under its own name. Binary,
    multi-label and regression students train too. The distillation guide explains the methods and the pitfalls of
    the keras.io example that this class fixes.

    It is a model of the student's Keras: a Keras 3 student (`import keras`, or `tf.keras`) gets a Keras 3 model
    that takes Keras 3 optimizers, losses, metrics and callbacks; a tf_keras student a tf_keras model.

    Args:
      student: the Keras model to train, in place: after `fit`, `student` (and `distiller.student`) is trained.
      teacher: a built model of the student's Keras, with outputs of the student's shape, or a list of them
        (averaged); not changed.
      teacher_weights: for several teachers, one non-negative weight each; equal by default.
      task: "multiclass", "binary", "multilabel" or "regression"; None infers it from the loss or the output.
      **kwargs: passed to `keras.Model` (for example `name`).

    Raises:
      TypeError: a model is not a Keras model, or the teacher's Keras is not the student's.
      ValueError: a teacher is not built or is the student, output shapes differ,
        `teacher_weights` does not match the teachers, or `task` is unknown.

    Examples:
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

    # Set by each engine: its Keras module.
    keras = None

    def __init__(self, student, teacher, teacher_weights=None, task=None, **kwargs):
        super().__init__(**kwargs)
        teachers = list(teacher) if isinstance(teacher, (list, tuple)) else [teacher]
        if not teachers:
            raise ValueError("`teacher` is an empty list; pass a teacher model or a list of them.")
        if task is not None:
            check_one_of("task", task, TASKS)
        for index, model in enumerate(teachers):
            if model is student:
                name = "teacher" if len(teachers) == 1 else f"teacher[{index}]"
                raise ValueError(f"`student` and `{name}` are the same model; distillation needs two models.")
        student = self._model_of_this_keras(student, "student")
        for index, model in enumerate(teachers):
            name = "teacher" if len(teachers) == 1 else f"teacher[{index}]"
            model = teachers[index] = self._model_of_this_keras(model, name)
            if not model.built:
                raise ValueError(
                    f"`{name}` is not built: it has no weights, so it cannot have been trained. "
                    "Build and train it first, e.g. start it with keras.Input(shape=...) and call fit."
                )
            _check_output_shapes(student, model, name)
        self._teacher_weights = _normalized_teacher_weights(teacher_weights, len(teachers))
        self.student = student
        self.teachers = teachers
        self._task_given = task
        self._task = None  # decided in compile, where the student's loss is known
        self._teacher_probabilities = []
        self._teacher_forward_model = None
        self._student_forward_model = None
        self._student_feature_layers = []
        self._teacher_feature_layers = []
        self._feature_losses = ()
        self._adapters = {}
        self._extra_losses = {}
        self._term_trackers = {}
        # Variables, not floats: the traced train step reads them, so a schedule that
        # changes them between epochs takes effect without retracing.
        self._alpha = tf.Variable(0.1, trainable=False, dtype=tf.float32, name="alpha")
        self._temperature = tf.Variable(3.0, trainable=False, dtype=tf.float32, name="temperature")
        self.student_loss_fn = None
        self.distillation_loss_fn = None
        # Not `_loss_tracker`: Keras 3's compile sets its own under that name.
        self._total_loss_tracker = self.keras.metrics.Mean(name="loss")
        self._student_loss_tracker = self.keras.metrics.Mean(name="student_loss")
        self._distillation_loss_tracker = self.keras.metrics.Mean(name="distillation_loss")

    def compile(
        self,
        optimizer="adam",
        metrics=None,
        student_loss_fn=None,
        distillation_loss_fn=None,
        alpha: float = 0.1,
        temperature: float = 3.0,
        feature_losses=None,
        extra_losses=None,
        **kwargs,
    ):
        """Configures the distillation.

        Args:
          optimizer: an optimizer of the student's Keras, or its name.
          metrics: metrics of the student's predictions against the labels (of the student's Keras, or names).
          student_loss_fn: loss between labels and student outputs; defaults to the task's (cross-entropy, or
            mean squared error for regression). It also tells the task.
          distillation_loss_fn: loss between softened teacher and student outputs, times T²; defaults to
            `KLDivergence()` from logits (mean squared error for regression), or `tfc.distill.DecoupledKD(...)`.
          alpha: weight of the student loss, in [0, 1]; `1 - alpha` weighs distillation.
          temperature: the softening temperature T, > 0.
          feature_losses: `tfc.distill.FeatureLoss`es (`Hint`, `AttentionTransfer`, your own) between named
            layers; one teacher only. Adapters are created here.
          extra_losses: a function, or a dict from name to function, of a `tfc.distill.DistillationBatch` that
            returns a loss per example or a scalar, logged under its name.
          **kwargs: passed to `keras.Model.compile` (for example `jit_compile`).

        Raises:
          TypeError: the optimizer or a metric comes from the other Keras than the student's.
          ValueError: `alpha` is outside [0, 1], `temperature` is not > 0, `loss` is
            passed (the losses are `student_loss_fn` and `distillation_loss_fn`), a layer a
            feature loss names does not exist, two terms share a name, the student's task
            cannot be told (one linear unit: pass `task=` to the Distiller) or a head does
            not fit it, or `DecoupledKD` is given for a task that is not multi-class.
          TypeError: a feature loss or an extra loss has the wrong type.

        Examples:
          >>> distiller.compile(optimizer="adam", metrics=["accuracy"], alpha=0.1, temperature=10)
        """
        if "loss" in kwargs:
            raise ValueError(
                "Distiller.compile takes `student_loss_fn` and `distillation_loss_fn`, not `loss`. "
                f"Received: loss={kwargs['loss']!r}"
            )
        # Everything is checked before anything changes, so a rejected compile leaves the Distiller as it was.
        check_number("alpha", alpha, low=0, high=1)
        check_number("temperature", temperature, low=0, low_open=True)
        self._check_same_keras("optimizer", [optimizer])
        self._check_same_keras("metrics", metrics if isinstance(metrics, (list, tuple)) else [metrics])
        feature_losses = _checked_feature_losses(feature_losses, len(self.teachers))
        extra_losses = _checked_extra_losses(extra_losses)
        term_names = [term.name for term in feature_losses] + list(extra_losses)
        _check_unique_names(term_names)
        task, teachers_probabilities = self._tasks(student_loss_fn)
        if isinstance(distillation_loss_fn, losses.DecoupledKD) and task.kind != "multiclass":
            raise ValueError(
                f"DecoupledKD splits a softmax over classes, and this student is {task.describe()}. Leave "
                "`distillation_loss_fn` at its default (the softened outputs' KL), or pass another loss."
            )
        features = self._feature_setup(feature_losses)
        super().compile(optimizer=optimizer, metrics=metrics, **kwargs)
        self.alpha = alpha
        self.temperature = temperature
        self._task, self._teacher_probabilities = task, teachers_probabilities
        self.student_loss_fn = student_loss_fn or task.loss(self.keras)
        losses_of_keras = self.keras.losses
        default = losses_of_keras.MeanSquaredError() if task.kind == "regression" else losses_of_keras.KLDivergence()
        self.distillation_loss_fn = distillation_loss_fn or default
        self._feature_losses = tuple(feature_losses)
        (
            self._student_forward_model,
            self._student_feature_layers,
            self._teacher_forward_model,
            self._teacher_feature_layers,
            self._adapters,
        ) = features
        self._extra_losses = extra_losses
        self._term_trackers = {name: self.keras.metrics.Mean(name=name) for name in term_names}
        self._keep_compile_arguments(
            dict(optimizer=optimizer, metrics=metrics, student_loss_fn=student_loss_fn,
                 distillation_loss_fn=distillation_loss_fn, alpha=alpha, temperature=temperature)
        )  # fmt: skip

    def _keep_compile_arguments(self, arguments):
        """Keeps `compile`'s arguments where the engine's Keras saves them with the model."""

    def _model_of_this_keras(self, model, argument):
        """`model`, checked to be a model of this engine's Keras (the Keras 2 engine rebuilds a Keras 3 one)."""
        raise NotImplementedError

    def _check_same_keras(self, argument, values):
        for value in values:
            if value is None or isinstance(value, str) or keras_of(value) is self.keras:
                continue
            theirs, ours = ("Keras 3", "tf_keras") if is_keras3_object(value) else ("tf_keras", "Keras 3")
            raise TypeError(
                f"`{argument}` holds a {theirs} object ({type(value).__name__}), but this Distiller's student is a "
                f"{ours} model, which trains only with {ours} objects. Build it with the student's Keras, or pass "
                f"its name as a string. Received: {argument}={value!r}"
            )

    def _tasks(self, student_loss_fn):
        """The student's `Task`, and whether each teacher outputs probabilities."""
        try:
            try:
                task = _tasks.infer(self.student, task=self._task_given, loss=student_loss_fn)
            except _tasks.UnknownTaskError:
                task = None
            if task is None or task.assumed:
                taught = self._teacher_task()
                if taught:
                    task = _tasks.infer(self.student, task=taught.kind)
                    task = dataclasses.replace(task, source=f"the teacher's {taught.source}")
            if task is None:
                _tasks.infer(self.student)  # the student's own error, with the fix
            teachers = [_tasks.infer(model, task=task.kind) for model in self.teachers]
        except ValueError as error:
            raise ValueError(f"{error} (`task` is an argument of tfc.Distiller.)") from None
        return task, [not teacher.logits and task.kind != "regression" for teacher in teachers]

    def _teacher_task(self):
        """The first teacher's task, if its loss or head says it (not by assumption), else None."""
        try:
            task = _tasks.infer(self.teachers[0])
        except _tasks.UnknownTaskError:
            return None
        return None if task.assumed else task

    @property
    def task(self):
        """The task distilled (a `tfcompress._tasks.Task`: `kind`, `logits`), known after `compile`."""
        return self._task

    def _feature_setup(self, feature_losses):
        """The models that expose the hinted layers, their layer names, and the adapters."""
        if not feature_losses:
            return None, [], None, [], {}
        student_layers = _unique(term.student_layer for term in feature_losses)
        teacher_layers = _unique(term.teacher_layer for term in feature_losses)
        student_forward = _with_layer_outputs(self.student, "student", student_layers, self.keras)
        teacher_forward = _with_layer_outputs(self.teachers[0], "teacher", teacher_layers, self.keras)
        adapters = {}
        for term in feature_losses:
            adapter = term.make_adapter(
                self.student.get_layer(term.student_layer).output.shape,
                self.teachers[0].get_layer(term.teacher_layer).output.shape,
                keras=self.keras,
            )
            if adapter is not None:
                adapters[term.name] = adapter
        return student_forward, student_layers, teacher_forward, teacher_layers, adapters

    @property
    def teacher(self):
        """The teacher model; for several teachers, the list of them."""
        return self.teachers[0] if len(self.teachers) == 1 else list(self.teachers)

    def cache_teacher(self, x, y=None, sample_weight=None, batch_size=32, shuffle=True, seed=None, path=None):
        """Runs the teacher(s) once over the data; fit on the result never runs them again.

        The teacher's logits (and the features `feature_losses` name: call `compile` first) are stored with each
        example. Randomly augmented data or students are refused: only a live teacher sees the student's view.

        Args:
          x: inputs as an array, or a deterministic batched `tf.data.Dataset` of `(x, y[, sample_weight])`.
          y: labels, with array inputs.
          sample_weight: per-example weights, with array inputs.
          batch_size: batch size of the returned dataset.
          shuffle: reshuffle the examples every epoch (as `fit` does for arrays).
          seed: the shuffling seed.
          path: a directory to keep the cache in, reused by later sessions for the same teachers and data.

        Returns:
          A `tf.data.Dataset` for `fit`, `evaluate` or `validation_data`.

        Raises:
          ValueError: labels are missing or lengths differ; the data or student augments
            at random; `path` holds a cache of other teachers or data, or something else.

        Examples:
          >>> distiller.compile(optimizer="adam", alpha=0.1, temperature=10)
          >>> cached = distiller.cache_teacher(x_train, y_train, batch_size=64)
          >>> distiller.fit(cached, epochs=10)
        """
        cache.check_student_does_not_augment(self.student)
        return cache.build(self._run_teachers, self.teachers, x, y, sample_weight, batch_size, shuffle, seed, path)

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
        trackers = [self._total_loss_tracker, self._student_loss_tracker, self._distillation_loss_tracker]
        trackers += list(self._term_trackers.values())
        return trackers + self._compiled_metrics()

    def _compiled_metrics(self) -> list:
        """The metrics `compile(metrics=...)` made, as this engine's Keras keeps them."""
        raise NotImplementedError

    def _update_compiled_metrics(self, y, y_pred, sample_weight):
        raise NotImplementedError

    def _metric_results(self) -> dict:
        """Every metric's result by name, what a step returns."""
        raise NotImplementedError

    def _scaled_loss(self, loss):
        """The loss the gradient is taken of (a mixed-precision optimizer scales it), inside the tape."""
        return loss

    def _apply_gradients(self, tape, loss):
        """One optimizer step on the trainable weights, from `loss` as `_scaled_loss` returned it."""
        raise NotImplementedError

    @property
    def trainable_weights(self):
        adapters = [weight for adapter in self._adapters.values() for weight in adapter.trainable_weights]
        return self.student.trainable_weights + adapters

    @property
    def non_trainable_weights(self):
        return self.student.non_trainable_weights + [weight for model in self.teachers for weight in model.weights]

    def call(self, inputs, training=None):
        return self.student(inputs, training=training)

    def train_step(self, data):
        x, y, sample_weight = self.keras.utils.unpack_x_y_sample_weight(data)
        # Outside the tape: no gradient reaches the teacher and none is recorded for it.
        x, teacher = self._teacher_outputs(x)
        with tf.GradientTape() as tape:
            batch = self._batch_with_student(x, y, sample_weight, teacher, training=True)
            terms, loss = self._compute_losses(batch)
            # Gradients are summed across replicas, so each replica contributes its share.
            replicas = tf.distribute.get_strategy().num_replicas_in_sync
            loss_to_minimize = self._scaled_loss(loss / replicas)
        self._apply_gradients(tape, loss_to_minimize)
        return self._update_metrics(batch, terms, loss)

    def test_step(self, data):
        x, y, sample_weight = self.keras.utils.unpack_x_y_sample_weight(data)
        x, teacher = self._teacher_outputs(x)
        batch = self._batch_with_student(x, y, sample_weight, teacher, training=False)
        terms, loss = self._compute_losses(batch)
        return self._update_metrics(batch, terms, loss)

    def _run_teachers(self, x):
        """The teachers in inference mode: `(list of logits, dict of hinted layer outputs)`."""
        if self._teacher_forward_model is None:
            return [model(x, training=False) for model in self.teachers], {}
        outputs = self._teacher_forward_model(x, training=False)
        return [outputs[0]], dict(zip(self._teacher_feature_layers, outputs[1:]))

    def _teacher_outputs(self, x):
        """`(inputs, (fused teacher logits, teacher features))`, from the cache or a live forward pass."""
        if cache.is_cached(x):
            x, logits, features = cache.split(x)
            self._check_cache_matches(len(logits), features)
        else:
            logits, features = self._run_teachers(x)
        kind = self._task.kind
        logits = [losses.as_logits(values, kind, probabilities) for values, probabilities in
                  zip(logits, self._teacher_probabilities)]  # fmt: skip
        return x, (losses.fuse_teachers(logits, self._teacher_weights, self._temperature, kind), features)

    def _check_cache_matches(self, teacher_count, features):
        missing = [term.teacher_layer for term in self._feature_losses if term.teacher_layer not in features]
        if teacher_count != len(self.teachers) or missing:
            raise ValueError(
                f"This cached dataset holds the logits of {teacher_count} teacher(s) and the teacher layers "
                f"{sorted(features)}, but this Distiller has {len(self.teachers)} teacher(s) and its feature "
                f"losses read {sorted(term.teacher_layer for term in self._feature_losses)}. Make the cache with "
                "this Distiller's cache_teacher, after compile(feature_losses=...)."
            )

    def _batch_with_student(self, x, y, sample_weight, teacher, training):
        """Runs the student and gathers everything the loss terms read."""
        if self._student_forward_model is None:
            student_logits, student_features = self.student(x, training=training), {}
        else:
            outputs = self._student_forward_model(x, training=training)
            student_logits, student_features = outputs[0], dict(zip(self._student_feature_layers, outputs[1:]))
        teacher_logits, teacher_features = teacher
        return DistillationBatch(
            x, y, sample_weight, student_logits, teacher_logits, self._temperature, student_features, teacher_features
        )

    def _compute_losses(self, batch):
        """Returns `(dict of named loss terms, total loss)`."""
        teacher_logits, student_logits = batch.teacher_logits, batch.student_logits
        y, sample_weight = batch.y, batch.sample_weight
        if teacher_logits.shape[-1] != student_logits.shape[-1]:
            raise ValueError(
                f"The teacher outputs {teacher_logits.shape[-1]} values per example but the student "
                f"outputs {student_logits.shape[-1]}; distillation needs the same classes in both."
            )
        if y is None:
            raise ValueError("Distiller needs labels: call fit(x, y) or use a dataset of (x, y) pairs.")
        task = self._task
        student_losses = losses.per_example(self.student_loss_fn, y, student_logits)
        distillation_losses = losses.distillation_per_example(
            self.distillation_loss_fn,
            teacher_logits,
            losses.as_logits(student_logits, task.kind, probabilities=not task.logits),
            self._temperature,
            labels=y,
            kind=task.kind,
        )
        terms = {
            "student_loss": _weighted_mean(student_losses, sample_weight),
            "distillation_loss": _weighted_mean(distillation_losses, sample_weight),
        }
        loss = self._alpha * terms["student_loss"] + (1.0 - self._alpha) * terms["distillation_loss"]
        for term in self._feature_losses:
            student_feature = batch.student_features[term.student_layer]
            if term.name in self._adapters:
                student_feature = self._adapters[term.name](student_feature)
            values = term.per_example(student_feature, batch.teacher_features[term.teacher_layer])
            terms[term.name] = _weighted_mean(values, sample_weight)
            loss += term.weight * terms[term.name]
        for name, fn in self._extra_losses.items():
            terms[name] = _weighted_mean(tf.cast(fn(batch), tf.float32), sample_weight)
            loss += terms[name]
        if self.student.losses:
            loss += tf.add_n([tf.cast(extra, tf.float32) for extra in self.student.losses])
        return terms, loss

    def _update_metrics(self, batch, terms, loss):
        self._total_loss_tracker.update_state(loss)
        self._student_loss_tracker.update_state(terms["student_loss"])
        self._distillation_loss_tracker.update_state(terms["distillation_loss"])
        for name, tracker in self._term_trackers.items():
            tracker.update_state(terms[name])
        self._update_compiled_metrics(batch.y, batch.student_logits, batch.sample_weight)
        return self._metric_results()


def _weighted_mean(values, sample_weight):
    if sample_weight is None or values.shape.rank == 0:
        return tf.reduce_mean(values)
    weights = tf.reshape(tf.cast(sample_weight, tf.float32), tf.shape(values))
    # As Keras's "sum over batch size": weighted sum divided by the number of examples.
    return tf.reduce_sum(values * weights) / tf.cast(tf.size(values), tf.float32)


def _check_output_shapes(student, teacher, teacher_name):
    # Subclassed models have no static outputs; their shapes are checked at the first step.
    for name, model in ((teacher_name, teacher), ("student", student)):
        if len(graph_outputs(model)) > 1:
            raise ValueError(f"`{name}` has {len(model.outputs)} outputs; Distiller needs one output of logits.")
    if not (graph_outputs(teacher) and graph_outputs(student)):
        return
    teacher_shape, student_shape = tuple(teacher.outputs[0].shape[1:]), tuple(student.outputs[0].shape[1:])
    if teacher_shape != student_shape:
        raise ValueError(
            f"The {teacher_name}'s outputs have shape {teacher_shape} but the student's have shape "
            f"{student_shape} (batch left out); they must be equal, one logit per class in both."
        )


def _normalized_teacher_weights(weights, count):
    if weights is None:
        return [1.0 / count] * count
    weights = list(weights)
    if len(weights) != count:
        raise ValueError(f"`teacher_weights` has {len(weights)} entries for {count} teachers; give one per teacher.")
    for index, weight in enumerate(weights):
        check_number(f"teacher_weights[{index}]", weight, low=0)
    total = float(sum(weights))
    if total <= 0:
        raise ValueError(f"`teacher_weights` must not all be zero. Received: {weights}")
    return [float(weight) / total for weight in weights]


def _checked_feature_losses(feature_losses, teacher_count):
    feature_losses = list(feature_losses or [])
    for term in feature_losses:
        if not isinstance(term, FeatureLoss):
            raise TypeError(
                "`feature_losses` must be a list of tfc.distill.FeatureLoss (Hint, AttentionTransfer, or "
                f"FeatureLoss(student_layer, teacher_layer, fn=...)). Received: {term!r}"
            )
    if feature_losses and teacher_count != 1:
        raise ValueError(
            f"`feature_losses` need one teacher to take layers from; this Distiller has {teacher_count}. "
            "Distill features from one teacher, or the ensemble's soft targets without feature losses."
        )
    return feature_losses


def _checked_extra_losses(extra_losses):
    if extra_losses is None:
        return {}
    if callable(extra_losses):
        extra_losses = {getattr(extra_losses, "__name__", "extra_loss"): extra_losses}
    if not isinstance(extra_losses, dict) or not all(callable(fn) for fn in extra_losses.values()):
        raise TypeError(
            "`extra_losses` must be a function or a dict from name to function, each called as fn(batch). "
            f"Received: {extra_losses!r}"
        )
    return {("extra_loss" if name == "<lambda>" else name): fn for name, fn in extra_losses.items()}


def _check_unique_names(names):
    reserved = {"loss", "student_loss", "distillation_loss"}
    clashes = sorted({name for name in names if name in reserved or names.count(name) > 1})
    if clashes:
        raise ValueError(
            f"Loss terms are logged by name, and {clashes} would be logged twice. "
            "Give each feature loss or extra loss its own `name`."
        )


def _unique(names):
    return list(dict.fromkeys(names))


def _with_layer_outputs(model, role, layer_names, keras):
    """A model sharing `model`'s layers that outputs its logits followed by the named layers' outputs."""
    if not is_graph_model(model) or not graph_outputs(model):
        raise ValueError(
            f"Feature losses read layers inside the {role}, which needs a functional or Sequential model "
            f"built with an Input; {model.name!r} is a subclassed or unbuilt model."
        )
    outputs = []
    for name in layer_names:
        try:
            layer = model.get_layer(name)
        except ValueError:
            names = [layer.name for layer in model.layers]
            raise ValueError(f"The {role} has no layer named {name!r}. Its layers: {names}") from None
        if len(inbound_nodes(layer)) != 1:
            raise ValueError(
                f"The {role}'s layer {name!r} is used {len(inbound_nodes(layer))} times, so its output is ambiguous; "
                "name a layer that is called once."
            )
        outputs.append(layer.output)
    return keras.Model(model.inputs, [model.outputs[0], *outputs], name=f"{model.name}_with_features")
