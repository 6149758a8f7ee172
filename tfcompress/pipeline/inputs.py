"""The models a recipe names (a built-in model, a model file, or a Keras object), and their task on the data."""

import numpy as np

from tfcompress import _model_files, _tasks, models
from tfcompress._checks import check_that
from tfcompress._choices import BUILTIN_MODELS
from tfcompress._keras3 import keras_of
from tfcompress._model_guards import graph_model
from tfcompress._models import output_names

REFERENCE = f"a model file or folder (.keras, .h5, SavedModel), a Keras model, or one of {list(BUILTIN_MODELS)}"


def check_reference(name, value) -> None:
    """A recipe check: `value` names a model (a non-empty path or built-in name) or is one."""
    ok = isinstance(value, str) and value.strip() != "" or (hasattr(value, "layers") and hasattr(value, "predict"))
    check_that(ok, name, value, REFERENCE)


def is_builtin(reference) -> bool:
    """Whether a recipe's model reference names a built-in model ("builtin:...")."""
    return isinstance(reference, str) and reference.startswith("builtin:")


def load_model(context, reference, key: str):
    """A model the pipeline may train, in its own Keras: a built-in CNN, a loaded file, or a copy of an object.

    A built-in teacher is built in the Keras of the model it teaches.
    """
    input_shape = tuple(context.x_train.shape[1:])
    if is_builtin(reference):
        keras = keras_of(context.model) if context.model is not None else None
        return models.builtin(reference, input_shape, _builtin_outputs(context), keras=keras)
    if isinstance(reference, str):
        model = _model_files.load(reference, trust_code=context.recipe["trust_model_code"], argument=key)
    else:
        model = _copy(graph_model(reference, key))
    model = graph_model(model, key)
    shape = tuple(model.inputs[0].shape[1:])
    if shape != input_shape:
        raise ValueError(f"`{key}` takes inputs of shape {shape}, but the data's images are {input_shape}.")
    return model


def _copy(model):
    """An independent copy of a model object handed in a recipe, with what it was compiled to train."""
    keras = keras_of(model)
    copy = keras.models.clone_model(model)
    copy.set_weights(model.get_weights())
    if getattr(model, "loss", None):  # what it was compiled to train says its task
        copy.__dict__["_task_loss"] = model.loss
    return copy


def task_of(context, model, key: str):
    """The task of `model`'s output on the recipe's data, with the labels checked for it."""
    if len(model.outputs) != 1:
        raise ValueError(
            f"`{key}` has {len(model.outputs)} outputs {output_names(model)}; the pipeline trains and measures "
            "models of one output. Compress it with the Python API (tfc.prune, tfc.quantize, tfc.export)."
        )
    try:
        task = _tasks.infer(model, task=context.recipe["task"], labels=context.y_train)
        shape = model.outputs[0].shape[1:]
        labels = [task.labels(y, shape, argument=f"data ({part} labels)")
                  for y, part in ((context.y_train, "training"), (context.y_test, "test"))]  # fmt: skip
    except ValueError as error:
        raise ValueError(f"`{key}` and the recipe's data: {error}") from None
    return (task, *labels)


def _builtin_outputs(context) -> int:
    """How many values a built-in model outputs: a teacher as many as its student, else what the labels need."""
    if context.model is not None:  # the task is its first output's (`task_of`)
        return int(context.model.outputs[0].shape[-1])
    y, task = context.y_train, context.recipe["task"]
    if task == "binary":
        return 1
    if y.ndim > 1:  # one-hot or multi-hot rows, or several values
        return int(np.prod(y.shape[1:]))
    whole = np.all(y == np.round(y))
    if task == "regression" or not whole:
        return 1
    return int(max(context.y_train.max(), context.y_test.max())) + 1
