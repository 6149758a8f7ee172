"""tfcompress: make Keras models small and fast enough for phones.

Distill a student from a teacher, prune it, train it quantization-aware, and export a
verified full-integer `.tflite` for Android. Importing tfcompress never changes which Keras
`tf.keras` is: its Keras 2 engine (TF-MOT's) names `tf_keras` itself, in any import order.

Examples:
  >>> import tfcompress as tfc
  >>> from tfcompress import keras
  >>> (x_train, y_train), (x_test, y_test) = tfc.data.load_digits()
"""

import importlib
import sys

from tfcompress._version import __version__

__all__ = [
    "Distiller",
    "__version__",
    "data",
    "demo",
    "distill",
    "export",
    "from_keras3",
    "keras",
    "litert",
    "models",
    "pipeline",
    "prune",
    "quantize",
    "recipe",
    "report",
]

_SUBPACKAGES = (
    "data", "demo", "distill", "export", "litert", "models", "pipeline", "prune", "quantize", "recipe", "report",
)  # fmt: skip


def __getattr__(name):
    # TensorFlow loads on first use, so `tfcompress --help` answers at once.
    if name in _SUBPACKAGES:
        return importlib.import_module(f"tfcompress.{name}")
    if name == "keras":
        return importlib.import_module("tfcompress._keras").keras
    if name == "from_keras3":
        return importlib.import_module("tfcompress._keras3_bridge").from_keras3
    if name == "Distiller":
        return importlib.import_module("tfcompress.distill").Distiller
    raise AttributeError(f"module 'tfcompress' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(__all__))


if "tensorflow" in sys.modules:
    # TensorFlow is loaded already, so the engines cost little now, and their classes register with Keras 3:
    # a pruning or QAT model saved as .keras loads with keras.models.load_model right after `import tfcompress`.
    # Imported before TensorFlow (as the CLI is), tfcompress loads them on first use instead.
    for _subpackage in ("distill", "prune", "quantize"):
        importlib.import_module(f"tfcompress.{_subpackage}")
