"""LiteRT: run `.tflite` files, check them against their Keras model, inspect and time them.

Examples:
  >>> tfc.litert.verify("model.tflite", model, x_test, y_test)
  >>> tfc.litert.inspect("model.tflite")["undelegated_ops"]
  >>> tfc.litert.benchmark("model.tflite")["latency"]
  >>> print(tfc.litert.format_side_by_side(tfc.litert.time_side_by_side(["float32.tflite", "int8.tflite"])))
"""

from tfcompress.litert.inspection import inspect_tflite as inspect  # public as tfc.litert.inspect
from tfcompress.litert.interpreter import LiteRTModel
from tfcompress.litert.latency import benchmark
from tfcompress.litert.machine import cpu
from tfcompress.litert.side_by_side import format_side_by_side, time_side_by_side
from tfcompress.litert.verification import verify

__all__ = [
    "LiteRTModel",
    "benchmark",
    "cpu",
    "format_side_by_side",
    "inspect",
    "time_side_by_side",
    "verify",
]
