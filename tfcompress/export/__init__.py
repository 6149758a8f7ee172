"""Export: write `.tflite` files (float32 or full-integer int8) and verify them in LiteRT.

Example:
  >>> result = tfc.export.to_tflite(model, "model.tflite", mode="int8", representative_data=x[:300])
  >>> tfc.export.verify("model.tflite", model, x_test, y_test)
"""

from tfcompress.export.litert import LiteRTModel
from tfcompress.export.tflite import ExportResult, to_tflite
from tfcompress.export.verify import verify

__all__ = ["ExportResult", "LiteRTModel", "to_tflite", "verify"]
