"""Fine-tuning after pruning (optionally distilled from the unpruned model), and the iterative prune-a-little
schedule."""

import math
import warnings

from tfcompress import _tasks
from tfcompress._checks import check_number, check_positive_integer
from tfcompress._choices import DATA_DRIVEN_CRITERIA, SCORE_EXAMPLES
from tfcompress._keras3 import keras_of
from tfcompress._model_guards import graph_model
from tfcompress.data.arrays import labelled_arrays
from tfcompress.distill import guided
from tfcompress.prune import magnitude_pruning
from tfcompress.prune.batchnorm import recalibrate_batchnorm
from tfcompress.prune.channel_pruning import channels, plan_channels
from tfcompress.prune.compute_cost import cost

_DISTILLATION_OPTIONS = ("alpha", "temperature")
# iterative's fine-tuning keywords before finetune_options; still accepted, with a warning.
_FINETUNE_OPTIONS = ("learning_rate", "batch_size", "callbacks", "verbose", "teacher", "alpha", "temperature", "task",
                     "hints", "recalibrate")


def finetune(model, data, *, epochs: int = 2, learning_rate: float = 5e-4, teacher=None, hints=(),
             recalibrate: bool = True, task=None, **options):  # fmt: skip
    """Fine-tunes a pruned model in place: Adam at a low, cosine-decaying learning rate, distilled with `teacher`.

    Args:
      model: a built model of either Keras, e.g. from `tfc.prune.channels` or `tfc.prune.magnitude`; trained in place.
      data: training `(x, y)` arrays (labels as you hold them), or a batched `tf.data.Dataset`.
      epochs: passes over the data.
      learning_rate: Adam's starting learning rate, or a Keras `LearningRateSchedule` used as it is.
      teacher: None, or the model before pruning (same outputs) to distill from while fine-tuning.
      hints: with `teacher`, names of layers in both models whose outputs the pruned one should match.
      recalibrate: afterwards, recompute BatchNormalization's moving statistics on the data.
      task: the output's task ("multiclass", "binary", "multilabel", "regression"); None infers it.
      **options: `alpha` and `temperature` of the distillation (with `teacher`), and Keras `fit` arguments
        (`batch_size`, default 32; `validation_data`, `callbacks`, `verbose`, default 0).

    Returns:
      The Keras `History`.

    Raises:
      TypeError: `model` or `teacher` is not a Keras model, or an option neither the distillation nor `fit` takes.
      ValueError: `epochs` is not a positive integer, the data is empty, NaN or unlabelled, the labels do not
        fit the task, or the teacher's outputs do not match the model's.

    Examples:
      >>> smaller = tfc.prune.channels(model, 0.5)
      >>> tfc.prune.finetune(smaller, (x_train, y_train), epochs=2, teacher=model, batch_size=64)
    """
    model = graph_model(model)
    check_positive_integer("epochs", epochs)
    distillation = {name: options.pop(name) for name in _DISTILLATION_OPTIONS if name in options}
    fit_kwargs = {"batch_size": 32, "verbose": 0, **options}
    check_positive_integer("batch_size", fit_kwargs["batch_size"])
    x, y = labelled_arrays(data, "data")
    task = _tasks.infer(model, task=task, labels=y)
    y = task.labels(y, model.outputs[0].shape[1:], argument="data")
    schedules = keras_of(model).optimizers.schedules
    if not isinstance(learning_rate, schedules.LearningRateSchedule):
        check_number("learning_rate", learning_rate, low=0, low_open=True)
        steps = epochs * math.ceil(len(x) / fit_kwargs["batch_size"])
        learning_rate = schedules.CosineDecay(learning_rate, steps)
    training = guided.trainer(model, learning_rate, teacher=teacher, task=task, hints=hints, **distillation)
    callbacks = list(fit_kwargs.pop("callbacks", None) or [])
    if magnitude_pruning.is_pruned(model) and not any(map(magnitude_pruning.is_pruning_step, callbacks)):
        callbacks += magnitude_pruning.callbacks()
    history = training.fit(x, y, epochs=epochs, callbacks=callbacks, **fit_kwargs)
    if recalibrate:
        recalibrate_batchnorm(model, x)
    return history


def iterative(model, data, ratio=None, *, steps: int = 3, epochs_per_step: int = 1, validation_data=None,
              finetune_options=None, **channel_options):  # fmt: skip
    """Prunes channels a little at a time, fine-tuning after each step, to the widths `channels` would give at once.

    Args:
      model: a built Sequential or functional model of either Keras. Not modified.
      data: training `(x, y)` arrays or a batched `tf.data.Dataset`; data-driven criteria score its first 512.
      ratio: share of channels to remove in the end, as for `channels` (default 0.5).
      steps: how many prune-and-fine-tune steps.
      epochs_per_step: fine-tuning epochs after each step.
      validation_data: optional held-out `(x, y)`, measured before and after each step's fine-tuning.
      finetune_options: a dict of `finetune`'s options for every step (`learning_rate`, `teacher`, `hints`,
        `recalibrate`, `task`, `alpha`, `temperature` and `fit` arguments).
      **channel_options: `channels`'s options (`criterion`, `allocation`, `protect`, `budget`, ...).

    Returns:
      `(pruned_model, steps)`: the fine-tuned smaller model, and one dict per step: `step`, `removed`,
      `parameters`, `macs`, and the task's measure before and after fine-tuning (`accuracy_pruned` and
      `accuracy`, or `mae_pruned` and `mae`; None without `validation_data`).

    Raises:
      TypeError: `model` is not a Keras model, or an option `channels` or `finetune` does not take.
      ValueError: as for `channels` and `finetune`, or `steps` is not a positive integer.

    Examples:
      >>> smaller, log = tfc.prune.iterative(model, (x_train, y_train), 0.5, steps=3, criterion="l2",
      ...                                    finetune_options={"teacher": model, "hints": ["conv2d"]})
    """
    model = graph_model(model)
    check_positive_integer("steps", steps)
    check_positive_integer("epochs_per_step", epochs_per_step)
    finetune_options = dict(finetune_options or {})
    for name in [name for name in channel_options if name in _FINETUNE_OPTIONS]:
        warnings.warn(
            f"iterative's `{name}` is deprecated and goes in the next release; pass it in "
            f"finetune_options={{{name!r}: ...}}.",
            DeprecationWarning,
            stacklevel=2,
        )
        finetune_options[name] = channel_options.pop(name)
    x, y = labelled_arrays(data, "data")
    task = _tasks.infer(model, task=finetune_options.pop("task", None), labels=y)
    y = task.labels(y, model.outputs[0].shape[1:], argument="data")
    criterion = channel_options.get("criterion", "l1")
    if isinstance(criterion, str) and criterion in DATA_DRIVEN_CRITERIA:
        channel_options.setdefault("data", (x[:SCORE_EXAMPLES], y[:SCORE_EXAMPLES]))
    final = plan_channels(model, ratio, **channel_options).widths()
    # Each step cuts to its own per-layer ratios; the allocation and budget decided the final widths above.
    choose = {name: value for name, value in channel_options.items() if name not in ("allocation", "budget")}
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
        finetune(current, (x, y), epochs=epochs_per_step, task=task.kind, **finetune_options)
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
