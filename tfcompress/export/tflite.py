"""Converting a Keras model to a `.tflite` file in any of the converter's modes, int8 for Android by default."""

import dataclasses
import gzip
import inspect
import warnings

import numpy as np

from tfcompress import _files
from tfcompress._keras import ensure_graph_model, tf
from tfcompress.data.arrays import as_arrays, check_input_shape
from tfcompress.export.inspection import undelegated_compute_ops
from tfcompress.export.litert import load_interpreter
from tfcompress.quantize import is_quantization_aware

_IO_DTYPES = {"float32": tf.float32, "uint8": tf.uint8, "int8": tf.int8, "int16": tf.int16}
# The I/O types each mode accepts, default first. uint8 is the default for int8 models:
# Android's LiteRT/MediaPipe image classifier takes uint8 or float32 input, not int8, and
# uint8 carries camera pixels as they are.
_MODES = {
    "float32": ("float32",),
    "float16": ("float32",),
    "dynamic": ("float32",),
    "int8": ("uint8", "float32", "int8"),
    "int16x8": ("float32", "int16"),
}
_CALIBRATED_MODES = ("int8", "int16x8")
# Below this many examples, calibrated ranges are likely to miss values seen in use.
_FEW_CALIBRATION_EXAMPLES = 50


@dataclasses.dataclass(frozen=True)
class ExportResult:
    """What `to_tflite` wrote.

    Attributes:
      path: absolute path of the `.tflite` file.
      mode: the conversion mode ("int8", "float32", "float16", "dynamic" or "int16x8").
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

    Modes:
      - "int8" (default): full integer; every op inside runs in int8, as phone NPUs and
        XNNPACK's integer kernels want. A quantization-aware model (`tfc.quantize.qat`)
        uses the ranges it learned; any other model is calibrated on `representative_data`.
      - "float32": no quantization.
      - "float16": weights stored as float16 (half the size); computed in float.
      - "dynamic": dynamic-range; int8 weights, activations quantized on the fly.
      - "int16x8": int16 activations with int8 weights, calibrated; more accurate than
        int8 but not delegated to XNNPACK, so it runs far slower on a CPU (a warning says so).

    The file appears only once it is complete; a failed export leaves no file behind and
    never replaces an existing one.

    Args:
      model: a built Sequential or functional Keras 2 model with one input.
      path: where to write the `.tflite` file.
      mode: one of "int8", "float32", "float16", "dynamic", "int16x8".
      representative_data: inputs to calibrate the ranges of "int8" and "int16x8": a
        numpy array, a batched `tf.data.Dataset` (labels ignored), or a generator (or a
        function returning one) that yields examples or batches, bare or as `[batch]`
        as the TFLite converter's `representative_dataset` does. Required for those modes
        unless the model is quantization-aware (int8); a few hundred typical examples.
      io_dtype: element type of the input and output tensors: for int8 "uint8" (default),
        "float32" or "int8"; for int16x8 "float32" (default) or "int16"; "float32" otherwise.
      overwrite: replace an existing file at `path`.
      calibration_samples: use at most this many examples of `representative_data`.

    Returns:
      An `ExportResult` with the path, byte size and gzip size.

    Raises:
      TypeError: `model` is not a Keras 2 model.
      ValueError: `mode` or `io_dtype` is unknown or mismatched; representative data is
        missing (calibrated modes), given to a mode that does not calibrate, empty,
        non-numeric, NaN or wrongly shaped.
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
    if mode not in _CALIBRATED_MODES and representative_data is not None:
        raise ValueError(
            f"`representative_data` calibrates activation ranges, which {mode} mode does not have. "
            f"Remove it, or pass one of the calibrated modes {_CALIBRATED_MODES}."
        )
    path = _files.check_writable(path, overwrite)
    samples = None
    if representative_data is not None:
        samples = _calibration_examples(representative_data, model.input_shape, calibration_samples)
    if mode in _CALIBRATED_MODES and samples is None and not (mode == "int8" and is_quantization_aware(model)):
        raise ValueError(
            f"{mode} export needs `representative_data` to calibrate the value ranges, e.g. "
            "representative_data=x_train[:300]"
            + ("; or train the model with tfc.quantize.qat first." if mode == "int8" else ".")
        )
    if mode == "int16x8":
        warnings.warn(
            "int16x8 models are not delegated to XNNPACK: LiteRT runs them on its reference kernels, "
            "many times slower than float32 or int8 on a phone's CPU. Use it for accuracy-sensitive models "
            "that run rarely, or measure first with tfc.export.benchmark.",
            stacklevel=2,
        )

    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    _configure(converter, mode, io_dtype, samples)
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
    interpreter = load_interpreter(content)
    if mode == "int8":
        _check_integer_only(interpreter, model.name, calibrated=samples is not None)
    if mode != "int16x8":  # which warned already, before converting
        _warn_if_off_the_fast_path(interpreter, model.name, mode)
    _files.write_atomically(path, content, overwrite=overwrite)
    return ExportResult(
        path=path,
        mode=mode,
        bytes=len(content),
        gzip_bytes=len(gzip.compress(content, compresslevel=9)),
        input_dtype=np.dtype(interpreter.get_input_details()[0]["dtype"]).name,
        output_dtype=np.dtype(interpreter.get_output_details()[0]["dtype"]).name,
    )


def _configure(converter, mode, io_dtype, samples):
    """Sets the converter's options for `mode`."""
    if mode == "float32":
        return
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if mode == "float16":
        converter.target_spec.supported_types = [tf.float16]
        return
    if mode == "dynamic":
        return
    converter.inference_input_type = _IO_DTYPES[io_dtype]
    converter.inference_output_type = _IO_DTYPES[io_dtype]
    if samples is not None:
        converter.representative_dataset = lambda: ([example[np.newaxis]] for example in samples)
    if mode == "int16x8":
        int16_activations = tf.lite.OpsSet.EXPERIMENTAL_TFLITE_BUILTINS_ACTIVATIONS_INT16_WEIGHTS_INT8
        converter.target_spec.supported_ops = [int16_activations]
    elif samples is not None:
        # TF 2.21 rejects this setting for QAT models without calibration data, so the
        # integer-only check after conversion covers both cases.
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]


