"""Checks that a model handed to tfcompress is one its stages can work on: Keras 2, Sequential or functional, built.

A Keras 3 model (what `tf.keras` is for TensorFlow >= 2.16 users) is rebuilt as Keras 2
with `from_keras3`, and a warning says so once per model.
"""

import warnings
import weakref

from tfcompress._keras import keras
from tfcompress._keras3 import is_keras3_model
from tfcompress._keras3_bridge import from_keras3
from tfcompress._models import is_graph_model

# The Keras 3 models a warning has named already.
_ANNOUNCED = weakref.WeakSet()


def ensure_keras2_model(model, argument: str = "model"):
    """The Keras 2 (tf_keras) model to work on: `model` itself, or a Keras 3 model rebuilt as Keras 2."""
    if isinstance(model, keras.Model):
        return model
    if is_keras3_model(model):
        rebuilt = from_keras3(model)
        _announce(model, argument)
        return rebuilt
    raise TypeError(
        f"`{argument}` must be a Keras model (tfcompress.keras.Model). "
        f"Received: {argument} of type {type(model).__name__}"
    )


def _announce(model, argument):
    try:
        if model in _ANNOUNCED:
            return
        _ANNOUNCED.add(model)
    except TypeError:  # not weakly referable: say it every time
        pass
    warnings.warn(
        f"`{argument}` ({model.name!r}) is a Keras 3 model; tfcompress and TF-MOT work in Keras 2 (tf_keras), so it "
        "was rebuilt with tfc.from_keras3 (the same layers, names and weights; its outputs checked equal) and left "
        f"as it is. What tfcompress returns is Keras 2. To convert once: {argument} = tfc.from_keras3({argument}).",
        stacklevel=3,
    )


def keras2_to_read(model, argument: str = "model"):
    """A built graph Keras 2 model to read (measure, plan) `model` through: itself, or a Keras 3 model's rebuild.

    Nothing built from the rebuild goes back to the user, so no warning says what `ensure_keras2_model` says.
    """
    if is_keras3_model(model):
        model = from_keras3(graph_model(model, argument))
    return ensure_graph_model(model, argument)


def any_keras_model(model, argument: str = "model"):
    """`model` if it is a Keras 3 model; else the Keras 2 model `ensure_keras2_model` gives."""
    return model if is_keras3_model(model) else ensure_keras2_model(model, argument)


def graph_model(model, argument: str = "model"):
    """`model` if it is a built Sequential or functional model of either Keras (a Keras 3 one stays Keras 3)."""
    if not is_keras3_model(model):
        return ensure_graph_model(model, argument)
    if not is_graph_model(model):
        raise ValueError(
            f"`{argument}` is a subclassed model ({type(model).__name__}); this step needs a Sequential or functional "
            "model, whose layers it can see. Rebuild it with keras.Sequential or keras.Model(inputs, outputs)."
        )
    if not model.built:
        raise ValueError(
            f"`{argument}` is not built: it has no weights yet. Start it with an input, e.g. "
            "keras.Sequential([keras.Input(shape=(28, 28, 1)), ...])."
        )
    return model


def ensure_graph_model(model, argument: str = "model"):
    """Returns `model` if it is a built Sequential or functional Keras 2 model."""
    model = ensure_keras2_model(model, argument)
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
