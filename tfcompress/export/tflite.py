"""Converting a Keras model to a `.tflite` file: float32, or full-integer int8 for Android."""

import dataclasses
import gzip
import warnings

import numpy as np
from ai_edge_litert.interpreter import Interpreter

from tfcompress import _files
from tfcompress._keras import ensure_graph_model, tf
from tfcompress.data.arrays import as_arrays, check_input_shape
from tfcompress.quantize import is_quantization_aware

_IO_DTYPES = {"float32": tf.float32, "uint8": tf.uint8, "int8": tf.int8}
# uint8 is the default for int8 models: Android's LiteRT/MediaPipe image classifier takes
# uint8 or float32 input, not int8, and uint8 carries camera pixels as they are.
_MODES = {"float32": ("float32",), "int8": ("uint8", "float32", "int8")}


@dataclasses.dataclass(frozen=True)
class ExportResult:
    """What `to_tflite` wrote.

    Attributes:
      path: absolute path of the `.tflite` file.
      mode: "float32" or "int8".
      bytes: size of the file.
      gzip_bytes: size of the file gzip-compressed (what an app download costs; pruned
        zeros show here).
      input_dtype: element type of the model's input tensor.
      output_dtype: element type of the model's output tensor.

    Example:
      >>> result = tfc.export.to_tflite(model, "model.tflite", representative_data=x[:300])
      >>> result.bytes, result.input_dtype
      (112008, 'uint8')  # the demo's int8 student
    """

    path: str
    mode: str
    bytes: int
    gzip_bytes: int
    input_dtype: str
    output_dtype: str

    def to_dict(self) -> dict:
        """The fields as a plain dict, for reports and JSON.

        Returns:
          A dict with one key per field.

        Example:
          >>> json.dumps(result.to_dict())
        """
        return dataclasses.asdict(self)


def to_tflite(
    model,
    path,
    *,
    mode: str = "int8",
    representative_data=None,
    io_dtype: str = None,
    overwrite: bool = False,
    calibration_samples: int = 500,
) -> ExportResult:
    """Converts `model` with the TFLite converter and writes it to `path` atomically.

    In "int8" mode every op inside runs in int8 (full-integer quantization, as phone NPUs
    and XNNPACK's integer kernels want). A quantization-aware model (`tfc.quantize.qat`)
    uses the ranges it learned; any other model is calibrated on `representative_data`.
    The file appears only once it is complete; a failed export leaves no file behind and
    never replaces an existing one.

    Args:
      model: a built Sequential or functional Keras 2 model with one input.
      path: where to write the `.tflite` file.
      mode: "int8" (full integer) or "float32".
      representative_data: inputs to calibrate int8 ranges: a numpy array or a batched
        `tf.data.Dataset` (labels ignored). Required for "int8" unless the model is
        quantization-aware; a few hundred typical examples are enough.
      io_dtype: element type of the input and output tensors: "uint8" (default for
        int8), "float32" or "int8". "float32" mode takes only "float32".
      overwrite: replace an existing file at `path`.
      calibration_samples: use at most this many examples of `representative_data`.

    Returns:
      An `ExportResult` with the path, byte size and gzip size.

    Raises:
      TypeError: `model` is not a Keras 2 model.
      ValueError: `mode` or `io_dtype` is unknown or mismatched; representative data is
        missing (int8), given to float32 mode, empty, NaN or wrongly shaped.
      FileExistsError: `path` exists and `overwrite` is False.
      RuntimeError: the converter could not convert the model (nothing is written).

    Example:
      >>> result = tfc.export.to_tflite(model, "model.tflite", mode="int8",
      ...                               representative_data=x_train[:300])
      >>> result.bytes
    """
    ensure_graph_model(model)
    if len(model.inputs) != 1:
        raise ValueError(f"`model` has {len(model.inputs)} inputs; only single-input models can be exported so far.")
    if mode not in _MODES:
        raise ValueError(f"`mode` must be one of {tuple(_MODES)}. Received: mode={mode!r}")
    io_dtype = io_dtype or _MODES[mode][0]
    if io_dtype not in _MODES[mode]:
        raise ValueError(f"In mode {mode!r}, `io_dtype` must be one of {_MODES[mode]}. Received: io_dtype={io_dtype!r}")
    if mode == "float32" and representative_data is not None:
        raise ValueError(
            "`representative_data` calibrates int8 ranges; float32 mode has none to calibrate. "
            "Remove it, or pass mode='int8'."
        )
    path = _files.check_writable(path, overwrite)
    samples = None
    if representative_data is not None:
        samples, _ = as_arrays(representative_data, limit=calibration_samples, argument="representative_data")
        check_input_shape(samples, model.input_shape, "representative_data")
    if mode == "int8" and samples is None and not is_quantization_aware(model):
        raise ValueError(
            "int8 export needs `representative_data` to calibrate the value ranges, e.g. "
            "representative_data=x_train[:300]; or train the model with tfc.quantize.qat first."
        )

    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    if mode == "int8":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.inference_input_type = _IO_DTYPES[io_dtype]
        converter.inference_output_type = _IO_DTYPES[io_dtype]
        if samples is not None:
            converter.representative_dataset = lambda: ([example[np.newaxis]] for example in samples)
            # TF 2.21 rejects this setting for QAT models without calibration data, so
            # the integer-only check after conversion covers both cases.
            converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    try:
        with warnings.catch_warnings():
            # The I/O scale and zero point come from calibration or QAT ranges, as wanted.
            warnings.filterwarnings("ignore", message="Statistics for quantized inputs were expected")
            content = converter.convert()
    except Exception as error:  # The converter raises ConverterError, ValueError and others.
        summary = str(error).strip().splitlines()[0].rstrip(".") if str(error).strip() else type(error).__name__
        raise RuntimeError(
            f"The TFLite converter could not convert {model.name!r} to {mode}: {summary}. "
            f"Nothing was written to {path}."
        ) from error
    interpreter = Interpreter(model_content=content)
    if mode == "int8":
        _check_integer_only(interpreter, model.name, calibrated=samples is not None)
    _files.write_atomically(path, content, overwrite=overwrite)
    return ExportResult(
        path=path,
        mode=mode,
        bytes=len(content),
        gzip_bytes=len(gzip.compress(content, compresslevel=9)),
        input_dtype=np.dtype(interpreter.get_input_details()[0]["dtype"]).name,
        output_dtype=np.dtype(interpreter.get_output_details()[0]["dtype"]).name,
    )


def _check_integer_only(interpreter, model_name: str, calibrated: bool) -> None:
    boundary = {detail["index"] for detail in interpreter.get_input_details() + interpreter.get_output_details()}
    floating = sorted(
        detail["name"]
        for detail in interpreter.get_tensor_details()
        if detail["index"] not in boundary and np.issubdtype(detail["dtype"], np.floating)
    )
    if floating:
        fix = (
            "Replace the layers behind them with ones that have int8 kernels, or export in float32."
            if calibrated
            else "Pass representative_data so layers outside quantization-aware training get calibrated too."
        )
        raise RuntimeError(
            f"The int8 export of {model_name!r} would still compute in float at {len(floating)} tensors "
            f"(first: {floating[:3]}). {fix} Nothing was written."
        )
