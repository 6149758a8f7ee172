"""Converting a Keras model to a `.tflite` file in any of the converter's modes, int8 for Android by default."""

import dataclasses
import gzip
import warnings

import numpy as np

from tfcompress import _augmentation, _errors, _files, _tasks
from tfcompress._choices import CALIBRATED_MODES, EXPORT_MODES, IO_DTYPES
from tfcompress._keras import tf
from tfcompress._model_guards import ensure_graph_model
from tfcompress.data.arrays import input_specs
from tfcompress.export import accuracy_control, fallback, recurrent, weight_quantization
from tfcompress.export.calibration import calibration_examples
from tfcompress.export.inspection import costly_undelegated_ops, float_compute_ops, integer_weights_of
from tfcompress.export.litert import XNNPackRefusedError, load_interpreter
from tfcompress.quantize import is_quantization_aware, ranges
from tfcompress.quantize.quantization_aware import requested_float_layers

_IO_DTYPES = {name: tf.as_dtype(name) for name in IO_DTYPES}
_SPARSE_MODES = ("float32", "dynamic", "int8")
# TF-MOT names the wrapper of layer "scores" "quant_scores"; the file keeps the layer's name.
_QAT_PREFIX = "quant_"
# Measured by `python benchmarks/export_modes.py` (MNIST CNN, LiteRT 2.3.0, 1 thread, x86):
# int16x8 ran 28x slower than float32; sparse int8 5.0x slower than the same model's dense int8.
_MEASURED_SLOWDOWN = {"int16x8": "28x slower than float32", "sparse": "5.0x slower than dense int8"}


@dataclasses.dataclass(frozen=True)
class ExportResult:
    """What `to_tflite` wrote.

    Attributes:
      path: absolute path of the `.tflite` file.
      mode: the conversion mode ("int8", "float32", "float16", "dynamic" or "int16x8").
      bytes: size of the file.
      gzip_bytes: size of the file gzip-compressed (what an app download costs; pruned
        zeros show here).
      input_dtype: element type of the model's (first) input tensor.
      output_dtype: element type of the model's (first) output tensor.
      notes: what the export changed to make the model convertible (a batch fixed to 1
        for recurrent layers, loops unrolled), one sentence each.
      fallback: None, or with `float_layers` what keeping them in float cost:
        `float_layers` (names), `layer_errors` (per-layer int8 error, see
        `tfc.export.layer_errors`), `all_int8_bytes` and `bytes` (file sizes without and
        with the fallback), and `all_int8_agreement` and `agreement` (the share of
        decisions alike with the Keras model on the calibration examples, without and
        with it, as `tfc.export.verify` counts them; None for regression).
      accuracy_control: None, or with `max_accuracy_drop`/`min_agreement` what the control
        measured and chose: `target`, `task` and its `measure` ("accuracy" or "mae"),
        `float_score` (and `float_accuracy` for classifiers), `plain` and `equalized`
        (each measured int8 file: `agreement`, `score`, `accuracy`, `accuracy_drop` in
        the task's measure, `relative_error` for regression), `chosen`,
        `float_layers`, `int8_mac_share`, `bytes`, `latency_ms` (1 thread, plain int8
        and chosen), `trials` (every file measured), `advice` (QAT, when the float layers
        cost too much speed) and `summary` (the lines printed).

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
    fallback: dict = None
    notes: tuple = ()
    accuracy_control: dict = None


def to_tflite(
    model,
    path,
    *,
    mode: str = "int8",
    representative_data=None,
    io_dtype: str = None,
    overwrite: bool = False,
    calibration_samples: int = 500,
    batch_size: int = None,
    sparse: bool = False,
    float_layers=None,
    validation_data=None,
    max_accuracy_drop: float = None,
    min_agreement: float = None,
    task=None,
) -> ExportResult:
    """Converts `model` with the TFLite converter and writes it to `path` atomically.

    Modes:
      - "int8" (default): full integer; every op inside runs in int8, as phone NPUs and
        XNNPACK's integer kernels want. A quantization-aware model (`tfc.quantize.qat`)
        uses the ranges it learned; any other model is calibrated on `representative_data`.
        The layers `qat(float_layers=...)` kept in float stay float, with float32 I/O.
      - "float32": no quantization.
      - "float16": weights stored as float16 (half the size); computed in float.
      - "dynamic": dynamic-range; int8 weights, activations quantized on the fly.
      - "int16x8": int16 activations with int8 weights, calibrated; more accurate than
        int8 but not delegated to XNNPACK, so it runs far slower on a CPU (a warning says so).
      - "weights_int8", "weights_int4": weights stored as int8 or int4 and dequantized
        to float at load; computed in float. "dynamic_int4": int4 weights, activations
        quantized on the fly. These three use the LiteRT quantizer, an optional extra:
        `pip install "tfcompress[quantizer]"`.

    The file has one signature, "serving_default", whose inputs and outputs are named
    after the model's input layers and output layers (what an app's `runSignature` call
    uses). Integer inputs (token ids) stay integers: they are neither scaled nor
    quantized. A model with recurrent layers gets a batch of 1 (the converter needs a
    static batch to lower their loops), and GRU/SimpleRNN loops are unrolled for
    calibrated modes (the converter crashes calibrating them); `ExportResult.notes` says
    so. The file appears only once it is complete; a failed export leaves no file behind
    and never replaces an existing one.

    Args:
      model: a built Sequential or functional Keras 2 model (several inputs and outputs allowed).
      path: where to write the `.tflite` file.
      mode: one of "int8", "float32", "float16", "dynamic", "int16x8", "weights_int8",
        "weights_int4", "dynamic_int4".
      representative_data: inputs to calibrate the ranges of "int8" and "int16x8": a
        numpy array, a batched `tf.data.Dataset` (labels ignored), or a generator (or a
        function returning one) that yields examples or batches, bare or as `[batch]`
        as the TFLite converter's `representative_dataset` does; for several inputs, a
        list or dict (by input name) of arrays, a dataset of tuples, or a generator of
        lists. Required for those modes unless the model is quantization-aware (int8)
        with no layer left in float; a few hundred typical examples. Not allowed for a
        quantization-aware model with `qat(float_layers=...)`: it would quantize them.
      io_dtype: element type of the float input and output tensors (integer inputs are
        left as they are): for int8 "uint8", "float32" or "int8", by default "uint8" when
        every input is an image (height x width x 1, 3 or 4) and "float32" otherwise; for
        int16x8 "float32" (default) or "int16"; "float32" in the other modes.
      overwrite: replace an existing file at `path`.
      calibration_samples: use at most this many examples of `representative_data`.
      batch_size: None (the default) keeps the batch dimension dynamic (an app can resize
        it; it runs at 1 unless resized); an int fixes it, as GPU and NPU delegates prefer.
      sparse: store pruned kernels in the converter's sparse encoding (smaller file for a
        model with many zeros). LiteRT's default XNNPACK delegate refuses such a file: an
        app with default settings cannot load it, and without XNNPACK it runs far slower.
        A warning says so; prefer gzip (`ExportResult.gzip_bytes`) to shrink the download.
      float_layers: int8 only, calibrated: keep some layers in float, chosen from the
        converter's QuantizationDebugger error per layer: a list of Keras layer names, an
        int N (the N layers with the largest error), or a float threshold on the error
        (root-mean-square error over the quantization step; 0.7 flags a layer as
        suspicious). The file then has float32 I/O, and `ExportResult.fallback` says
        what the float layers cost in bytes and gained in agreement.
      validation_data: held-out `(x, y)` (labels as users hold them: integer classes or
        one-hot, 0/1, multi-hot, values; `x` alone for `min_agreement`) that accuracy
        control measures each candidate file on, in LiteRT, against the Keras model.
        Used only with one of the two targets below.
      max_accuracy_drop: int8 only, calibrated: the largest loss allowed on
        `validation_data` in the first output's primary measure, in (0, 1): accuracy
        (0.005 = half a point; binary at its threshold, multi-label per label), or for a
        regression the relative rise of the mean absolute error (0.005 = 0.5%). The plain int8 file, the
        same after cross-layer equalization (`tfc.quantize.equalize`, exact and still all
        int8) and after bias correction (`tfc.quantize.correct_bias`) are measured, and
        the one that meets it closest to the Keras model is kept; if none does, the
        fewest layers kept in float that meet it (ranked by int8 noise, each candidate
        confirmed by measurement). What was tried and chosen is printed and returned in
        `ExportResult.accuracy_control`; the file has float32 I/O.
      min_agreement: like `max_accuracy_drop`, a target on the share of decisions that
        equal the Keras model's (top-1 class, side of a binary threshold, each label), in
        (0, 1); no labels needed; not for regression. Both targets may be given; both
        must then be met.
      task: the first output's task ("multiclass", "binary", "multilabel",
        "regression"), for accuracy control and the agreement `float_layers` reports;
        None infers it (see `tfc.export.verify`).

    Returns:
      An `ExportResult` with the path, byte size and gzip size.

    Raises:
      TypeError: `model` is not a Keras 2 model.
      ValueError: `mode`, `io_dtype`, `batch_size` or `sparse` is unknown or mismatched; representative data is
        missing (calibrated modes), given to a mode that does not calibrate, empty,
        non-numeric, NaN or wrongly shaped; a quantization-aware model's ranges hold NaN.
      FileExistsError: `path` exists and `overwrite` is False.
      AccuracyTargetError: (a RuntimeError) no int8 file meets the accuracy target, even
        with every layer in float; nothing is written.
      ImportError: the mode needs the LiteRT quantizer, which is not installed.
      RuntimeError: the converter could not convert the model, or built a file LiteRT
        would crash on (nothing is written).

    Example:
      >>> result = tfc.export.to_tflite(model, "model.tflite", mode="int8",
      ...                               representative_data=x_train[:300])
      >>> result.bytes
    """
    model = ensure_graph_model(model)
    if mode not in EXPORT_MODES:
        raise ValueError(f"`mode` must be one of {tuple(EXPORT_MODES)}. Received: mode={mode!r}")
    if float_layers is not None:
        _check_fallback_request(model, mode, io_dtype, representative_data, sparse, batch_size)
        io_dtype = "float32"
    kept_float = requested_float_layers(model) if mode == "int8" else []
    if kept_float:
        _check_kept_float_request(model, kept_float, io_dtype, representative_data)
        io_dtype = "float32"
    specs = input_specs(model)
    controlled = max_accuracy_drop is not None or min_agreement is not None
    if controlled:
        _check_control_request(model, mode, io_dtype, representative_data, sparse, batch_size, float_layers)
        target, x_val, y_val, measured_task = accuracy_control.check_request(
            max_accuracy_drop, min_agreement, validation_data, model, task
        )
        io_dtype = "float32"
    elif validation_data is not None:
        raise ValueError(
            "`validation_data` is what accuracy control measures on; pass a target with it "
            "(max_accuracy_drop=0.005 or min_agreement=0.99), or remove it."
        )
    io_dtype = io_dtype or _default_io_dtype(mode, specs)
    if io_dtype not in EXPORT_MODES[mode]:
        raise ValueError(
            f"In mode {mode!r}, `io_dtype` must be one of {EXPORT_MODES[mode]}. Received: io_dtype={io_dtype!r}"
        )
    if mode in weight_quantization.RECIPES:
        weight_quantization.check_available(mode)
    if mode not in CALIBRATED_MODES and representative_data is not None:
        raise ValueError(
            f"`representative_data` calibrates activation ranges, which {mode} mode does not have. "
            f"Remove it, or pass one of the calibrated modes {CALIBRATED_MODES}."
        )
    if batch_size is not None and not (isinstance(batch_size, int) and batch_size >= 1):
        raise ValueError(f"`batch_size` must be None (dynamic) or a positive int. Received: batch_size={batch_size!r}")
    if sparse and mode not in _SPARSE_MODES:
        raise ValueError(f"`sparse=True` works in modes {_SPARSE_MODES}, not {mode!r}.")
    path = _files.check_writable(path, overwrite)
    broken = ranges.not_finite(model) if is_quantization_aware(model) else []
    if broken:
        raise ValueError(
            f"The quantization ranges of {model.name!r} hold NaN or infinity at "
            f"{_errors.first_few(map(repr, broken), 3)}: quantization-aware training diverged there, and no int8 file "
            "can be built from them. Check that the model's loss and outputs are finite; train quantization-aware "
            "again from the float model (tfc.quantize.qat) at a lower learning rate."
        )
    samples = None
    if representative_data is not None:
        samples = calibration_examples(representative_data, specs, calibration_samples)
    if mode in CALIBRATED_MODES and samples is None and not (mode == "int8" and is_quantization_aware(model)):
        raise ValueError(
            f"{mode} export needs `representative_data` to calibrate the value ranges, e.g. "
            "representative_data=x_train[:300]"
            + ("; or train the model with tfc.quantize.qat first." if mode == "int8" else ".")
        )
    if mode == "int16x8":
        warnings.warn(
            "int16x8 models are not delegated to XNNPACK: LiteRT runs them on its reference kernels, "
            f"{_MEASURED_SLOWDOWN['int16x8']} on the MNIST CNN of benchmarks/export_modes.py. "
            "Use it for accuracy-sensitive models that run rarely, or measure first with tfc.export.benchmark.",
            stacklevel=2,
        )

    model, batch_size, notes = recurrent.prepare(model, mode in CALIBRATED_MODES, batch_size)
    augmentation = _augmentation.left_out_at_inference(model)
    if augmentation:
        notes.append((f"The augmentation layers {augmentation} act in training only; at inference they pass the "
                      "image on as it is, so they are not in the file.", False))  # fmt: skip
    for note, worth_a_warning in notes:
        if worth_a_warning:
            warnings.warn(note, stacklevel=2)
    if float_layers is not None:
        measured_task = _tasks.infer(model, task=task)
        calibration = fallback.Calibration(model, samples)
        names = fallback.choose_float_layers(calibration.errors, float_layers)
    control = None
    try:
        with warnings.catch_warnings():
            # The I/O scale and zero point come from calibration or QAT ranges, as wanted.
            warnings.filterwarnings("ignore", message="Statistics for quantized inputs were expected")
            if controlled:
                plain = lambda candidate: _convert(candidate, mode, io_dtype, samples, sparse, batch_size)  # noqa: E731
                content, control = accuracy_control.control(model, samples, target, x_val, y_val, plain, measured_task)
                cost = None
            elif float_layers is None:
                content, cost = _convert(model, mode, io_dtype, samples, sparse, batch_size), None
            else:
                content, cost = _convert_with_fallback(model, samples, calibration, names, measured_task)
    except accuracy_control.AccuracyTargetError:
        raise
    except Exception as error:  # The converter raises ConverterError, ValueError and others.
        layer = _errors.culprit(error, model)
        at = f" at layer {layer!r}" if layer else ""
        raise RuntimeError(
            f"The TFLite converter could not convert {model.name!r} to {mode}{at}: {_errors.summary(error)}. "
            f"Nothing was written to {path}."
        ) from error
    try:
        interpreter = load_interpreter(content)
    except XNNPackRefusedError:
        interpreter = load_interpreter(content, xnnpack=False)
        warnings.warn(
            f"The sparse {mode} export of {model.name!r} cannot be loaded with LiteRT's default XNNPACK delegate: "
            "an app with default settings fails to load it, and with default delegates disabled it runs on "
            f"built-in kernels ({_MEASURED_SLOWDOWN['sparse']} on the MNIST CNN of "
            "benchmarks/export_modes.py). Export with sparse=False unless the app is built for it.",
            stacklevel=2,
        )
    except ValueError as error:
        raise RuntimeError(
            f"The converter's {mode} file of {model.name!r} cannot be used. {error} Nothing was written to {path}."
        ) from error
    if control:
        print(control["summary"])
    if kept_float:
        quantized = integer_weights_of(content, kept_float)
        if quantized:
            warnings.warn(
                f"The converter stored {quantized} of {model.name!r} in int8 although tfc.quantize.qat kept "
                "them in float: with int8 layers on both sides, it quantizes the layer between them too. "
                "`float_layers` keeps a layer float at the model's input or output ('first', 'last').",
                stacklevel=2,
            )
        kept_float = [name for name in kept_float if name not in quantized]
        if kept_float:
            notes.append((f"Layers kept in float as tfc.quantize.qat(float_layers=...) asked: {kept_float}.", False))
    elif mode == "int8" and float_layers is None and not (control and control["float_layers"]):
        _check_integer_only(interpreter, model.name, calibrated=samples is not None)
    if mode != "int16x8" and not sparse:  # both warned already
        _warn_if_off_the_fast_path(interpreter, model.name, mode)
    _files.write_atomically(path, content, overwrite=overwrite)
    return ExportResult(
        path=path,
        mode=mode,
        bytes=len(content),
        gzip_bytes=len(gzip.compress(content, compresslevel=9)),
        input_dtype=np.dtype(interpreter.get_input_details()[0]["dtype"]).name,
        output_dtype=np.dtype(interpreter.get_output_details()[0]["dtype"]).name,
        fallback=cost,
        notes=tuple(note for note, _ in notes),
        accuracy_control=control,
    )


def _default_io_dtype(mode, specs) -> str:
    """uint8 for an int8 model of images (camera pixels as they are); float32 for any other I/O."""
    images = all(not spec.integer and len(spec.shape) == 3 and spec.shape[-1] in (1, 3, 4) for spec in specs)
    return EXPORT_MODES[mode][0] if mode != "int8" or images else "float32"


def _check_fallback_request(model, mode, io_dtype, representative_data, sparse, batch_size):
    if mode != "int8" or representative_data is None or is_quantization_aware(model):
        raise ValueError(
            "`float_layers` works in int8 mode with `representative_data`, on a model that is not "
            "quantization-aware: the per-layer errors come from calibrating it. "
            f"Received: mode={mode!r}, representative_data={'given' if representative_data is not None else None}, "
            f"quantization-aware={is_quantization_aware(model)}."
        )
    if io_dtype not in (None, "float32") or sparse or batch_size is not None:
        raise ValueError(
            "A file with float layers has float32 I/O, a dynamic batch and no sparse encoding; "
            "leave `io_dtype`, `batch_size` and `sparse` at their defaults with `float_layers`."
        )


def _check_kept_float_request(model, kept_float, io_dtype, representative_data):
    if representative_data is not None:
        raise ValueError(
            f"{model.name!r} keeps {kept_float} in float, as tfc.quantize.qat(float_layers=...) asked, and calibrating "
            "on `representative_data` would quantize them to int8 too. Remove `representative_data`: the "
            "quantization-aware layers use the ranges they learned."
        )
    if io_dtype not in (None, "float32"):
        raise ValueError(
            f"{model.name!r} keeps {kept_float} in float, so its file reads and writes float32; "
            f"leave `io_dtype` at its default. Received: io_dtype={io_dtype!r}"
        )


def _check_control_request(model, mode, io_dtype, representative_data, sparse, batch_size, float_layers):
    if mode != "int8" or representative_data is None or is_quantization_aware(model):
        raise ValueError(
            "Accuracy control (`max_accuracy_drop`, `min_agreement`) works in int8 mode with "
            "`representative_data`, on a model that is not quantization-aware: it calibrates, measures, and keeps "
            "layers in float where int8 costs too much. To check a QAT model's file, use tfc.export.verify. "
            f"Received: mode={mode!r}, representative_data={'given' if representative_data is not None else None}, "
            f"quantization-aware={is_quantization_aware(model)}."
        )
    if float_layers is not None:
        raise ValueError(
            "Pass either `float_layers` (you choose the float layers) or an accuracy target (the export chooses "
            "them), not both."
        )
    if io_dtype not in (None, "float32") or sparse or batch_size is not None:
        raise ValueError(
            "An accuracy-controlled file has float32 I/O, a dynamic batch and no sparse encoding; leave "
            "`io_dtype`, `batch_size` and `sparse` at their defaults with `max_accuracy_drop`/`min_agreement`."
        )


def _convert_with_fallback(model, samples, calibration, names, task):
    """The int8 file with the layers `names` in float, and what that cost against an all-int8 file."""
    content = calibration.convert(names)
    all_int8 = calibration.convert([])
    cost = {
        "float_layers": names,
        "layer_errors": calibration.errors["layers"],
        "all_int8_bytes": len(all_int8),
        "bytes": len(content),
        "all_int8_agreement": fallback.agreement(all_int8, model, samples, task),
        "agreement": fallback.agreement(content, model, samples, task),
    }
    return content, cost


def _convert(model, mode, io_dtype, samples, sparse, batch_size) -> bytes:
    """The `.tflite` bytes from the TFLite converter, then the LiteRT quantizer for its modes."""
    converter = _converter(model, batch_size)
    quantizer_mode = mode in weight_quantization.RECIPES
    # The LiteRT quantizer starts from the float32 file.
    _configure(converter, "float32" if quantizer_mode else mode, io_dtype, samples, sparse, model.input_names)
    content = converter.convert()
    return weight_quantization.quantize(content, mode) if quantizer_mode else content


def _converter(model, batch_size):
    """A converter for `model`'s inference graph, with its input and output names and batch size."""
    output_names = list(model.output_names)
    if is_quantization_aware(model):
        output_names = [name.removeprefix(_QAT_PREFIX) for name in output_names]
    input_specs_ = [
        tf.TensorSpec((batch_size,) + tuple(tensor.shape[1:]), tensor.dtype, name=name)
        for name, tensor in zip(model.input_names, model.inputs)
    ]

    @tf.function
    def serve(*inputs):
        outputs = model(list(inputs) if len(inputs) > 1 else inputs[0], training=False)
        return dict(zip(output_names, outputs if isinstance(outputs, (list, tuple)) else [outputs]))

    return tf.lite.TFLiteConverter.from_concrete_functions([serve.get_concrete_function(*input_specs_)], model)


def _configure(converter, mode, io_dtype, samples, sparse, names):
    """Sets the converter's options for `mode`."""
    converter.optimizations = [tf.lite.Optimize.EXPERIMENTAL_SPARSITY] if sparse else []
    if mode == "float32":
        return
    converter.optimizations.append(tf.lite.Optimize.DEFAULT)
    if mode == "float16":
        converter.target_spec.supported_types = [tf.float16]
        return
    if mode == "dynamic":
        return
    converter.inference_input_type = _IO_DTYPES[io_dtype]
    converter.inference_output_type = _IO_DTYPES[io_dtype]
    if samples is not None:
        # By name for several inputs (the converter does not keep their order); a list for one.
        converter.representative_dataset = fallback.examples(samples, names if len(samples) > 1 else None)
    if mode == "int16x8":
        int16_activations = tf.lite.OpsSet.EXPERIMENTAL_TFLITE_BUILTINS_ACTIVATIONS_INT16_WEIGHTS_INT8
        converter.target_spec.supported_ops = [int16_activations]
    elif samples is not None:
        # TF 2.21 rejects this setting for QAT models without calibration data, so the
        # integer-only check after conversion covers both cases.
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]


def _warn_if_off_the_fast_path(interpreter, model_name, mode):
    slow = costly_undelegated_ops(interpreter)
    if slow:
        warnings.warn(
            f"{len(slow)} ops of the {mode} export of {model_name!r} are not delegated to XNNPACK "
            f"({sorted(set(slow))}); LiteRT runs them on reference kernels, many times slower on a phone's CPU. "
            "tfc.export.inspect(path) lists them; replace those layers or try another mode.",
            stacklevel=3,
        )


def _check_integer_only(interpreter, model_name: str, calibrated: bool) -> None:
    floating = float_compute_ops(interpreter)
    if floating:
        fix = (
            "Replace the layers behind them with ones that have int8 kernels, or export in float32."
            if calibrated
            else "Pass representative_data so layers outside quantization-aware training get calibrated too."
        )
        raise RuntimeError(
            f"The int8 export of {model_name!r} would still compute in float in {len(floating)} ops "
            f"(first: {floating[:3]}). {fix} Nothing was written."
        )
