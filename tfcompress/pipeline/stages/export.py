"""The `export` stage: write the `.tflite` (int8 from QAT ranges, or calibrated post-training) and verify it.

With `android_labels`, also the Android bundle: metadata, labels and an I/O description.
With `max_accuracy_drop` or `min_agreement`, accuracy control (`tfc.export.with_accuracy_control`)
measures its candidates on the last training examples, not on the test set, so the
report's rows, measured on the test set, show the target's effect on data it did not
choose from.
"""

from tfcompress import export
from tfcompress._checks import check_that
from tfcompress._choices import (
    CALIBRATED_MODES,
    CALIBRATION_METHODS,
    EXPORT_MODES,
    IO_DTYPES,
    ROUNDING_METHODS,
    WEIGHT_CALIBRATION_METHODS,
)
from tfcompress.export.accuracy_control import Budget
from tfcompress.export.quantization_errors import choose_float_layers
from tfcompress.pipeline.schema import (
    Key,
    RecipeError,
    boolean,
    choice,
    is_positive_integer,
    is_real,
    number,
    positive_integer,
)
from tfcompress.pipeline.stage import Stage


def _labels(name, value):
    ok = isinstance(value, list) and value and all(isinstance(item, str) and item for item in value)
    check_that(ok, name, value, "a list of class names (non-empty strings), in output order; two for a binary task")


def _float_layers(name, value):
    names = isinstance(value, list) and all(isinstance(item, str) for item in value)
    ok = names or is_positive_integer(value) or (is_real(value) and value > 0)
    check_that(ok, name, value, "layer names, a count, or an error threshold")


def _layer_names(name, value):
    ok = isinstance(value, list) and value and all(isinstance(item, str) and item for item in value)
    check_that(ok, name, value, "a list of layer names")


def _budget(name, value):
    try:
        Budget.checked(value)
    except ValueError as error:
        raise ValueError(f"`{name}`: {error}") from None


def _pixel_range(name, value):
    check_that(isinstance(value, list) and len(value) == 2 and all(map(is_real, value)), name, value, "[low, high]")


# Accuracy control's validation examples: the last training examples, at most this many.
CONTROL_EXAMPLES = 2000


def _check(recipe):
    settings = recipe["stages"]["export"]
    post_training = "qat" not in recipe["stages"] and settings["mode"] == "int8"
    if settings["float_layers"] is not None and not post_training:
        raise RecipeError("`stages.export.float_layers` needs post-training int8: mode 'int8' and no `qat` stage.")
    controlled = settings["max_accuracy_drop"] is not None or settings["min_agreement"] is not None
    if controlled and not post_training:
        raise RecipeError(
            "`stages.export.max_accuracy_drop` and `min_agreement` control post-training int8: set mode 'int8' and "
            "remove the `qat` stage (a QAT model keeps every layer int8 and is measured in the report as it is)."
        )
    methods = (settings["calibration"], settings["weight_calibration"], settings["rounding"]) != (
        "minmax", "minmax", "nearest")  # fmt: skip
    if methods and (not post_training or controlled):
        raise RecipeError(
            "`stages.export.calibration`, `weight_calibration` and `rounding` choose post-training int8 ranges and "
            "weights: set mode "
            "'int8' with no `qat` stage, and no accuracy target (accuracy control tries every method itself)."
        )
    if controlled and settings["float_layers"] is not None:
        raise RecipeError(
            "`stages.export` takes `float_layers` (you choose) or an accuracy target (the export chooses), not both."
        )
    precise = settings["int16_layers"] is not None or settings["int4_layers"] is not None
    if precise and (not post_training or controlled or methods or settings["float_layers"] is not None):
        raise RecipeError(
            "`stages.export.int16_layers` and `int4_layers` choose post-training int8 precision per layer: set mode "
            "'int8' with no `qat` stage, no accuracy target, no `float_layers` and the default calibration and "
            "rounding (the LiteRT quantizer calibrates min-max itself)."
        )
    if settings["budget"] is not None and not controlled:
        raise RecipeError("`stages.export.budget` limits accuracy control's choice: set `max_accuracy_drop` or "
                          "`min_agreement` with it.")  # fmt: skip


