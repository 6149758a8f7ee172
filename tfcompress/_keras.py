"""The Keras 2 engine's Keras: `tf_keras`, imported by name, and TF-MOT, loaded without touching the user's Keras.

TF-MOT only works with Keras 2, and tfcompress's Keras 2 engine imports `tf_keras` by
name, so it never needs `tf.keras` to be Keras 2. Whatever `tf.keras` is in the user's
process (Keras 3 by default on TensorFlow >= 2.16, or Keras 2 under
`TF_USE_LEGACY_KERAS=1`) it stays. TF-MOT's import sets `TF_USE_LEGACY_KERAS` and then
touches `tf.keras`, which would switch an unresolved `tf.keras` to Keras 2 for the whole
process: `tfmot` resolves it first and puts the variable back. `keras`, `tf` and `tfmot`
load TensorFlow on first use, and check that tf-keras matches it:

    from tfcompress._keras import keras, tf, tfmot
"""

import importlib
import os

# Tested together: TensorFlow 2.21, tf-keras 2.21, TF-MOT 0.8.1, ai-edge-litert 2.3.0.
_MIN_TENSORFLOW = (2, 16)
_SWITCH = "TF_USE_LEGACY_KERAS"


def __getattr__(name):
    # TensorFlow loads on first use, so `tfcompress --help` answers at once.
    loaders = {"keras": _tf_keras, "tf": _tensorflow, "tfmot": _tfmot}
    if name not in loaders:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = loaders[name]()
    globals()[name] = value
    return value


def _tensorflow():
    import tensorflow as tf

    return tf


def _tf_keras():
    tf = _tensorflow()
    try:
        import tf_keras
    except ImportError as error:
        raise ImportError(
            f"tfcompress needs the tf-keras package (Keras 2) for TF-MOT, which was not found. "
            f"Install the release that matches TensorFlow {tf.__version__}: "
            f"pip install 'tf-keras~={_release(tf.__version__)}.0'"
        ) from error
    check_versions(tf.__version__, tf_keras.__version__)
    return tf_keras


def _tfmot():
    tf = _tensorflow()
    _tf_keras()  # the version check, with its fix, before TF-MOT fails its own way
    before = os.environ.get(_SWITCH)
    getattr(tf.keras, "__name__", None)  # resolves `tf.keras` as the user's environment says, once for the process
    try:
        tfmot = importlib.import_module("tensorflow_model_optimization")
    finally:
        if before is None:
            os.environ.pop(_SWITCH, None)
        else:
            os.environ[_SWITCH] = before
    return tfmot


def tfmot_module(path: str):
    """A TF-MOT module its public API does not export (`python.core...`), loaded as `tfmot` loads."""
    __getattr__("tfmot")
    return importlib.import_module(f"tensorflow_model_optimization.{path}")


def _major_minor(version: str) -> tuple:
    return tuple(int(part) for part in version.split(".")[:2])


def _release(version: str) -> str:
    return ".".join(str(part) for part in _major_minor(version))


def check_versions(tensorflow_version: str, tf_keras_version: str) -> None:
    """Raises ImportError if TensorFlow and tf-keras cannot work together."""
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
