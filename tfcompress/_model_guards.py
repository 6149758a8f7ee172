"""Checks that a model handed to tfcompress is one its stages can work on: Keras 2, Sequential or functional, built."""

from tfcompress._keras import keras


def is_keras3_model(obj) -> bool:
    """Whether `obj` is a Keras 3 model (from `import keras`), which TF-MOT cannot use.

    Args:
      obj: any object.

    Returns:
      True for a Keras 3 `Model` (Sequential, functional or subclassed).

    Example:
      >>> is_keras3_model(keras3.Sequential([keras3.Input((4,)), keras3.layers.Dense(2)]))
      True
    """
    return _is_keras3_object(obj) and hasattr(obj, "layers")


def _is_keras3_object(obj) -> bool:
    return any(cls.__module__.split(".")[0] == "keras" for cls in type(obj).__mro__)


def ensure_keras2_model(model, argument: str = "model"):
    """Returns `model` if it is a Keras 2 (tf_keras) model, else raises a clear TypeError.

    Args:
      model: the object handed to a tfcompress entry point.
      argument: the argument's name, used in the message.

    Returns:
      `model`, unchanged.

    Raises:
      TypeError: `model` is a Keras 3 model, or not a Keras model at all.

    Example:
      >>> ensure_keras2_model(keras.Sequential([keras.layers.Dense(2)]))
    """
    if isinstance(model, keras.Model):
        return model
    if _is_keras3_object(model):
        raise TypeError(
            f"`{argument}` is a Keras 3 model ({type(model).__module__}."
            f"{type(model).__name__}), but tfcompress and TF-MOT need Keras 2 (tf_keras). "
            f"Rebuild it as Keras 2 with `{argument} = tfc.from_keras3({argument})`, or build it with "
            "`from tfcompress import keras` (keras.Sequential, keras.layers, ...)."
        )
    raise TypeError(
        f"`{argument}` must be a Keras model (tfcompress.keras.Model). "
        f"Received: {argument} of type {type(model).__name__}"
    )


def ensure_graph_model(model, argument: str = "model"):
    """Returns `model` if it is a built Sequential or functional Keras 2 model.

    Args:
      model: the object handed to a tfcompress entry point.
      argument: the argument's name, used in the message.

    Returns:
      `model`, unchanged.

    Raises:
      TypeError: `model` is not a Keras 2 model.
      ValueError: `model` is subclassed, or is not built yet.

    Example:
      >>> ensure_graph_model(keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)]))
    """
    ensure_keras2_model(model, argument)
    if not getattr(model, "_is_graph_network", False) and not isinstance(model, keras.Sequential):
        raise ValueError(
            f"`{argument}` is a subclassed model ({type(model).__name__}); this step needs a "
            "Sequential or functional model, whose layers it can see. Rebuild it with "
            "keras.Sequential or keras.Model(inputs, outputs)."
        )
    if not model.built or model.inputs is None:
        raise ValueError(
            f"`{argument}` is not built: it has no weights yet. Start it with an input, "
            "e.g. keras.Sequential([keras.Input(shape=(28, 28, 1)), ...]), or call "
            f"{argument}.build(input_shape) first."
        )
    return model
