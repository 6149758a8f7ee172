"""The one Keras of tfcompress: Keras 2 (`tf_keras`), and checks that models use it."""

# The package's __init__ has already selected Keras 2, before TensorFlow loads here.
import numpy as np
import tensorflow as tf

# Tested together: TensorFlow 2.21, tf-keras 2.21, TF-MOT 0.8.1, ai-edge-litert 2.3.0.
_MIN_TENSORFLOW = (2, 16)


def _major_minor(version: str) -> tuple:
    return tuple(int(part) for part in version.split(".")[:2])


def _release(version: str) -> str:
    return ".".join(str(part) for part in _major_minor(version))


try:
    import tf_keras as keras
except ImportError as error:
    raise ImportError(
        f"tfcompress needs the tf-keras package (Keras 2), which was not found. "
        f"Install the release that matches TensorFlow {tf.__version__}: "
        f"pip install 'tf-keras~={_release(tf.__version__)}.0'"
    ) from error


def check_versions(tensorflow_version: str, tf_keras_version: str) -> None:
    """Raises ImportError if TensorFlow and tf-keras cannot work together.

    Args:
      tensorflow_version: `tf.__version__`, for example "2.21.0".
      tf_keras_version: `tf_keras.__version__`, for example "2.21.0".

    Raises:
      ImportError: TensorFlow is older than 2.16, or tf-keras's minor version is not
        TensorFlow's.

    Example:
      >>> check_versions("2.21.0", "2.21.0")
    """
    tf_release = _major_minor(tensorflow_version)
    if tf_release < _MIN_TENSORFLOW:
        raise ImportError(
            f"tfcompress needs TensorFlow >= 2.16. Found TensorFlow {tensorflow_version}. "
            "Upgrade it: pip install -U 'tensorflow>=2.16'"
        )
    if _major_minor(tf_keras_version) != tf_release:
        raise ImportError(
            f"tf-keras {tf_keras_version} does not match TensorFlow {tensorflow_version}: "
            "their minor versions must be equal. Keep your TensorFlow and install the "
            f"matching tf-keras: pip install 'tf-keras~={_release(tensorflow_version)}.0'"
        )


check_versions(tf.__version__, keras.__version__)


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


def clone_with_weights(model):
    """Returns an independent copy of a Sequential or functional model, weights included.

    TF-MOT's wrappers share layer objects with the model they wrap; working on a copy
    keeps the user's model untouched.

    Args:
      model: a built Sequential or functional Keras 2 model.

    Returns:
      A new model with new layers holding copies of `model`'s weights.

    Example:
      >>> copy = clone_with_weights(model)
    """
    copy = keras.models.clone_model(model)
    copy.set_weights(model.get_weights())
    return copy


def outputs_logits(model) -> bool:
    """Whether a classifier's output is logits (True) or softmax probabilities (False).

    Args:
      model: a Keras 2 model whose last layer makes its output.

    Returns:
      False when the last layer is a Softmax or has a softmax activation, else True.

    Example:
      >>> loss = keras.losses.SparseCategoricalCrossentropy(from_logits=outputs_logits(model))
    """
    last = model.layers[-1]
    activation = getattr(last, "activation", None)
    return not (isinstance(last, keras.layers.Softmax) or getattr(activation, "__name__", "") == "softmax")


def accuracy(model, x, y) -> float:
    """Top-1 accuracy of a Keras classifier on arrays.

    Args:
      model: a Keras 2 classifier (one score per class).
      x: inputs.
      y: integer labels, one per example.

    Returns:
      The share of examples whose highest score is their label.

    Example:
      >>> accuracy(model, x_test, y_test)
    """
    predictions = model.predict(x, batch_size=256, verbose=0)
    return float(np.mean(np.argmax(predictions, axis=-1) == np.asarray(y).reshape(-1)))
