"""Per-layer int8 error from the converter's QuantizationDebugger, and int8 files that keep chosen layers in float."""

import csv
import io
import warnings

import numpy as np

from tfcompress._keras import tf
from tfcompress._model_guards import ensure_graph_model
from tfcompress.data.arrays import input_specs
from tfcompress.export import range_search
from tfcompress.export.calibration import calibration_examples
from tfcompress.litert.interpreter import LiteRTModel
from tfcompress.quantize import is_quantization_aware


def layer_errors(model, representative_data, *, calibration_samples: int = 500) -> dict:
    """Quantizes `model` to int8 with TFLite's QuantizationDebugger and measures each layer's error.

    Every quantized op's output is compared with the float output of the same op, given
    the same (quantized) inputs, on each calibration example.

    Args:
      model: a built Sequential or functional Keras 2 model (not quantization-aware).
      representative_data: calibration inputs, as for `to_tflite`: a numpy array, a
        batched `tf.data.Dataset`, or a generator.
      calibration_samples: use at most this many examples.

    Returns:
      A dict: `layers`, one dict per quantized op in model order with `layer` (the Keras
      layer it comes from), `op`, `tensor`, `rmse_per_scale` (root-mean-square error over
      the quantization step: near 0.29 is rounding alone), `max_abs_error` and `scale`;
      and `worst`, the layer names by decreasing `rmse_per_scale`.

    Raises:
      TypeError: `model` is not a Keras 2 model.
      ValueError: `model` is quantization-aware (its ranges are learned, not
        calibrated), or the data is empty, NaN or wrongly shaped.

    Examples:
      >>> errors = tfc.export.layer_errors(model, x_train[:300])
      >>> errors["worst"][:2]
    """
    model = ensure_graph_model(model)
    if is_quantization_aware(model):
        raise ValueError("`model` is quantization-aware; its int8 ranges were learned, not calibrated.")
    samples = calibration_examples(representative_data, input_specs(model), calibration_samples)
    return Calibration(model, samples).errors


class Calibration:
    """A model calibrated once by TFLite's QuantizationDebugger: its per-layer errors, and int8 files from it.

    Calibration runs the model on every example, so it is done once; each file with a
    different choice of float layers is then re-quantized from the same statistics.

    Args:
      model: a built Sequential or functional Keras 2 model (not quantization-aware).
      samples: calibration inputs, one checked array per model input (see `calibration_examples`).
      calibration: how the files' activation ranges are picked (`tfcompress._choices.CALIBRATION_METHODS`).

    Attributes:
      errors: what `layer_errors` returns.

    Examples:
      >>> calibration = Calibration(model, x_train[:300])
      >>> mixed = calibration.convert(["dense_1"])
    """

    def __init__(self, model, samples, calibration="minmax"):
        with warnings.catch_warnings():
            # The debugger runs TensorFlow's own interpreter, whose deprecation is not the user's concern.
            warnings.filterwarnings("ignore", message=".*tf.lite.Interpreter is deprecated")
            self._debugger = tf.lite.experimental.QuantizationDebugger(
                converter=_calibrating_converter(model, samples), debug_dataset=examples(samples)
            )
            self._debugger.run()
        # The errors are min-max's; the files it builds carry the method's ranges.
        self._debugger.calibrated_model = range_search.with_ranges(
            self._debugger.calibrated_model, calibration, samples, model.input_names
        )
        dump = io.StringIO()
        self._debugger.layer_statistics_dump(dump)
        rows = list(csv.DictReader(io.StringIO(dump.getvalue())))
        layers = [_layer_row(model, row, last=number == len(rows) - 1) for number, row in enumerate(rows)]
        worst = sorted(layers, key=lambda row: -row["rmse_per_scale"])
        self.errors = {"layers": layers, "worst": list(dict.fromkeys(row["layer"] for row in worst))}

    def convert(self, names) -> bytes:
        """The int8 file (float32 I/O) with the ops of the layers `names` left in float."""
        tensors = [row["tensor"] for row in self.errors["layers"] if row["layer"] in names]
        # Setting options re-quantizes from the statistics already gathered, without calibrating again.
        self._debugger.options = tf.lite.experimental.QuantizationDebugOptions(denylisted_nodes=tensors)
        return self._debugger.get_nondebug_quantized_model()


def _layer_row(model, row, last):
    scale = float(row["scale"])
    return {
        "layer": layer_name(model, row["tensor_name"], last=last),
        "op": row["op_name"],
        "tensor": row["tensor_name"],
        # A uniform quantizer's own rounding error is scale / sqrt(12), about 0.29 scale.
        "rmse_per_scale": float(np.sqrt(float(row["mean_squared_error"])) / scale) if scale else 0.0,
        "max_abs_error": float(row["max_abs_error"]),
        "scale": scale,
    }


def choose_float_layers(errors: dict, float_layers) -> list:
    """The layers to keep in float: names as given, the N worst, or those above an error threshold."""
    known = [row["layer"] for row in errors["layers"]]
    if isinstance(float_layers, bool):
        raise ValueError("`float_layers` must be layer names, a count or an error threshold, not a bool.")
    if isinstance(float_layers, int):
        if not 1 <= float_layers <= len(errors["worst"]):
            raise ValueError(
                f"`float_layers` as a count must be in [1, {len(errors['worst'])}]. Received: {float_layers}"
            )
        return errors["worst"][:float_layers]
    if isinstance(float_layers, float):
        if float_layers <= 0:
            raise ValueError(f"`float_layers` as an error threshold must be positive. Received: {float_layers}")
        return [row["layer"] for row in errors["layers"] if row["rmse_per_scale"] > float_layers]
    names = [float_layers] if isinstance(float_layers, str) else list(float_layers)
    unknown = [name for name in names if name not in known]
    if unknown or not names:
        raise ValueError(
            f"`float_layers` names {unknown or names}, which are not quantized layers of the model. "
            f"The quantized layers are: {list(dict.fromkeys(known))}."
        )
    return names


def agreement(content: bytes, model, samples, task) -> float:
    """The share of decisions the `.tflite` bytes make as `model` does on `samples`; None for regression or no task."""
    if task is None:
        return None
    runner = LiteRTModel(content)
    keras_outputs = model.predict(samples if len(samples) > 1 else samples[0], batch_size=256, verbose=0)
    tflite_outputs = runner.predict(samples if len(samples) > 1 else samples[0])
    first = keras_outputs[0] if isinstance(keras_outputs, list) else keras_outputs
    if isinstance(tflite_outputs, dict):
        tflite_outputs = tflite_outputs[model.output_names[0]]
    return task.compare(tflite_outputs, first)["agreement"]


def _calibrating_converter(model, samples):
    # The debugger calibrates through the converter's SavedModel path: from_keras_model.
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = examples(samples)
    return converter


def examples(samples, names=None):
    """The converter's `representative_dataset`: one example at a time, each input by its name."""
    if names is None:
        return lambda: ([array[index : index + 1] for array in samples] for index in range(len(samples[0])))
    return lambda: (
        {name: array[index : index + 1] for name, array in zip(names, samples)} for index in range(len(samples[0]))
    )


def layer_name(model, tensor_name, last) -> str:
    """The Keras layer a converted op comes from, by its output tensor's name (`last`: it is the model's output)."""
    for layer in model.layers:
        if f"/{layer.name}/" in f"/{tensor_name}":
            return layer.name
    # The model's output tensor is named after the function call, not the layer.
    return model.layers[-1].name if last else tensor_name