def _check_labels(context, settings):
    """Before any training: the Android labels fit the task of the model's output."""
    labels, task = settings["android_labels"], context.task
    if not labels:
        return
    wanted = {"regression": 0, "binary": 2}.get(task.kind, context.model.outputs[0].shape[-1])
    if len(labels) != wanted:
        needs = "no labels (remove them)" if not wanted else f"{wanted} labels"
        raise ValueError(
            f"`stages.export.android_labels` has {len(labels)} names, but the model's output is "
            f"{task.describe()}, whose bundle needs {needs}"
            + (": [negative, positive], the second for what its score says yes to." if wanted == 2 else ".")
        )


def _validation(context, settings):
    if settings["max_accuracy_drop"] is None and settings["min_agreement"] is None:
        return None
    count = min(CONTROL_EXAMPLES, len(context.x_train) // 5)
    return context.x_train[-count:], context.y_train[-count:]


def _float_layer_names(model, data, float_layers):
    """The recipe's `float_layers` as names: a count or an error threshold picks them from the int8 errors."""
    if float_layers is None or isinstance(float_layers, list):
        return float_layers
    return choose_float_layers(export.layer_errors(model, data), float_layers) or None


def _export(context, settings):
    paths = context.paths
    qat = context.recipe["stages"].get("qat")
    # Calibrating would quantize the layers the qat stage kept in float; the rest use QAT's ranges.
    calibrated = settings["mode"] in CALIBRATED_MODES and not (qat and qat["float_layers"])
    data = context.x_train[: settings["calibration_samples"]] if calibrated else None
    validation = _validation(context, settings)
    if validation is not None:
        context.exported = export.with_accuracy_control(
            context.model,
            paths["model"],
            representative_data=data,
            validation_data=validation,
            max_accuracy_drop=settings["max_accuracy_drop"],
            min_agreement=settings["min_agreement"],
            allow_float=settings["allow_float"],
            budget=settings["budget"],
            overwrite=context.recipe["overwrite"],
            task=context.task.kind,
            verbose=True,
        )
    else:
        context.exported = export.to_tflite(
            context.model,
            paths["model"],
            mode=settings["mode"],
            io_dtype=settings["io_dtype"],
            representative_data=data,
            float_layers=_float_layer_names(context.model, data, settings["float_layers"]),
            overwrite=context.recipe["overwrite"],
            calibration=settings["calibration"],
            rounding=settings["rounding"],
            weight_calibration=settings["weight_calibration"],
            int16_layers=settings["int16_layers"],
            int4_layers=settings["int4_layers"],
        )
    control = context.exported.accuracy_control
    if control:
        context.notes["accuracy_control"] = {key: value for key, value in control.to_dict().items() if key != "summary"}
    if settings["android_labels"]:
        bundle = export.android_bundle(
            paths["model"],
            paths["android"],
            labels=settings["android_labels"],
            pixel_range=settings["pixel_range"],
            overwrite=context.recipe["overwrite"],
            task=context.task.kind,
        )
        context.notes["android"] = {key: bundle[key] for key in ("model", "labels", "json")}
    return context.model


STAGE = Stage(
    name="export",
    schema={
        "mode": choice(EXPORT_MODES, "int8"),
        "io_dtype": choice((None, *IO_DTYPES), None),
        "calibration_samples": Key(positive_integer, 500),
        "float_layers": Key(_float_layers, None),
        "calibration": choice(CALIBRATION_METHODS, "minmax"),
        "rounding": choice(ROUNDING_METHODS, "nearest"),
        "weight_calibration": choice(WEIGHT_CALIBRATION_METHODS, "minmax"),
        "max_accuracy_drop": Key(number(0, 1, low_open=True, high_open=True), None),
        "min_agreement": Key(number(0, 1, low_open=True, high_open=True), None),
        "allow_float": Key(boolean, False),
        "budget": Key(_budget, None),
        "int16_layers": Key(_layer_names, None),
        "int4_layers": Key(_layer_names, None),
        "android_labels": Key(_labels, None),
        "pixel_range": Key(_pixel_range, [0, 1]),
    },
    title=lambda s: f"Exporting {s['mode']} .tflite and verifying it in LiteRT",
    run=_export,
    check=_check,
    prepare=_check_labels,
    label=lambda s: f"export ({s['mode']})",
    measured="exported",
    trains=False,
)
