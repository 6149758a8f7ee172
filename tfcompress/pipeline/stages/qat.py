"""The `qat` stage: quantization-aware fine-tuning for int8, ranges first measured on the training data.

Prune-preserving when the model holds pruned zeros (TF-MOT's scheme).
"""

from tfcompress import quantize
from tfcompress._schema import Key, RecipeError, positive, positive_integer
from tfcompress.pipeline.stage import Stage


def _check(recipe):
    export = recipe["stages"]["export"]
    if export["mode"] != "int8":
        raise RecipeError(
            f"`stages.qat` trains for int8; `stages.export.mode` must then be 'int8', not {export['mode']!r}."
        )


def _qat(context, settings):
    model = quantize.qat(context.model, representative_data=context.x_train)
    context.fit(model, "qat", settings["epochs"], learning_rate=settings["learning_rate"])
    return model


STAGE = Stage(
    name="qat",
    schema={"epochs": Key(positive_integer, 2), "learning_rate": Key(positive, 1e-4)},
    title=lambda s: f"Quantization-aware fine-tuning for {s['epochs']} epochs",
    run=_qat,
    check=_check,
    measured="keras",  # its file is the export's; a float32 copy would not say anything new
)
