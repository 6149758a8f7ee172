"""Selects Keras 2 (`tf_keras`) for TensorFlow, before TensorFlow loads any Keras.

TF-MOT only works with Keras 2. TensorFlow picks the Keras behind `tf.keras` the first
time `tf.keras` is touched, reading `TF_USE_LEGACY_KERAS` at that moment, so this runs
when tfcompress is imported, without importing TensorFlow itself.
"""

import os
import sys
import types


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
