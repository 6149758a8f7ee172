"""The `prune` stage: magnitude pruning to a target sparsity over TF-MOT, stripped for what follows."""

import math

from tfcompress import prune
from tfcompress._schema import Key, count, number, positive, positive_integer
from tfcompress.pipeline.stage import Stage


def _prune(context, settings):
    steps = math.ceil(len(context.x_train) / context.batch_size)
    pruning = prune.magnitude(context.model, settings["sparsity"], epochs=settings["epochs"], steps_per_epoch=steps)
    epochs = settings["epochs"] + settings["finetune_epochs"]
    context.fit(pruning, "prune", epochs, learning_rate=settings["learning_rate"], callbacks=prune.callbacks())
    # Strip before anything else: QAT and export need the plain model with its zeros.
    return prune.strip(pruning)


STAGE = Stage(
    name="prune",
    schema={
        "sparsity": Key(number(0, 1, high_open=True), 0.8),
        "epochs": Key(positive_integer, 3),
        "finetune_epochs": Key(count, 1),
        "learning_rate": Key(positive, 5e-4),
    },
    title=lambda s: f"Pruning to {s['sparsity']:.0%} sparsity over {s['epochs']} epochs, then {s['finetune_epochs']}",
    run=_prune,
)
