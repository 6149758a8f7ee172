"""One report row per stage: size, sparsity, accuracy and latency of the stage's model."""

import contextlib
import os
import tempfile
import warnings

from tfcompress import export, prune
from tfcompress._classifier import accuracy


class Measure:
    """Measures models on the held-out data, as the report's rows.

    Args:
      x_test: held-out inputs.
      y_test: their integer labels.
      stage_files: row label -> path, where a measured float32 `.tflite` is kept; a row
        without a path is measured on a temporary file.
      overwrite: replace an existing kept file.

    Example:
      >>> measure = Measure(x_test, y_test)
      >>> measure("distill", student, seconds=12.5)["tflite_accuracy"]
    """

    def __init__(self, x_test, y_test, stage_files=None, overwrite: bool = False):
        self._x, self._y = x_test, y_test
        self._stage_files, self._overwrite = stage_files or {}, overwrite

    def __call__(self, label: str, model, seconds: float, file: str = "float32", exported=None) -> dict:
        """The row of one model.

        Args:
          label: the row's `stage`.
          model: the Keras model.
          seconds: how long the stage took.
          file: "float32" (exported as float32 and measured in LiteRT), "keras" (Keras
            figures only), or "exported" (`exported` is its file).
          exported: the `ExportResult` when `file` is "exported".

        Returns:
          `stage`, `seconds`, `parameters`, `nonzero_parameters`, `keras_accuracy`,
          `tflite_bytes`, `gzip_bytes`, `tflite_accuracy`, `top1_agreement`,
          `max_abs_error`, `samples`, `latency_ms` (None where there is no file) and
          `layers` (per-layer sparsity).

        Example:
          >>> measure("qat", model, 30.0, file="keras")
        """
        counts = prune.sparsity(model)
        row = {
            "stage": label,
            "seconds": seconds,
            "parameters": counts["parameters"],
            "nonzero_parameters": counts["nonzero_parameters"],
            "keras_accuracy": accuracy(model, self._x, self._y),
            "tflite_bytes": None,
            "gzip_bytes": None,
            "tflite_accuracy": None,
            "top1_agreement": None,
            "max_abs_error": None,
            "samples": None,
            "latency_ms": None,
            "layers": counts["layers"],
        }
        if file == "exported":
            return self._with_file(row, model, exported)
        if file == "keras":
            return row
        with tempfile.TemporaryDirectory() as folder, _quiet():
            path = self._stage_files.get(label) or os.path.join(folder, "stage.tflite")
            result = export.to_tflite(model, path, mode="float32", overwrite=self._overwrite)
            return self._with_file(row, model, result)

    def _with_file(self, row, model, result):
        check = export.verify(result.path, model, self._x, self._y)
        (timing,) = export.benchmark(result.path, threads=1, xnnpack=True, runs=50, max_seconds=5)["latency"]
        row.update(
            tflite_bytes=result.bytes,
            gzip_bytes=result.gzip_bytes,
            tflite_accuracy=check["tflite_accuracy"],
            top1_agreement=check["top1_agreement"],
            max_abs_error=check["max_abs_error"],
            samples=check["samples"],
            latency_ms=timing["median_ms"],
        )
        return row


@contextlib.contextmanager
def _quiet():
    # Float32 size measurements need no warnings about the fast path; the export's own are kept.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield
