"""The `qat` stage: quantization-aware fine-tuning for int8, ranges first measured on the training data.

Prune-preserving when the model holds pruned zeros (TF-MOT's scheme). With
`distill_recovery`, the float model as the stage receives it teaches the quantization-aware one.
`float_layers` keeps the named layers in float here and in the exported file (which then
has float32 I/O and is not calibrated again).
"""

from tfcompress import quantize
from tfcompress.distill import guided
from tfcompress.pipeline.schema import Key, RecipeError, boolean, positive, positive_integer, strings
from tfcompress.pipeline.stage import Stage


def _check(recipe):
    export = recipe["stages"]["export"]
    if export["mode"] != "int8":
        raise RecipeError(
            f"`stages.qat` trains for int8; `stages.export.mode` must then be 'int8', not {export['mode']!r}."
        )
    if recipe["stages"]["qat"]["float_layers"] and export["io_dtype"] not in (None, "float32"):
        raise RecipeError(
            "With `stages.qat.float_layers` the file reads and writes float32; remove `stages.export.io_dtype` "
            f"(it is {export['io_dtype']!r})."
        )


def _qat(context, settings):
    model = quantize.qat(context.model, representative_data=context.x_train, float_layers=settings["float_layers"])
    teacher = context.model if settings["distill_recovery"] else None
    training = guided.trainer(model, settings["learning_rate"], teacher=teacher, task=context.task)
    context.fit(training, "qat", settings["epochs"])
    return model


STAGE = Stage(
    name="qat",
    schema={
        "epochs": Key(positive_integer, 2),
        "learning_rate": Key(positive, 1e-4),
        "distill_recovery": Key(boolean, False),
        "float_layers": Key(strings("a list of layer names to keep in float ('first', 'last': the end layers)"), None),
    },
    title=lambda s: f"Quantization-aware fine-tuning for {s['epochs']} epochs"
    + (", distilled from the float model" if s["distill_recovery"] else "")
    + (f", float layers: {', '.join(s['float_layers'])}" if s["float_layers"] else ""),
    run=_qat,
    check=_check,
    measured="keras",  # its file is the export's; a float32 copy would not say anything new
)
