"""The `distill` stage: train the model as a student of a teacher, with soft targets at a temperature."""

import time

from tfcompress import _tasks, distill
from tfcompress._choices import BUILTIN_MODELS
from tfcompress._keras3 import keras_of
from tfcompress.pipeline import inputs
from tfcompress.pipeline.schema import Key, RecipeError, count, number, positive, positive_integer
from tfcompress.pipeline.stage import Stage

TEACHER_ROW = "teacher"


def _check(recipe):
    settings = recipe["stages"]["distill"]
    teacher = settings["teacher"]
    if inputs.is_builtin(teacher):
        if teacher not in BUILTIN_MODELS:
            raise RecipeError(f"`stages.distill.teacher` {teacher!r} is not one of {list(BUILTIN_MODELS)}.")
        if settings["teacher_epochs"] < 1:
            raise RecipeError("A built-in teacher starts untrained: set `stages.distill.teacher_epochs` >= 1.")


def _load_teacher(context, settings):
    key = "stages.distill.teacher"
    teacher = inputs.load_model(context, settings["teacher"], key)
    try:
        _tasks.infer(teacher, task=context.task.kind)
    except ValueError as error:
        raise ValueError(f"`{key}` cannot teach the model's {context.task.describe()} output: {error}") from None
    shapes = [tuple(model.outputs[0].shape[1:]) for model in (teacher, context.model)]
    if shapes[0] != shapes[1]:
        raise ValueError(
            f"`{key}` outputs shape {shapes[0]}, but the model outputs {shapes[1]}; a teacher and its student answer "
            "the same task in the same shape."
        )
    if keras_of(teacher) is not keras_of(context.model):
        raise ValueError(
            f"`{key}` is a model of {keras_of(teacher).__name__} and the model a model of "
            f"{keras_of(context.model).__name__}; a teacher teaches a student of its own Keras. Save both with one "
            "Keras (a tf_keras file loads in Keras 3 with keras.models.load_model), or name a built-in teacher."
        )
    context.models["teacher"] = teacher


def _distill(context, settings):
    teacher = context.models["teacher"]
    start = time.perf_counter()
    if settings["teacher_epochs"]:
        context.fit(teacher, "teacher", settings["teacher_epochs"], learning_rate=settings["learning_rate"])
    context.record(TEACHER_ROW, teacher, round(time.perf_counter() - start, 2))
    distiller = distill.Distiller(student=context.model, teacher=teacher, task=context.task.kind)
    keras = keras_of(context.model)
    distiller.compile(
        optimizer=keras.optimizers.Adam(settings["learning_rate"]),
        metrics=context.task.metrics(keras),
        alpha=settings["alpha"],
        temperature=settings["temperature"],
    )
    context.fit(distiller, "distill", settings["epochs"])
    return distiller.student


STAGE = Stage(
    name="distill",
    schema={
        "teacher": Key(inputs.check_reference, accepts=inputs.REFERENCE),
        "teacher_epochs": Key(count, 0),
        "epochs": Key(positive_integer, 10),
        "alpha": Key(number(0, 1), 0.1),
        "temperature": Key(positive, 4.0),
        "learning_rate": Key(positive, 1e-3),
    },
    title=lambda s: f"Distilling for {s['epochs']} epochs (alpha {s['alpha']}, T {s['temperature']})",
    run=_distill,
    check=_check,
    prepare=_load_teacher,
    extra_rows=(TEACHER_ROW,),
)
