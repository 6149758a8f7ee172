"""The one Keras of tfcompress: Keras 2 (`tf_keras`), selected before TensorFlow loads any Keras.

TF-MOT only works with Keras 2. TensorFlow picks the Keras behind `tf.keras` the first
time `tf.keras` is touched, reading `TF_USE_LEGACY_KERAS` at that moment, so importing
this module sets it without importing TensorFlow (the package's `__init__` does so
first). `keras` and `tf` load TensorFlow on first use, and check that tf-keras matches it:

    from tfcompress._keras import keras, tf
"""

import os
import sys
import types

# Tested together: TensorFlow 2.21, tf-keras 2.21, TF-MOT 0.8.1, ai-edge-litert 2.3.0.
_MIN_TENSORFLOW = (2, 16)


def _tf_keras_already_bound_to_keras3() -> bool:
    """Whether TensorFlow was imported and `tf.keras` already resolved to Keras 3."""
    tensorflow = sys.modules.get("tensorflow")
    if tensorflow is None:
        return False
    bound = tensorflow.__dict__.get("keras")
    if not isinstance(bound, types.ModuleType):
        return False
    # An unresolved lazy loader still honours the environment variable set below.
    if bound.__dict__.get("_tfll_initialized") is False:
        return False
    return not bound.__dict__.get("__name__", "").startswith("tf_keras")


if _tf_keras_already_bound_to_keras3():
    raise ImportError(
        "TensorFlow was imported with Keras 3 active before tfcompress, so `tf.keras` is "
        "Keras 3. tfcompress and TF-MOT need Keras 2 (tf_keras). Fix: import tfcompress "
        "before using tf.keras, or set os.environ['TF_USE_LEGACY_KERAS'] = '1' before "
        "importing tensorflow. In Colab or Jupyter, restart the runtime first."
    )
os.environ["TF_USE_LEGACY_KERAS"] = "1"


def __getattr__(name):
    # TensorFlow loads on first use of `keras` or `tf`, so `tfcompress --help` answers at once.
    if name not in ("keras", "tf"):
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import tensorflow as tf

    try:
        import tf_keras as keras
    except ImportError as error:
        raise ImportError(
            f"tfcompress needs the tf-keras package (Keras 2), which was not found. "
            f"Install the release that matches TensorFlow {tf.__version__}: "
            f"pip install 'tf-keras~={_release(tf.__version__)}.0'"
        ) from error
    check_versions(tf.__version__, keras.__version__)
    globals().update(keras=keras, tf=tf)
    return globals()[name]


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
