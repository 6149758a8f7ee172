"""Export: write `.tflite` files (full-integer int8, float32, float16, dynamic-range, int16x8) and verify them.

Example:
  >>> result = tfc.export.to_tflite(model, "model.tflite", mode="int8", representative_data=x[:300])
  >>> tfc.export.verify("model.tflite", model, x_test, y_test)
  >>> tfc.export.inspect("model.tflite")["undelegated_ops"]
  >>> tfc.export.benchmark("model.tflite")["latency"]
"""

from tfcompress.export.benchmark import benchmark
from tfcompress.export.fallback import layer_errors
from tfcompress.export.inspection import inspect
from tfcompress.export.litert import LiteRTModel
from tfcompress.export.tflite import ExportResult, to_tflite
from tfcompress.export.verify import verify

__all__ = [
    "ExportResult",
    "LiteRTModel",
    "benchmark",
    "inspect",
    "layer_errors",
    "to_tflite",
    "verify",
]
