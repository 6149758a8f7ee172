"""Recovering accuracy after pruning: fine-tuning (optionally distilled from the unpruned model), and the
iterative prune-a-little schedule."""

import math

from tfcompress import _tasks
from tfcompress._checks import check_number, check_positive_integer
from tfcompress._choices import DATA_DRIVEN_CRITERIA, SCORE_EXAMPLES
from tfcompress._keras import keras
from tfcompress._model_guards import ensure_graph_model
from tfcompress.data.arrays import labelled_arrays
from tfcompress.distill import guided
from tfcompress.prune import magnitude_pruning
from tfcompress.prune.batchnorm import recalibrate_batchnorm
from tfcompress.prune.channel_pruning import channels, plan_channels
from tfcompress.prune.compute_cost import cost


def finetune(model, data, *, epochs: int = 2, learning_rate: float = 5e-4, batch_size: int = 32,
             validation_data=None, callbacks=None, recalibrate: bool = True, verbose: int = 0, teacher=None,
             alpha: float = guided.ALPHA, temperature: float = guided.TEMPERATURE, hints=(), task=None):  # fmt: skip
    """Compiles a pruned model for fine-tuning and trains it: Adam at a low, decaying learning rate.

    The loss is the task's (cross-entropy for classifiers, from logits unless the output
    layer ends in a softmax or sigmoid; mean squared error for regression); with
    `teacher` (the model before pruning), distillation from it as well
    (`tfc.Distiller`: `alpha` of the label loss, `1 - alpha` of the teacher's soft
    targets at `temperature`). The learning rate
    decays to zero over the epochs (cosine), so the weights and BatchNormalization's
    moving statistics settle by the end. Like `fit`, it trains `model` in place. A model
    from `tfc.prune.magnitude` gets its pruning-step callback added.

    Args:
      model: a built Keras 2 model, e.g. from `tfc.prune.channels` or `tfc.prune.magnitude`.
      data: training `(x, y)` arrays (labels as for `tfc.export.verify`), or a batched
        `tf.data.Dataset`.
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
      teacher: None, or the model before pruning (logits of the same shape): distill
        from it while fine-tuning. It is not modified.
      alpha: with `teacher`, the weight of the label loss, in [0, 1].
      temperature: with `teacher`, the softening temperature, > 0.
      hints: with `teacher`, names of layers in both models whose outputs the pruned
        one should also match (FitNets hints, with an adapter where widths differ).
      task: the output's task ("multiclass", "binary", "multilabel", "regression");
        None infers it (see `tfc.export.verify`).

    Returns:
      The Keras `History`.

    Raises:
      TypeError: `model` or `teacher` is not a Keras model.
      ValueError: `epochs` is not a positive integer, the data is empty, NaN or
        unlabelled, the labels do not fit the task, the teacher's outputs do not match
        the model's, or `model` is a Keras 3 model (it is trained in place).

    Example:
      >>> smaller = tfc.prune.channels(model, 0.5)
      >>> tfc.prune.finetune(smaller, (x_train, y_train), epochs=2, teacher=model)
    """
    model = ensure_graph_model(model, in_place=True)
    check_positive_integer("epochs", epochs)
    check_positive_integer("batch_size", batch_size)
    x, y = labelled_arrays(data, "data")
    task = _tasks.infer(model, task=task, labels=y)
    y = task.labels(y, model.outputs[0].shape[1:], argument="data")
    if not isinstance(learning_rate, keras.optimizers.schedules.LearningRateSchedule):
        check_number("learning_rate", learning_rate, low=0, low_open=True)
        learning_rate = keras.optimizers.schedules.CosineDecay(learning_rate, epochs * math.ceil(len(x) / batch_size))
    training = guided.trainer(model, learning_rate, teacher=teacher, task=task, alpha=alpha, temperature=temperature,
                              hints=hints)  # fmt: skip
    callbacks = list(callbacks or [])
    if magnitude_pruning.is_pruned(model) and not any(map(magnitude_pruning.is_pruning_step, callbacks)):
        callbacks += magnitude_pruning.callbacks()
    history = training.fit(
        x, y, epochs=epochs, batch_size=batch_size, validation_data=validation_data, callbacks=callbacks,
        verbose=verbose,
    )  # fmt: skip
    if recalibrate:
        recalibrate_batchnorm(model, x)
    return history


