"""The pipeline's loop: check the recipe, load the inputs, run each registered stage, write the report."""

import contextlib
import os
import tempfile
import time

from tfcompress import data
from tfcompress import report as reports
from tfcompress._keras3 import seed_every_keras
from tfcompress._progress import StageTimer
from tfcompress.pipeline import distribution, inputs, outputs
from tfcompress.pipeline import recipe as recipes
from tfcompress.pipeline.measure import Measure
from tfcompress.pipeline.stage import Context
from tfcompress.pipeline.stages import REGISTERED


def run(recipe, *, overrides=(), progress=print, verbose: int = 0) -> dict:
    """Runs a recipe: loads the model and data, runs its stages, writes the files and the report.

    Nothing is trained until the whole recipe, the model, the data and every output
    path have been checked; outputs are written atomically and never replace existing
    files unless the recipe says `overwrite: true`. A Keras model passed in the recipe
    is copied, never modified; a model file carrying code (a Lambda layer) is refused
    unless the recipe says `trust_model_code: true`. With `distribute`, every stage that
    trains runs under that `tf.distribute` strategy; on a multi-worker cluster every
    worker runs the recipe and only the chief writes the files.

    Args:
      recipe: a dict, or the path of a `.json`/`.yaml` recipe (see `tfc.pipeline.recipe`).
      overrides: `key.path=value` strings applied on top, e.g. `["stages.prune.sparsity=0.5"]`.
      progress: called with one line of text as each stage starts and ends.
      verbose: Keras `fit` verbosity (0 silent, 1 progress bar, 2 one line per epoch).

    Returns:
      The report dict: `task` (the output's `kind`, its primary `measure`, "accuracy"
      or "mae", in words, and what said so), `rows` (the input model when it is the
      user's, the teacher when there is a distill stage, then one per stage: seconds,
      parameters, non-zero parameters, Keras and LiteRT accuracy (or mean absolute
      error, for regression), `.tflite` bytes and gzip bytes, agreement with Keras,
      latency, and speed-up over the first row with its interval, timed side by side at
      the end), `final` (the exported file's row), `cpu` (what the latencies were timed on), `widths`
      (channels per layer before and after, when a channels stage ran), `class_names`,
      `files` written, and the checked `recipe`. The same is written to `report.json`.

    Raises:
      RecipeError: the recipe has an unknown key or a bad value.
      FileNotFoundError: the model, the data or a folder does not exist.
      FileExistsError: an output exists and the recipe does not allow overwriting.
      ValueError: the model or the data cannot be used (named in the message).

    Examples:
      >>> report = tfc.pipeline.run("examples/resnet_channels.yaml")
      >>> report["files"]["model"]
    """
    checked = recipes.check(recipes.override(recipes.load(recipe), overrides))
    strategy = distribution.strategy_for(checked["distribute"])  # before anything else runs in TensorFlow
    if not distribution.is_chief(strategy):  # it trains with the others; the chief writes the files
        checked = dict(checked, output_dir=os.path.join(tempfile.mkdtemp(prefix="tfcompress_worker_"), "out"))
    stages = [(stage, checked["stages"][stage.name]) for stage in REGISTERED if stage.name in checked["stages"]]
    user_model = not inputs.is_builtin(checked["model"])
    labels = ["input model"] if user_model else []
    trained = list(labels)  # the rows whose Keras model is kept: a quantization-aware one has no float32 file
    for stage, settings in stages:
        labels += [*stage.extra_rows, *([stage.row_label(settings)] if stage.measured == "float32" else [])]
        trained += [*stage.extra_rows, *([stage.row_label(settings)] if stage.measured != "exported" else [])]
    paths = outputs.plan(checked, labels, trained)
    seed_every_keras(checked["seed"])
    (x_train, y_train), (x_test, y_test), class_names = data.load_source(checked["data"], checked["seed"])
    rows, aside, measure = [], [], None

    def record(label, model, seconds):
        start = time.perf_counter()
        rows.append(measure(label, model, seconds))
        aside.append(seconds + time.perf_counter() - start)

    context = Context(None, checked, x_train, y_train, x_test, y_test, paths, verbose, record)
    with _scope(strategy):
        context.model = inputs.load_model(context, checked["model"], "model")
        context.task, context.y_train, context.y_test = inputs.task_of(context, context.model, "model")
        for stage, settings in stages:
            if stage.prepare:
                stage.prepare(context, settings)

    measure = Measure(x_test, context.y_test, context.task, paths["stage_files"], overwrite=checked["overwrite"],
                      stage_models=paths["stage_models"])  # fmt: skip
    os.makedirs(paths["folder"], exist_ok=True)
    timer = StageTimer(progress, len(stages))
    if user_model:
        record("input model", context.model, 0.0)
    for stage, settings in stages:
        aside.clear()
        with timer.step(stage.title(settings), key=stage.name), _scope(strategy if stage.trains else None):
            context.model = stage.run(context, settings)
        seconds = round(timer.seconds[stage.name] - sum(aside), 2)  # less what its own rows took
        rows.append(measure(stage.row_label(settings), context.model, seconds, stage.measured, context.exported))
    cpu = measure.time_rows(rows)

    files = {"model": paths["model"], **({"android": context.notes["android"]} if "android" in context.notes else {})}
    files.update({f"{label} (float32)": path for label, path in paths["stage_files"].items()})
    files.update({f"{label} (Keras)": path for label, path in paths["stage_models"].items() if os.path.exists(path)})
    report = {
        "task": {"kind": context.task.kind, "measure": context.task.measure, "described": context.task.describe(),
                 "source": context.task.source},  # fmt: skip
        "rows": rows,
        "widths": context.notes.get("widths"),
        "accuracy_control": context.notes.get("accuracy_control"),
        "final": rows[-1],
        "cpu": cpu,
        "class_names": class_names,
        "recipe": recipes.map_values(checked, _json_value),
        "files": files,
    }
    report["files"].update(reports.write_all(report, paths, overwrite=checked["overwrite"]))
    reports.log_stages(rows, paths["tensorboard"])
    progress("")
    progress(f"Task: {context.task.describe()}; from {context.task.source}.")
    progress(reports.format_table(rows, reports.stage_columns(context.task.measure)))
    progress(reports.latency_note(cpu))
    return report


def _scope(strategy):
    return strategy.scope() if strategy is not None else contextlib.nullcontext()


def _json_value(value):
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return f"<{type(value).__name__} {getattr(value, 'name', '')}>".replace(" >", ">")
