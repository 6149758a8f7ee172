"""One report row per stage: size, sparsity, accuracy and latency of the stage's model.

Sizes and accuracies are measured as each stage ends; latencies at the end, every
stage's file timed side by side in interleaved rounds (`tfc.litert.time_side_by_side`), so the
speed-ups between stages are ratios measured under the same conditions.
"""

import contextlib
import os
import tempfile
import warnings

from tfcompress import _files, _tasks, export, litert, prune

# Timing every stage's file together stops starting rounds after this long (ResNet-sized files).
_MAX_SECONDS = 30.0


class Measure:
    """Measures models on the held-out data, as the report's rows.

    Args:
      x_test: held-out inputs.
      y_test: their labels, checked for `task` (`Task.labels`).
      task: the `tfcompress._tasks.Task` of the models' output, which says what is measured.
      stage_files: row label -> path, where a measured float32 `.tflite` is kept; a row
        without a path is measured on a temporary file.
      overwrite: replace an existing kept file.
      stage_models: row label -> path, where the row's Keras model is saved as `.keras`.

    Examples:
      >>> measure = Measure(x_test, y_test, task)
      >>> measure("distill", student, seconds=12.5)["tflite_accuracy"]
    """

    def __init__(self, x_test, y_test, task, stage_files=None, overwrite: bool = False, stage_models=None):
        self._x, self._y, self._task = x_test, y_test, task
        self._stage_files, self._overwrite = stage_files or {}, overwrite
        self._stage_models = stage_models or {}
        self._folder = tempfile.TemporaryDirectory(prefix="tfcompress_stages_")  # files kept until `time_rows`
        self._files = {}  # row label -> the .tflite timed for it

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
          `tflite_bytes`, `gzip_bytes`, `tflite_accuracy`, `agreement` (decisions alike,
          see `tfc.litert.verify`), `top1_agreement` (multi-class only), `max_abs_error`,
          `samples`, `layers` (per-layer sparsity), and the latency keys `time_rows` fills
          in (None until then, and where there is no file). For regression,
          `keras_mae` and `tflite_mae` in place of the accuracies (which are None).

        Examples:
          >>> measure("qat", model, 30.0, file="keras")
        """
        counts = prune.sparsity(model)
        row = {
            "stage": label,
            "seconds": seconds,
            "parameters": counts["parameters"],
            "nonzero_parameters": counts["nonzero_parameters"],
            "keras_accuracy": None,
            "tflite_bytes": None,
            "gzip_bytes": None,
            "tflite_accuracy": None,
            "agreement": None,
            "top1_agreement": None,
            "max_abs_error": None,
            "samples": None,
            "latency_ms": None,
            "latency_spread": None,
            "speedup": None,
            "speedup_interval": None,
            "layers": counts["layers"],
        }
        row[f"keras_{self._task.measure}"] = _tasks.evaluate(model, self._x, self._y, self._task)
        if label in self._stage_models:
            _files.save_model_atomically(model, self._stage_models[label], overwrite=self._overwrite)
        if file == "exported":
            return self._with_file(row, model, exported)
        if file == "keras":
            return row
        with _quiet():
            path = self._stage_files.get(label) or os.path.join(self._folder.name, f"{len(self._files)}.tflite")
            result = export.to_tflite(model, path, mode="float32", overwrite=self._overwrite)
            return self._with_file(row, model, result)

    def time_rows(self, rows) -> None:
        """Times every row's file side by side and fills in its latency keys, in place."""
        timed = [row for row in rows if row["stage"] in self._files]
        try:
            if len(timed) < 2:
                for row in timed:
                    (timing,) = litert.benchmark(self._files[row["stage"]], threads=1, xnnpack=True)["latency"]
                    row.update(latency_ms=timing["median_ms"], latency_spread=timing["spread"])
                return None
            files = {row["stage"]: self._files[row["stage"]] for row in timed}
            result = litert.time_side_by_side(files, max_seconds=_MAX_SECONDS)
        finally:
            self._folder.cleanup()
        for row, timing in zip(timed, result.files):
            row.update(
                latency_ms=timing["median_ms"],
                latency_spread=timing["spread"],
                speedup=timing["speedup"],
                speedup_interval=f"{timing['speedup_low']:.2f}-{timing['speedup_high']:.2f}",
            )
        return result.cpu

    def _with_file(self, row, model, result):
        check = litert.verify(result.path, model, self._x, self._y, task=self._task.kind)
        self._files[row["stage"]] = result.path
        measure = f"tflite_{self._task.measure}"
        row.update(
            {measure: check[measure]},
            tflite_bytes=result.bytes,
            gzip_bytes=result.gzip_bytes,
            agreement=check["agreement"],
            top1_agreement=check["top1_agreement"],
            max_abs_error=check["max_abs_error"],
            samples=check["samples"],
        )
        return row


@contextlib.contextmanager
def _quiet():
    # Float32 size measurements need no warnings about the fast path; the export's own are kept.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield
