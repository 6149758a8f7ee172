"""Converting a Keras model to a `.tflite` file in any of the converter's modes, int8 for Android by default."""

import dataclasses
import gzip
import warnings

import numpy as np

from tfcompress import _augmentation, _errors, _files, _tasks
from tfcompress._choices import (
    CALIBRATED_MODES,
    EXPORT_MODES,
    IO_DTYPES,
    ROUNDING_METHODS,
    WEIGHT_CALIBRATION_METHODS,
)
from tfcompress._keras import tf
from tfcompress._keras3 import is_keras3_model
from tfcompress._keras3_bridge import from_keras3
from tfcompress._keras3_layers import for_conversion as keras3_for_conversion
from tfcompress._model_guards import graph_model
from tfcompress._models import all_layers
from tfcompress._models import input_names as input_names_of
from tfcompress._models import output_names as output_names_of
from tfcompress._results import Result
from tfcompress.data.arrays import input_specs
from tfcompress.export import (
    accuracy_control,
    layer_precision,
    quantization_errors,
    range_search,
    recurrent,
    weight_quantization,
)
from tfcompress.export.calibration import calibration_examples
from tfcompress.litert.inspection import costly_undelegated_ops, float_compute_ops, integer_weights_of
from tfcompress.litert.interpreter import XNNPackRefusedError, load_interpreter
from tfcompress.quantize import is_quantization_aware
from tfcompress.quantize.learned_rounding import adaround
from tfcompress.quantize.quantization_aware import not_finite_ranges, requested_float_layers
from tfcompress.quantize.weight_clipping import clip_weights

_IO_DTYPES = {name: tf.as_dtype(name) for name in IO_DTYPES}
_SPARSE_MODES = ("float32", "dynamic", "int8")
# Keras 3's recurrent layers, which the export prepares in tf_keras (a fixed batch, loops unrolled).
_RECURRENT = ("LSTM", "GRU", "SimpleRNN", "Bidirectional", "RNN")
# TF-MOT names the wrapper of layer "scores" "quant_scores"; the file keeps the layer's name.
_QAT_PREFIX = "quant_"


@dataclasses.dataclass(frozen=True)
class FloatFallback(Result):
    """What keeping layers in float cost (`ExportResult.fallback`).

    Attributes:
      float_layers: the Keras layers kept in float.
      layer_errors: every quantized op's int8 error, as `tfc.export.layer_errors` gives it.
      all_int8_bytes, bytes: the file's size without and with the layers in float.
      all_int8_agreement, agreement: the share of decisions alike with the Keras model on the calibration
        examples, without and with them (None for regression or an output whose task cannot be told).
    """

    float_layers: list
    layer_errors: list
    all_int8_bytes: int
    bytes: int
    all_int8_agreement: float
    agreement: float


