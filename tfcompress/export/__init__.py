"""Export: write `.tflite` files (full-integer int8, float32, float16, dynamic-range, int16x8) and verify them.

Example:
  >>> result = tfc.export.to_tflite(model, "model.tflite", mode="int8", representative_data=x[:300])
  >>> tfc.export.to_tflite(model, "model.tflite", representative_data=x[:300],
  ...                      validation_data=(x_val, y_val), max_accuracy_drop=0.005)
  >>> tfc.export.verify("model.tflite", model, x_test, y_test)
  >>> tfc.export.inspect("model.tflite")["undelegated_ops"]
  >>> tfc.export.benchmark("model.tflite")["latency"]
  >>> print(tfc.export.format_comparison(tfc.export.compare(["float32.tflite", "int8.tflite"])))
  >>> tfc.export.android_bundle("model.tflite", "android", labels=class_names)
"""

from tfcompress.export.accuracy_control import AccuracyTargetError
from tfcompress.export.android import android_bundle, read_metadata
from tfcompress.export.comparison import compare, format_comparison
from tfcompress.export.fallback import layer_errors
from tfcompress.export.inspection import inspect_tflite as inspect  # public as tfc.export.inspect
from tfcompress.export.latency import benchmark
from tfcompress.export.litert import LiteRTModel
from tfcompress.export.machine import cpu
from tfcompress.export.tflite import ExportResult, to_tflite
from tfcompress.export.verification import verify

__all__ = [
    "AccuracyTargetError",
    "ExportResult",
    "LiteRTModel",
    "android_bundle",
    "benchmark",
    "compare",
    "cpu",
    "format_comparison",
    "inspect",
    "layer_errors",
    "read_metadata",
    "to_tflite",
    "verify",
]
