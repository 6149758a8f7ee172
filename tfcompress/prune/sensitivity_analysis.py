"""How much accuracy each layer's channels are worth: prune one group at a time and measure."""


from tfcompress import _files, _tasks
from tfcompress._checks import check_number
from tfcompress._graph import clone_with_weights
from tfcompress._keras3 import is_keras3_model
from tfcompress._model_guards import graph_model
from tfcompress.data.arrays import arrays_from, labelled_arrays
from tfcompress.prune import keras3_channels
from tfcompress.prune.batchnorm import recalibrate_batchnorm
from tfcompress.prune.channel_pruning import plan_channels, rebuild
from tfcompress.report import format_table, new_figure, write_figure

_COLUMNS = [("layer", "layer"), ("ratio", "ratio"), ("channels", "channels kept")]
# The measure's column and the drop's heading, by the task's primary measure.
_MEASURED = {"accuracy": [("accuracy", "accuracy"), ("drop", "drop (points)")],
             "mae": [("mae", "mean abs. error"), ("drop", "MAE rise (%)")]}  # fmt: skip


def sensitivity(model, data, *, ratios=(0.25, 0.5, 0.75), criterion="l1", calibration=None, plot_path=None,
                overwrite=False, task=None) -> dict:  # fmt: skip
    """Prunes each prunable channel group alone, at each ratio, and measures the accuracy left (a regression's error).

    Without fine-tuning, the drop shows what each layer's channels carry: cut harder where it is small.

    Args:
      model: a built Sequential or functional model of either Keras.
      data: held-out `(x, y)` arrays, or a batched `tf.data.Dataset` of them.
      ratios: shares of each group's channels to remove, each in [0, 1).
      criterion: as for `channels`.
      calibration: optional training inputs to recompute BatchNormalization statistics on after each cut.
      plot_path: where to write a PNG of accuracy against ratio, one line per layer; None for no plot.
      overwrite: replace an existing file at `plot_path`.
      task: the output's task ("multiclass", "binary", "multilabel", "regression"); None infers it.

    Returns:
      A dict: `measure` ("accuracy", or "mae" for regression), `baseline` (that measure
      before pruning, with BatchNorm recalibrated on a copy when `calibration` is given),
      `rows` (one per group and ratio: `layer` (the group's producers), `ratio`,
      `channels` kept, the measure, `drop` in points, or the MAE's rise in percent),
      `table` (the rows as text) and `plot` (the PNG's path, or None).

    Raises:
      TypeError: `model` is not a Keras model.
      ValueError: a ratio is out of range, the data is empty, NaN or unlabelled, or the
        model cannot be channel-pruned (see `channels`).
      FileExistsError: `plot_path` exists and `overwrite` is False.

    Examples:
      >>> result = tfc.prune.sensitivity(model, (x_test, y_test), plot_path="sensitivity.png")
      >>> print(result["table"])
    """
    model = graph_model(model)
    if is_keras3_model(model):  # measured on its Keras 2 twin (the same function and layer names): one for every cut
        model = keras3_channels.planning_twin(model)[1]
    x, y = labelled_arrays(data, "data")
    task = _tasks.infer(model, task=task, labels=y)
    y = task.labels(y, model.outputs[0].shape[1:], argument="data")
    ratios = tuple(ratios)
    if not ratios:
        raise ValueError("`ratios` is empty; pass shares of channels to remove, e.g. (0.25, 0.5, 0.75).")
    for ratio in ratios:
        check_number("ratios", ratio, low=0, high=1, high_open=True)
    if plot_path is not None:
        plot_path = _files.check_writable(plot_path, overwrite)
    if calibration is not None:
        calibration, _ = arrays_from(calibration, limit=1024, argument="calibration")
    plan = plan_channels(model, 0.0, criterion=criterion)  # checks the model and the criterion
    reference = model
    if calibration is not None:  # the same recalibration as the cuts get, on a copy: drops are the channels' alone
        reference = clone_with_weights(model)
        recalibrate_batchnorm(reference, calibration)
    baseline = _tasks.evaluate(reference, x, y, task)
    rows = []
    for group in (group for group in plan.groups if group["prunable"]):
        name = group["layers"][0]
        for ratio in ratios:
            ratio_plan = plan_channels(model, {name: ratio}, criterion=criterion)
            pruned = rebuild(model, ratio_plan)
            if calibration is not None:
                recalibrate_batchnorm(pruned, calibration)
            left = _tasks.evaluate(pruned, x, y, task)
            kept = len(ratio_plan.groups[ratio_plan.group_of[name]]["kept"])
            rows.append(
                {
                    "layer": "+".join(group["layers"]),
                    "ratio": float(ratio),
                    "channels": f"{kept}/{group['channels']}",
                    task.measure: left,
                    "drop": 100 * task.drop(baseline, left),
                }
            )
    table = format_table(rows, _COLUMNS + _MEASURED[task.measure])
    result = {"measure": task.measure, "baseline": baseline, "rows": rows, "table": table, "plot": None}
    if plot_path is not None:
        result["plot"] = write_figure(plot_path, _plot(rows, baseline, task.measure), overwrite=overwrite)
    return result


def _plot(rows, baseline, measure):
    figure, axes = new_figure()
    for layer in dict.fromkeys(row["layer"] for row in rows):
        points = [(row["ratio"], row[measure]) for row in rows if row["layer"] == layer]
        axes.plot(*zip(*points), "o-", label=layer)
    axes.axhline(baseline, color="grey", linestyle="--", label="unpruned")
    ylabel = "accuracy" if measure == "accuracy" else "mean absolute error"
    axes.set(xlabel="share of the group's channels removed", ylabel=f"{ylabel} (no fine-tuning)",
             title="Channel pruning sensitivity per layer")  # fmt: skip
    axes.legend(fontsize=7)
    axes.grid(alpha=0.3)
    return figure
