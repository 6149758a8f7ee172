"""The models a recipe names: a built-in model, a model file, or a Keras object, checked against the data."""

from tfcompress import _model_files, models
from tfcompress._checks import check_that
from tfcompress._choices import BUILTIN_MODELS
from tfcompress._graph import clone_with_weights
from tfcompress._keras3_bridge import from_keras3
from tfcompress._model_guards import ensure_graph_model, is_keras3_model

REFERENCE = f"a model file or folder (.keras, .h5, SavedModel), a Keras model, or one of {list(BUILTIN_MODELS)}"


def check_reference(name, value) -> None:
    """A recipe check: `value` names a model (a non-empty path or built-in name) or is one.

    Example:
      >>> check_reference("model", "builtin:student")
    """
    ok = isinstance(value, str) and value.strip() != "" or (hasattr(value, "layers") and hasattr(value, "predict"))
    check_that(ok, name, value, REFERENCE)


def is_builtin(reference) -> bool:
    """Whether a recipe's model reference names a built-in model ("builtin:...")."""
    return isinstance(reference, str) and reference.startswith("builtin:")


def load_model(context, reference, key: str):
    """A Keras 2 model the pipeline may train: a built-in CNN, a loaded file, or a copy of an object.

    A model file's code-carrying layers are refused unless the recipe trusts its files
    (`trust_model_code`); a Keras model passed in is copied, never changed; a Keras 3
    model is rebuilt as Keras 2.

    Args:
      context: the run's `Context` (for the data's shape and the recipe).
      reference: what the recipe names under `key`.
      key: the recipe key, for messages ("model", "stages.distill.teacher").

    Returns:
      The model, whose input matches the data's images and whose output has a score per class.

    Raises:
      FileNotFoundError: no file at the path.
      ValueError: the file cannot be loaded or carries code, or the model does not fit the data.

    Example:
      >>> teacher = load_model(context, "teacher.keras", "stages.distill.teacher")
    """
    input_shape = tuple(context.x_train.shape[1:])
    classes = context.classes
    if is_builtin(reference):
        return models.builtin(reference, input_shape, classes)
    if isinstance(reference, str):
        model = _model_files.load(reference, trust_code=context.recipe["trust_model_code"], argument=key)
    elif is_keras3_model(reference):
        model = from_keras3(reference)
    else:
        model = clone_with_weights(ensure_graph_model(reference, key))
    ensure_graph_model(model, key)
    if tuple(model.input_shape[1:]) != input_shape:
        raise ValueError(
            f"`{key}` takes inputs of shape {model.input_shape[1:]}, but the data's images are {input_shape}."
        )
    if model.output_shape[-1] != classes:
        raise ValueError(f"`{key}` outputs {model.output_shape[-1]} scores, but the data has {classes} classes.")
    return model
