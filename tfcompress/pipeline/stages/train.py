"""The `train` stage: fit the model on the training data (a built-in or untrained model)."""

from tfcompress.pipeline.schema import Key, positive, positive_integer
from tfcompress.pipeline.stage import Stage


def _train(context, settings):
    context.fit(context.model, "train", settings["epochs"], learning_rate=settings["learning_rate"])
    return context.model


STAGE = Stage(
    name="train",
    schema={"epochs": Key(positive_integer, 10), "learning_rate": Key(positive, 1e-3)},
    title=lambda settings: f"Training for {settings['epochs']} epochs",
    run=_train,
)
