"""The Keras 3 engine's Keras: the user's own `keras` package, on TensorFlow, and which Keras an object is from.

Keras 3 models (`import keras`, or `tf.keras` on TensorFlow >= 2.16) go through the Keras 3
engine and come back in Keras 3. It needs TensorFlow's backend: the TFLite converter turns
TensorFlow graphs into `.tflite` files. `keras` loads on first use:

    from tfcompress._keras3 import keras
"""

import importlib

_MIN_KERAS = (3, 0)


def __getattr__(name):
    if name != "keras":
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    keras = importlib.import_module("keras")
    check_keras(keras.__version__, keras.backend.backend())
    globals()["keras"] = keras
    return keras


def check_keras(version: str, backend: str) -> None:
    """Raises ImportError if this Keras cannot be tfcompress's Keras 3 engine."""
    if tuple(int(part) for part in version.split(".")[:2]) < _MIN_KERAS:
        raise ImportError(
            f"tfcompress's Keras 3 engine needs Keras 3; found Keras {version} under the name `keras`. "
            "Upgrade it (pip install -U 'keras>=3'), or build your models with tf_keras (from tfcompress import keras)."
        )
    if backend != "tensorflow":
        raise ImportError(
            f"tfcompress exports through TensorFlow's TFLite converter, so Keras 3 must run on TensorFlow; its backend "
            f"is {backend!r}. Set os.environ['KERAS_BACKEND'] = 'tensorflow' before importing keras."
        )


def is_keras3_object(obj) -> bool:
    """Whether `obj` is an instance of a Keras 3 class (a model, a layer, a loss, an optimizer)."""
    return any(cls.__module__.split(".")[0] == "keras" for cls in type(obj).__mro__)


def is_keras3_model(obj) -> bool:
    """Whether `obj` is a Keras 3 model (from `import keras`, or `tf.keras` on TensorFlow >= 2.16)."""
    return is_keras3_object(obj) and hasattr(obj, "layers")


def keras_of(obj):
    """The Keras module `obj` (a model, layer, loss or optimizer) belongs to: Keras 3's `keras`, or tf_keras."""
    if is_keras3_object(obj):
        return __getattr__("keras")
    return importlib.import_module("tfcompress._keras").keras


def seed_every_keras(seed: int) -> None:
    """Seeds Python, NumPy, TensorFlow and both Kerases' generators (Keras 3 draws dropout masks from its own)."""
    importlib.import_module("keras").utils.set_random_seed(seed)
    importlib.import_module("tfcompress._keras").keras.utils.set_random_seed(seed)