@dataclasses.dataclass(frozen=True)
class ExportResult(Result):
    """What `to_tflite` wrote.

    Attributes:
      path: absolute path of the `.tflite` file.
      mode: the conversion mode ("int8", "float32", "float16", "dynamic" or "int16x8").
      bytes: size of the file.
      gzip_bytes: size of the file gzip-compressed (what an app download costs).
      input_dtype: element type of the model's (first) input tensor.
      output_dtype: element type of the model's (first) output tensor.
      notes: what the export changed to make the model convertible (a batch fixed to 1
        for recurrent layers, loops unrolled), one sentence each.
      fallback: with `float_layers`, a `FloatFallback`: what keeping them in float cost; else None.
      accuracy_control: from `with_accuracy_control`, an `AccuracyControl`: what it measured and chose.

    Examples:
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
    batch_size: int = None,
    sparse: bool = False,
    float_layers=None,
    overwrite: bool = False,
    **options,
) -> ExportResult:
    """Converts `model` with the TFLite converter and writes the `.tflite` file to `path` atomically.

    Modes: "int8" (default; full integer, calibrated on `representative_data` or with a quantization-aware
    model's learned ranges), "float32", "float16", "dynamic", "int16x8", and with the `quantizer` extra
    "weights_int8", "weights_int4", "dynamic_int4". See the export guide for what each costs.

    Args:
      model: a built Sequential or functional Keras 2 model (several inputs and outputs allowed).
      path: where to write the `.tflite` file.
      mode: one of the modes above.
      representative_data: calibration inputs for "int8" and "int16x8": an array, a batched `tf.data.Dataset`
        or a generator (the first 500 examples are used); a list or dict of them for several inputs.
      io_dtype: type of the float inputs and outputs: "uint8", "int8" or "float32" for int8 (default "uint8"
        for images, else "float32"); "float32" or "int16" for int16x8.
      batch_size: None keeps the batch dynamic; an int fixes it, as GPU and NPU delegates prefer.
      sparse: store pruned kernels in the sparse encoding (XNNPACK refuses such a file; a warning says so).
      float_layers: names of Keras layers to keep in float in an int8 file (`tfc.export.layer_errors` ranks
        them); the file then has float32 I/O and `ExportResult.fallback` says what it cost.
      overwrite: replace an existing file at `path`.
      **options: for int8, `calibration` ("minmax", the default, "percentile", "mse" or "kl": how each
        activation's range is picked), `weight_calibration` ("minmax" or "mse": each kernel channel's range) and
        `rounding` ("nearest" or "adaround"); `int16_layers` and `int4_layers`:
        layer names whose activations are int16 (with the layers that read them) and whose weights are int4, in
        one integer file with float32 I/O, built by the LiteRT quantizer (`quantizer` extra; a note says which
        layers got what); see the quantization guide.
        Deprecated: `validation_data`, `max_accuracy_drop`, `min_agreement`, `task`, `calibration_samples`.

    Returns:
      An `ExportResult`: the path, mode, byte and gzip sizes, I/O types and notes.

    Raises:
      TypeError: `model` is not a Keras 2 model, or an unknown keyword argument.
      ValueError: `mode`, `io_dtype`, `batch_size` or `sparse` is unknown or mismatched; representative data
        is missing, not allowed, empty, non-numeric, NaN or wrongly shaped.
      FileExistsError: `path` exists and `overwrite` is False.
      ImportError: the mode needs the LiteRT quantizer, which is not installed.
      RuntimeError: the converter could not convert the model, or built a file LiteRT cannot use.

    Examples:
      >>> result = tfc.export.to_tflite(model, "model.tflite", representative_data=x_train[:300])
      >>> result.bytes, result.input_dtype
    """
    _check_deprecated_options(options, float_layers)
    return export(model, path, mode=mode, representative_data=representative_data, io_dtype=io_dtype,
                  batch_size=batch_size, sparse=sparse, float_layers=float_layers, overwrite=overwrite,
                  **options)  # fmt: skip


def with_accuracy_control(
    model,
    path,
    *,
    representative_data=None,
    validation_data=None,
    max_accuracy_drop: float = None,
    min_agreement: float = None,
    allow_float: bool = False,
    budget: dict = None,
    overwrite: bool = False,
    **options,
) -> ExportResult:
    """Writes the integer file closest to `model` that meets an accuracy target, with layers in float only if allowed.

    int8 files with each range-picking method, cross-layer equalization, bias correction and AdaRound are
    measured in LiteRT on `validation_data`, then int16 activations, then (with `allow_float`) the fewest
    layers in float; the closest file that meets the target and the budget is kept (see the quantization guide).

    Args:
      model: a built Keras 2 model that is not quantization-aware.
      path: where to write the `.tflite` file (float32 I/O).
      representative_data: calibration inputs, as `to_tflite` takes them.
      validation_data: held-out `(x, y)` with labels as you hold them; `x` alone for `min_agreement`.
      max_accuracy_drop: the largest loss allowed in (0, 1): accuracy points (0.005 = half a point), or for a
        regression the relative rise of the mean absolute error.
      min_agreement: the smallest share of decisions equal to the Keras model's, in (0, 1); no labels needed.
      allow_float: let layers stay in float when no integer-only file meets the target.
      budget: `{"bytes": ..., "latency": ...}`: the file's largest size, and its largest 1-thread latency as a
        multiple of the plain int8 file's; either may be left out.
      overwrite: replace an existing file at `path`.
      **options: `task` (the first output's "multiclass", "binary", "multilabel" or "regression"; inferred by
        default) and `verbose` (print what was tried and chosen).

    Returns:
      An `ExportResult` whose `accuracy_control` says what was measured, tried and chosen.

    Raises:
      ValueError: no target, a target outside (0, 1), a malformed budget, validation data or labels that do
        not fit the model, or a quantization-aware model.
      FileExistsError: `path` exists and `overwrite` is False.
      AccuracyTargetError: no file tried meets the target within the budget; nothing is written.

    Examples:
      >>> result = tfc.export.with_accuracy_control(model, "model.tflite", representative_data=x_train[:300],
      ...                                           validation_data=(x_val, y_val), max_accuracy_drop=0.005)
      >>> result.accuracy_control.chosen
    """
    if max_accuracy_drop is None and min_agreement is None:
        raise ValueError(
            "with_accuracy_control needs a target: max_accuracy_drop=0.005 (half a point of accuracy) or "
            "min_agreement=0.99 (the share of decisions kept). For a plain int8 file, use tfc.export.to_tflite."
        )
    unknown = sorted(set(options) - {"task", "verbose"})
    if unknown:
        raise TypeError(
            f"with_accuracy_control() got unexpected keyword arguments {unknown}. Besides its named arguments it "
            "takes task= and verbose=."
        )
    options.setdefault("verbose", False)
    return export(model, path, representative_data=representative_data, validation_data=validation_data,
                  max_accuracy_drop=max_accuracy_drop, min_agreement=min_agreement, allow_float=allow_float,
                  budget=budget, overwrite=overwrite, **options)  # fmt: skip


def export(model, path, *, mode="int8", representative_data=None, io_dtype=None, overwrite=False,
           calibration_samples=500, batch_size=None, sparse=False, float_layers=None, validation_data=None,
           max_accuracy_drop=None, min_agreement=None, task=None, verbose=True, calibration="minmax",
           rounding="nearest", allow_float=True, budget=None, int16_layers=None,
           int4_layers=None, weight_calibration="minmax") -> ExportResult:  # fmt: skip
    """`to_tflite` and `with_accuracy_control`, with every option the two share and the deprecated ones."""
    model = graph_model(model)
    keras2_only = (calibration != "minmax" or weight_calibration != "minmax" or rounding != "nearest"
                   or float_layers is not None or int16_layers is not None or int4_layers is not None
                   or max_accuracy_drop is not None or min_agreement is not None)  # fmt: skip
    model, rebuilt = _for_the_route(model, keras2_only)
    if mode not in EXPORT_MODES:
        raise ValueError(f"`mode` must be one of {tuple(EXPORT_MODES)}. Received: mode={mode!r}")
    _check_int8_methods(model, mode, (calibration, weight_calibration, rounding), representative_data, sparse)
    if float_layers is not None:
        _check_fallback_request(model, mode, io_dtype, representative_data, sparse, batch_size)
        io_dtype = "float32"
    precise = int16_layers is not None or int4_layers is not None
    if precise:
        request = dict(io_dtype=io_dtype, sparse=sparse, batch_size=batch_size, float_layers=float_layers,
                       calibration=calibration, rounding=rounding, weight_calibration=weight_calibration,
                       target=max_accuracy_drop if max_accuracy_drop is not None else min_agreement)  # fmt: skip
        _check_precision_request(model, mode, representative_data, request)
        int16_layers, int4_layers = layer_precision.check_names(model, int16_layers, int4_layers)
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
        budget = accuracy_control.Budget.checked(budget)
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
    broken = not_finite_ranges(model) if is_quantization_aware(model) else []
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
        range_search.check_examples(calibration, len(samples[0]))
    if mode in CALIBRATED_MODES and samples is None and not (mode == "int8" and is_quantization_aware(model)):
        raise ValueError(
            f"{mode} export needs `representative_data` to calibrate the value ranges, e.g. "
            "representative_data=x_train[:300]"
            + ("; or train the model with tfc.quantize.qat first." if mode == "int8" else ".")
        )
    if mode == "int16x8":
        warnings.warn(
            "int16x8 models are not delegated to XNNPACK: LiteRT runs them on its reference kernels, many times "
            "slower than int8 or float32 on a CPU. Use it for accuracy-sensitive models that run rarely, and time "
            "it first with tfc.litert.benchmark.",
            stacklevel=2,
        )

    model, batch_size, notes = recurrent.prepare(model, mode in CALIBRATED_MODES, batch_size)
    notes = rebuilt + notes
    augmentation = _augmentation.left_out_at_inference(model)
    if augmentation:
        notes.append((f"The augmentation layers {augmentation} act in training only; at inference they pass the "
                      "image on as it is, so they are not in the file.", False))  # fmt: skip
    for note, worth_a_warning in notes:
        if worth_a_warning:
            warnings.warn(note, stacklevel=2)
    if weight_calibration == "mse":
        model, _ = clip_weights(model)
    if rounding == "adaround":
        model, _ = adaround(model, samples if len(samples) > 1 else samples[0])
    if float_layers is not None:
        try:
            measured_task = _tasks.infer(model, task=task)
        except _tasks.UnknownTaskError:
            measured_task = None  # the fallback's cost is then said in bytes only
        debugged = quantization_errors.Calibration(model, samples, calibration)
        names = quantization_errors.choose_float_layers(debugged.errors, float_layers)
    control = None
    try:
        with warnings.catch_warnings():
            # The I/O scale and zero point come from calibration or QAT ranges, as wanted.
            warnings.filterwarnings("ignore", message="Statistics for quantized inputs were expected")
            if controlled:
                def convert(candidate, method, candidate_mode):
                    return _convert(candidate, candidate_mode, io_dtype, samples, sparse, batch_size, method)

                content, control = accuracy_control.control(model, samples, target, x_val, y_val, convert,
                                                            measured_task, allow_float, budget)  # fmt: skip
                cost = None
            elif precise:
                content, precise_words = _convert_with_precision(model, samples, int16_layers, int4_layers)
                notes.append((precise_words, False))
                cost = None
            elif float_layers is None:
                content = _convert(model, mode, io_dtype, samples, sparse, batch_size, calibration)
                cost = None
            else:
                content, cost = _convert_with_fallback(model, samples, debugged, names, measured_task)
    except (accuracy_control.AccuracyTargetError, layer_precision.LayerChoiceError):
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
            "built-in kernels, several times slower than the dense int8 file. Export with sparse=False unless the "
            "app is built for it.",
            stacklevel=2,
        )
    except ValueError as error:
        if precise:
            raise RuntimeError(
                f"The LiteRT quantizer's file of {model.name!r} with int16_layers={int16_layers} and "
                f"int4_layers={int4_layers} cannot be used. {error} LiteRT lacks some int16 kernels next to int8 "
                f"ones: choose other layers, or export without them. Nothing was written to {path}."
            ) from error
        raise RuntimeError(
            f"The converter's {mode} file of {model.name!r} cannot be used. {error} Nothing was written to {path}."
        ) from error
    if control and verbose:
        print(control.summary)
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
    elif mode == "int8" and float_layers is None and not (control and control.float_layers):
        _check_integer_only(interpreter, model.name, calibrated=samples is not None, by_quantizer=precise)
    if precise:
        notes.append(("Layers with int16 activations, and convolutions with int4 weights, run on LiteRT's reference "
                      "kernels, off XNNPACK: time the file with tfc.litert.benchmark.", False))  # fmt: skip
    elif mode != "int16x8" and not sparse:  # both warned already
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


# to_tflite's keywords that moved to with_accuracy_control, or that slicing the data replaces.
_EXPORT_OPTIONS = {
    "validation_data": "tfc.export.with_accuracy_control(model, path, representative_data=..., validation_data=...)",
    "max_accuracy_drop": "tfc.export.with_accuracy_control(..., max_accuracy_drop=...)",
    "min_agreement": "tfc.export.with_accuracy_control(..., min_agreement=...)",
    "task": "tfc.export.with_accuracy_control(..., task=...) (to_tflite infers it)",
    "calibration_samples": "representative_data=x[:500] (the first 500 examples are used by default)",
}


# to_tflite's int8 options passed on to `export`, which checks them.
_INT8_OPTIONS = ("calibration", "weight_calibration", "rounding", "int16_layers", "int4_layers")


def _check_deprecated_options(options: dict, float_layers) -> None:
    """Warns once per deprecated `to_tflite` keyword, naming its replacement; an unknown keyword is a TypeError."""
    unknown = sorted(set(options) - set(_EXPORT_OPTIONS) - set(_INT8_OPTIONS))
    if unknown:
        raise TypeError(
            f"to_tflite() got unexpected keyword arguments {unknown}. It takes mode, representative_data, io_dtype, "
            "batch_size, sparse, float_layers, overwrite, calibration, weight_calibration, rounding, int16_layers "
            "and int4_layers; "
            "accuracy targets go to "
            "tfc.export.with_accuracy_control."
        )
    for name in set(options) & set(_EXPORT_OPTIONS):
        warnings.warn(
            f"to_tflite's `{name}` is deprecated and goes in the next release; use {_EXPORT_OPTIONS[name]}.",
            DeprecationWarning,
            stacklevel=3,
        )
    if float_layers is not None and not isinstance(float_layers, (list, tuple, str)):
        warnings.warn(
            "to_tflite's float_layers takes layer names; a count or an error threshold is deprecated and goes in "
            "the next release. Rank the layers with tfc.export.layer_errors(model, data) and pass the names.",
            DeprecationWarning,
            stacklevel=3,
        )


def _for_the_route(model, keras2_only: bool):
    """`(model, notes)`: a Keras 3 model as it is, or rebuilt in tf_keras for the routes that work on TF-MOT's Keras.

    Range searches, AdaRound, weight clipping, float and per-layer precision and accuracy control read tf_keras
    models, as do the recurrent layers' preparations; the file is the same model's either way.
    """
    if not is_keras3_model(model) or is_quantization_aware(model):
        return model, []
    if not keras2_only and not any(type(layer).__name__ in _RECURRENT for layer in all_layers(model)):
        return model, []
    rebuilt = from_keras3(model)
    return rebuilt, [(f"Exported from {model.name!r} rebuilt in tf_keras (tfc.from_keras3: the same layers and "
                      "weights, its outputs checked equal), which this export's options work on.", False)]  # fmt: skip


def _default_io_dtype(mode, specs) -> str:
    """uint8 for an int8 model of images (camera pixels as they are); float32 for any other I/O."""
    images = all(not spec.integer and len(spec.shape) == 3 and spec.shape[-1] in (1, 3, 4) for spec in specs)
    return EXPORT_MODES[mode][0] if mode != "int8" or images else "float32"


def _check_int8_methods(model, mode, methods, representative_data, sparse):
    calibration, weight_calibration, rounding = methods
    range_search.check_method(calibration)
    if sparse and calibration != "minmax":
        raise ValueError(
            f"`sparse=True` encodes the converter's own int8 file; with calibration={calibration!r} the file is "
            "quantized from edited ranges, which the sparse encoding does not support here. Export with "
            'sparse=False, or with calibration="minmax".'
        )
    if rounding not in ROUNDING_METHODS:
        raise ValueError(f"`rounding` must be one of {ROUNDING_METHODS}. Received: rounding={rounding!r}")
    if weight_calibration not in WEIGHT_CALIBRATION_METHODS:
        raise ValueError(
            f"`weight_calibration` must be one of {WEIGHT_CALIBRATION_METHODS}: each kernel channel's largest "
            f"|weight|, or the range of least squared error. Received: weight_calibration={weight_calibration!r}"
        )
    if calibration != "minmax" or rounding != "nearest" or weight_calibration != "minmax":
        _require_post_training_int8(
            model, mode, representative_data,
            f"calibration={calibration!r}, weight_calibration={weight_calibration!r} and rounding={rounding!r} "
            "choose int8 ranges and weights from `representative_data`: they work in int8 mode, with "
            "representative data, on a model that is not quantization-aware (whose ranges and weights were learned)",
        )  # fmt: skip


def _require_post_training_int8(model, mode, representative_data, words) -> None:
    """A clear error, `words` first, unless int8 is calibrated on representative data for a model without QAT."""
    if mode != "int8" or representative_data is None or is_quantization_aware(model):
        raise ValueError(
            f"{words}. Received: mode={mode!r}, "
            f"representative_data={'given' if representative_data is not None else None}, "
            f"quantization-aware={is_quantization_aware(model)}."
        )


def _check_fallback_request(model, mode, io_dtype, representative_data, sparse, batch_size):
    _require_post_training_int8(
        model, mode, representative_data,
        "`float_layers` works in int8 mode with `representative_data`, on a model that is not quantization-aware: "
        "the per-layer errors come from calibrating it",
    )  # fmt: skip
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
    _require_post_training_int8(
        model, mode, representative_data,
        "Accuracy control (`max_accuracy_drop`, `min_agreement`) works in int8 mode with `representative_data`, on "
        "a model that is not quantization-aware: it calibrates, measures, and keeps layers in float where int8 "
        "costs too much. To check a QAT model's file, use tfc.litert.verify",
    )  # fmt: skip
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


def _check_precision_request(model, mode, representative_data, request):
    layer_precision.check_available()
    _require_post_training_int8(
        model, mode, representative_data,
        "`int16_layers` and `int4_layers` work in int8 mode with `representative_data`, on a model that is not "
        "quantization-aware: the LiteRT quantizer calibrates the float file on it",
    )  # fmt: skip
    given = {name: value for name, value in request.items()
             if value not in (None, False, "minmax", "nearest", "float32")}  # fmt: skip
    if given:
        raise ValueError(
            "`int16_layers`/`int4_layers` files are built by the LiteRT quantizer from its own min-max ranges, with "
            "float32 I/O, a dynamic batch and nothing in float; they do not combine with "
            f"{sorted(given)}. Received: {given}."
        )


def _convert_with_precision(model, samples, int16_layers, int4_layers):
    """The integer file with int16 activations in `int16_layers` (and their readers), int4 weights in `int4_layers`;
    and a note that says which layers got what."""
    float_content = _convert(model, "float32", "float32", samples, False, None)
    precision = layer_precision.LayerPrecision(model, float_content, samples)
    precision.check_in_file(int16_layers + int4_layers)
    int16 = precision.with_readers(int16_layers) if int16_layers else []
    content = precision.convert(int16_layers=int16, int4_layers=int4_layers)
    readers = [name for name in int16 if name not in int16_layers]
    words = [f"int16 activations in {int16}" + (f" ({readers} read the named layers)" if readers else "")] * bool(int16)
    words += [f"int4 weights in {int4_layers}"] * bool(int4_layers)
    return content, "Layer precision: " + "; ".join(words) + "; every other layer int8."


def _convert_with_fallback(model, samples, calibration, names, task):
    """The int8 file with the layers `names` in float, and what that cost against an all-int8 file."""
    content = calibration.convert(names)
    all_int8 = calibration.convert([])
    cost = FloatFallback(
        float_layers=names,
        layer_errors=calibration.errors["layers"],
        all_int8_bytes=len(all_int8),
        bytes=len(content),
        all_int8_agreement=quantization_errors.agreement(all_int8, model, samples, task),
        agreement=quantization_errors.agreement(content, model, samples, task),
    )
    return content, cost


def _convert(model, mode, io_dtype, samples, sparse, batch_size, calibration="minmax") -> bytes:
    """The `.tflite` bytes from the TFLite converter, then the LiteRT quantizer for its modes."""
    quantizer_mode = mode in weight_quantization.RECIPES
    options = (mode, io_dtype, samples, sparse, batch_size, calibration)
    try:
        content = _converted(model, *options, variables_only=True)
    except Exception as error:
        # A resource the variables do not hold (a lookup table) reaches the converter as a bare placeholder, or
        # saving refuses it as untracked: convert with the whole model, whose error then names the op.
        if not any(sign in str(error) for sign in ("Placeholder", "untracked")):
            raise
        content = _converted(model, *options, variables_only=False)
    return weight_quantization.quantize(content, mode) if quantizer_mode else content


def _converted(model, mode, io_dtype, samples, sparse, batch_size, calibration, variables_only) -> bytes:
    converter = _converter(model, batch_size, variables_only)
    # The LiteRT quantizer starts from the float32 file.
    quantizer_mode = mode in weight_quantization.RECIPES
    names = input_names_of(model)
    _configure(converter, "float32" if quantizer_mode else mode, io_dtype, samples, sparse, names)
    if calibration == "minmax":
        return converter.convert()
    return range_search.quantized(converter, calibration, samples, names, io_dtype)


def _converter(model, batch_size, variables_only=True):
    """A converter for `model`'s inference graph (either Keras), with its input and output names and batch size."""
    output_names = output_names_of(model)
    if is_quantization_aware(model) and not is_keras3_model(model):
        output_names = [name.removeprefix(_QAT_PREFIX) for name in output_names]
    input_specs_ = [
        tf.TensorSpec((batch_size,) + tuple(tensor.shape[1:]), tensor.dtype, name=name)
        for name, tensor in zip(input_names_of(model), model.inputs)
    ]

    traced = keras3_for_conversion(model) if is_keras3_model(model) else model

    @tf.function
    def serve(*inputs):
        outputs = traced(list(inputs) if len(inputs) > 1 else inputs[0], training=False)
        return dict(zip(output_names, outputs if isinstance(outputs, (list, tuple)) else [outputs]))

    # The converter saves what it is handed as a SavedModel first. Handed the Keras model, it serializes every
    # layer (over a minute for a large QAT model); the variables are all most graphs read. They are the traced
    # copy's: held by nothing else, they would be deleted before the converter reads them.
    holder = traced
    if variables_only:
        holder = tf.Module()
        variables = list(traced.variables)
        # A Keras 3 variable holds its TensorFlow variable in `value`.
        holder.variables_read = [variable.value for variable in variables] if is_keras3_model(model) else variables
    return tf.lite.TFLiteConverter.from_concrete_functions([serve.get_concrete_function(*input_specs_)], holder)


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
        converter.representative_dataset = quantization_errors.examples(samples, names if len(samples) > 1 else None)
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
            "tfc.litert.inspect(path) lists them; replace those layers or try another mode.",
            stacklevel=3,
        )


def _check_integer_only(interpreter, model_name: str, calibrated: bool, by_quantizer: bool = False) -> None:
    floating = float_compute_ops(interpreter)
    if floating:
        fix = (
            "Replace the layers behind them with ones that have int8 kernels, or export in float32."
            if calibrated
            else "Pass representative_data so layers outside quantization-aware training get calibrated too."
        )
        if by_quantizer:
            fix = ("The LiteRT quantizer, which builds files with int16_layers or int4_layers, has no int8 recipe "
                   "for them; the converter's int8 file (without those options) quantizes them.")  # fmt: skip
        raise RuntimeError(
            f"The int8 export of {model_name!r} would still compute in float in {len(floating)} ops "
            f"(first: {floating[:3]}). {fix} Nothing was written."
        )
