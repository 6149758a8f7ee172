"""Recovering accuracy after channel pruning: fine-tuning, and the iterative prune-a-little schedule."""

import math

from tfcompress._checks import check_number, check_positive_integer
from tfcompress._choices import DATA_DRIVEN_CRITERIA, SCORE_EXAMPLES
from tfcompress._classifier import accuracy, compile_classifier
from tfcompress._keras import keras
from tfcompress._model_guards import ensure_graph_model
from tfcompress.data.arrays import labelled_arrays
from tfcompress.prune.batchnorm import recalibrate_batchnorm
from tfcompress.prune.channel_pruning import channels, plan_channels
from tfcompress.prune.compute_cost import cost


def finetune(model, data, *, epochs: int = 2, learning_rate: float = 5e-4, batch_size: int = 32,
             validation_data=None, callbacks=None, recalibrate: bool = True, verbose: int = 0):  # fmt: skip
    """Compiles a pruned classifier for fine-tuning and trains it: Adam at a low, decaying learning rate.

    The loss is sparse categorical cross-entropy, from logits unless the last layer is a
    softmax. The learning rate decays to zero over the epochs (cosine), so the weights
    and BatchNormalization's moving statistics settle by the end. Like `fit`, it trains
    `model` in place.

    Args:
      model: a built Keras 2 classifier, e.g. from `tfc.prune.channels`.
      data: training `(x, y)` arrays (integer labels), or a batched `tf.data.Dataset`.
      epochs: passes over the data.
      learning_rate: Adam's starting learning rate, lower than for training from scratch;
        or a Keras `LearningRateSchedule`, used as it is.
      batch_size: examples per step (for arrays).
      validation_data: optional held-out `(x, y)`, evaluated after every epoch.
      callbacks: extra Keras callbacks.
      recalibrate: afterwards, recompute BatchNormalization's moving statistics on the
        training data (`recalibrate_batchnorm`): a few epochs are too short for them to
        catch up with the changed weights, which can ruin a pruned ResNet's accuracy.
      verbose: Keras `fit` verbosity.

    Returns:
      The Keras `History`.

    Raises:
      TypeError: `model` is not a Keras 2 model.
      ValueError: `epochs` is not a positive integer, or the data is empty, NaN or unlabelled.

    Example:
      >>> smaller = tfc.prune.channels(model, 0.5)
      >>> tfc.prune.finetune(smaller, (x_train, y_train), epochs=2)
    """
    ensure_graph_model(model)
    check_positive_integer("epochs", epochs)
    check_positive_integer("batch_size", batch_size)
    x, y = labelled_arrays(data, "data")
    if not isinstance(learning_rate, keras.optimizers.schedules.LearningRateSchedule):
        check_number("learning_rate", learning_rate, low=0, low_open=True)
        learning_rate = keras.optimizers.schedules.CosineDecay(learning_rate, epochs * math.ceil(len(x) / batch_size))
    compile_classifier(model, learning_rate)
    history = model.fit(
        x, y, epochs=epochs, batch_size=batch_size, validation_data=validation_data, callbacks=callbacks,
        verbose=verbose,
    )  # fmt: skip
    if recalibrate:
        recalibrate_batchnorm(model, x)
    return history


def iterative(model, data, ratio=None, *, steps: int = 3, epochs_per_step: int = 1, criterion="l1",
              allocation="uniform", protect=(), budget=None, learning_rate: float = 5e-4, batch_size: int = 32,
              validation_data=None, callbacks=None, verbose: int = 0):  # fmt: skip
    """Prunes channels a little at a time, fine-tuning after each step (Molchanov et al., 2017).

    The final widths are those `channels(model, ratio or budget, allocation=...)` would
    give at once; each of `steps` steps removes an equal share of the channels still to
    go, re-scoring the fine-tuned model first, so the channels that go are the ones that
    matter least by then.

    Args:
      model: a built Sequential or functional Keras 2 classifier. Not modified.
      data: training `(x, y)` arrays (integer labels) or a batched `tf.data.Dataset`;
        data-driven criteria score on its first 512 examples.
      ratio: share of channels to remove in the end, as for `channels` (default 0.5).
      steps: how many prune-and-fine-tune steps.
      epochs_per_step: fine-tuning epochs after each step.
      criterion: as for `channels`.
      allocation: as for `channels`; decides the final widths on `model` as it is.
      protect: as for `channels`.
      budget: as for `channels`, instead of `ratio`.
      learning_rate: Adam's starting learning rate for each step's fine-tuning (see `finetune`).
      batch_size: examples per fine-tuning step.
      validation_data: optional held-out `(x, y)`: each step's accuracy before and after
        fine-tuning is measured on it.
      callbacks: extra Keras callbacks for every fine-tuning `fit`.
      verbose: Keras `fit` verbosity.

    Returns:
      `(pruned_model, steps)`: the fine-tuned smaller model, and one dict per step:
      `step`, `removed` (share of the pruned layers' channels gone so far), `parameters`,
      `macs`, `accuracy_pruned` and `accuracy` (before and after fine-tuning; None
      without `validation_data`).

    Raises:
      TypeError: `model` is not a Keras 2 model.
      ValueError: as for `channels` and `finetune`, or `steps` is not a positive integer.

    Example:
      >>> smaller, log = tfc.prune.iterative(model, (x_train, y_train), 0.5, steps=3,
      ...                                    validation_data=(x_test, y_test))
    """
    ensure_graph_model(model)
    check_positive_integer("steps", steps)
    check_positive_integer("epochs_per_step", epochs_per_step)
    x, y = labelled_arrays(data, "data")
    scoring = (x[:SCORE_EXAMPLES], y[:SCORE_EXAMPLES])
    needs_data = isinstance(criterion, str) and criterion in DATA_DRIVEN_CRITERIA
    choose = {"criterion": criterion, "data": scoring if needs_data else None, "protect": protect}
    final = plan_channels(model, ratio, allocation=allocation, budget=budget, **choose).widths()
    cut = [name for name, (before, after) in final.items() if after < before]
    log, current = [], model
    for step in range(1, steps + 1):
        now = plan_channels(current, 0.0).widths()
        ratios = {}
        for name, (before, after) in final.items():
            target = before - round((before - after) * step / steps)
            if now[name][0] > target:  # half a channel over: floor(ratio * width) is exactly the count
                ratios[name] = (now[name][0] - target + 0.5) / now[name][0]
        if ratios:
            current = channels(current, ratios, **choose)
            recalibrate_batchnorm(current, x)  # so the accuracy after cutting is the channels', not stale statistics
        pruned_accuracy = _accuracy(current, validation_data)
        finetune(current, (x, y), epochs=epochs_per_step, learning_rate=learning_rate, batch_size=batch_size,
                 callbacks=callbacks, verbose=verbose)  # fmt: skip
        counts = cost(current)
        widths = plan_channels(current, 0.0).widths()
        log.append(
            {
                "step": step,
                "removed": 1 - sum(widths[name][0] for name in cut) / sum(final[name][0] for name in cut),
                "parameters": counts["parameters"],
                "macs": counts["macs"],
                "accuracy_pruned": pruned_accuracy,
                "accuracy": _accuracy(current, validation_data),
            }
        )
    return current, log


def _accuracy(model, data):
    return None if data is None else accuracy(model, *labelled_arrays(data, "validation_data"))