def iterative(model, data, ratio=None, *, steps: int = 3, epochs_per_step: int = 1, criterion="l1",
              allocation="uniform", protect=(), budget=None, learning_rate: float = 5e-4, batch_size: int = 32,
              validation_data=None, callbacks=None, verbose: int = 0, teacher=None, alpha: float = guided.ALPHA,
              temperature: float = guided.TEMPERATURE, task=None):  # fmt: skip
    """Prunes channels a little at a time, fine-tuning after each step (Molchanov et al., 2017).

    The final widths are those `channels(model, ratio or budget, allocation=...)` would
    give at once; each of `steps` steps removes an equal share of the channels still to
    go, re-scoring the fine-tuned model first, so the channels that go are the ones that
    matter least by then.

    Args:
      model: a built Sequential or functional Keras 2 model. Not modified.
      data: training `(x, y)` arrays (labels as for `tfc.export.verify`) or a batched
        `tf.data.Dataset`; data-driven criteria score on its first 512 examples.
      ratio: share of channels to remove in the end, as for `channels` (default 0.5).
      steps: how many prune-and-fine-tune steps.
      epochs_per_step: fine-tuning epochs after each step.
      criterion: as for `channels`.
      allocation: as for `channels`; decides the final widths on `model` as it is.
      protect: as for `channels`.
      budget: as for `channels`, instead of `ratio`.
      learning_rate: Adam's starting learning rate for each step's fine-tuning (see `finetune`).
      batch_size: examples per fine-tuning step.
      validation_data: optional held-out `(x, y)`: each step's accuracy (a regression's
        mean absolute error) before and after fine-tuning is measured on it.
      callbacks: extra Keras callbacks for every fine-tuning `fit`.
      verbose: Keras `fit` verbosity.
      teacher: None, or a model to distill from in every fine-tuning step: usually
        `model` itself, the unpruned network (see `finetune`).
      alpha: with `teacher`, the weight of the label loss.
      temperature: with `teacher`, the softening temperature.
      task: the output's task ("multiclass", "binary", "multilabel", "regression");
        None infers it (see `tfc.export.verify`).

    Returns:
      `(pruned_model, steps)`: the fine-tuned smaller model, and one dict per step:
      `step`, `removed` (share of the pruned layers' channels gone so far), `parameters`,
      `macs`, `accuracy_pruned` and `accuracy` (before and after fine-tuning; None
      without `validation_data`; for regression `mae_pruned` and `mae`).

    Raises:
      TypeError: `model` is not a Keras 2 model.
      ValueError: as for `channels` and `finetune`, or `steps` is not a positive integer.

    Example:
      >>> smaller, log = tfc.prune.iterative(model, (x_train, y_train), 0.5, steps=3,
      ...                                    validation_data=(x_test, y_test))
    """
    model = ensure_graph_model(model)
    check_positive_integer("steps", steps)
    check_positive_integer("epochs_per_step", epochs_per_step)
    x, y = labelled_arrays(data, "data")
    task = _tasks.infer(model, task=task, labels=y)
    y = task.labels(y, model.outputs[0].shape[1:], argument="data")
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
        pruned_score = _score(current, validation_data, task)
        finetune(current, (x, y), epochs=epochs_per_step, learning_rate=learning_rate, batch_size=batch_size,
                 callbacks=callbacks, verbose=verbose, teacher=teacher, alpha=alpha, temperature=temperature,
                 task=task.kind)  # fmt: skip
        counts = cost(current)
        widths = plan_channels(current, 0.0).widths()
        log.append(
            {
                "step": step,
                "removed": 1 - sum(widths[name][0] for name in cut) / sum(final[name][0] for name in cut),
                "parameters": counts["parameters"],
                "macs": counts["macs"],
                f"{task.measure}_pruned": pruned_score,
                task.measure: _score(current, validation_data, task),
            }
        )
    return current, log


def _score(model, data, task):
    if data is None:
        return None
    x, y = labelled_arrays(data, "validation_data")
    return _tasks.evaluate(model, x, task.labels(y, model.outputs[0].shape[1:], argument="validation_data"), task)
