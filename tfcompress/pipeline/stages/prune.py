"""The `prune` stage: magnitude pruning to a target sparsity over TF-MOT, stripped for what follows.

With `distill_recovery`, the model as the stage receives it teaches the one being pruned.
"""

import math

from tfcompress import prune
from tfcompress.distill import guided
from tfcompress.pipeline.schema import Key, boolean, count, number, positive, positive_integer
from tfcompress.pipeline.stage import Stage


def _prune(context, settings):
    steps = math.ceil(len(context.x_train) / context.batch_size)
    pruning = prune.magnitude(context.model, settings["sparsity"], epochs=settings["epochs"], steps_per_epoch=steps)
    epochs = settings["epochs"] + settings["finetune_epochs"]
    teacher = context.model if settings["distill_recovery"] else None
    training = guided.trainer(pruning, settings["learning_rate"], teacher=teacher, task=context.task)
    context.fit(training, "prune", epochs, callbacks=prune.callbacks())
    # Strip before anything else: QAT and export need the plain model with its zeros.
    return prune.strip(pruning)


STAGE = Stage(
    name="prune",
    schema={
        "sparsity": Key(number(0, 1, high_open=True), 0.8),
        "epochs": Key(positive_integer, 3),
        "finetune_epochs": Key(count, 1),
        "learning_rate": Key(positive, 5e-4),
        "distill_recovery": Key(boolean, False),
    },
    title=lambda s: f"Pruning to {s['sparsity']:.0%} sparsity over {s['epochs']} epochs, then {s['finetune_epochs']}"
    + (", distilled from the unpruned model" if s["distill_recovery"] else ""),
    run=_prune,
)