def _calibration_examples(data, input_shape, limit):
    """Calibration inputs as one float32 array, from an array, a dataset or a generator, checked."""
    if callable(data) and not isinstance(data, tf.data.Dataset):
        data = data()
    if inspect.isgenerator(data) or hasattr(data, "__next__"):
        data = _drain(data, len(input_shape), limit)
    samples, _ = as_arrays(data, limit=limit, argument="representative_data")
    check_input_shape(samples, input_shape, "representative_data")
    if len(samples) < _FEW_CALIBRATION_EXAMPLES:
        warnings.warn(
            f"Calibrating on {len(samples)} examples; ranges from so few often miss values seen in use. "
            "Pass a few hundred typical examples.",
            stacklevel=3,
        )
    return samples


def _drain(generator, input_rank, limit):
    """Collects a generator's items (examples or batches, bare or as `[batch]`) into one array."""
    batches, count = [], 0
    for item in generator:
        if isinstance(item, (list, tuple)):
            item = item[0]
        item = np.asarray(item)
        batch = item[np.newaxis] if item.ndim == input_rank - 1 else item
        batches.append(batch)
        count += len(batch)
        if count >= limit:
            break
    if not batches:
        return np.zeros((0,), np.float32)
    if len({batch.shape[1:] for batch in batches}) != 1:
        raise ValueError(
            f"`representative_data` yielded items of different shapes {sorted({b.shape for b in batches})}; "
            "yield examples (or batches) of the model's input shape."
        )
    return np.concatenate(batches)


def _warn_if_off_the_fast_path(interpreter, model_name, mode):
    slow = undelegated_compute_ops(interpreter)
    if slow:
        warnings.warn(
            f"{len(slow)} ops of the {mode} export of {model_name!r} are not delegated to XNNPACK "
            f"({sorted(set(slow))}); LiteRT runs them on reference kernels, many times slower on a phone's CPU. "
            "tfc.export.inspect(path) lists them; replace those layers or try another mode.",
            stacklevel=3,
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
