"""Export: write `.tflite` files (full-integer int8, float32, float16, dynamic-range, int16x8) and package them.

What runs, checks, inspects and times the files is `tfc.litert`.

Examples:
  >>> result = tfc.export.to_tflite(model, "model.tflite", mode="int8", representative_data=x[:300])
  >>> tfc.export.with_accuracy_control(model, "model.tflite", representative_data=x[:300],
  ...                                  validation_data=(x_val, y_val), max_accuracy_drop=0.005)
  >>> tfc.export.android_bundle("model.tflite", "android", labels=class_names)
"""

from tfcompress.export import deprecated
from tfcompress.export.accuracy_control import AccuracyTargetError
from tfcompress.export.android import android_bundle, read_metadata
from tfcompress.export.deprecated import compare, format_comparison  # noqa: F401  # deprecated, not in __all__
from tfcompress.export.quantization_errors import layer_errors
from tfcompress.export.tflite import ExportResult, to_tflite, with_accuracy_control

__all__ = [
    "AccuracyTargetError",
    "ExportResult",
    "android_bundle",
    "layer_errors",
    "read_metadata",
    "to_tflite",
    "with_accuracy_control",
]


def __getattr__(name):
    found = deprecated.moved(name)
    if found is None:
        raise AttributeError(f"module 'tfcompress.export' has no attribute {name!r}")
    return found
