"""The pipeline: one recipe from a user's model and data to a verified `.tflite`, with a report.

Stages run in a fixed order, each handing a plain Keras model to the next: train ->
distill -> channels (structured: a smaller model) -> prune (stripped before QAT) -> qat
(prune-preserving on a sparse model; activation ranges first measured on the training
data) -> export (from the QAT ranges, or calibrated post-training). Each stage is timed
and measured; the report is a table, a JSON, plots and a TensorBoard log.
"""

import contextlib
import math
import os
import tempfile
import warnings

import numpy as np

from tfcompress import _model_files, data, demo, distill, export, prune, quantize
from tfcompress import recipe as recipes
from tfcompress import report as reports
from tfcompress._graph import flat_copy, nested_models
from tfcompress._keras import clone_with_weights, ensure_graph_model, is_keras3_model, keras, outputs_logits
from tfcompress._progress import StageTimer
from tfcompress.keras3 import from_keras3

_BUILTIN_SHAPES = {"builtin:teacher": ((32, 64), 384), "builtin:student": ((16, 32), 192)}
_SCORE_EXAMPLES = 512  # training examples the data-driven channel criteria measure on


def run(recipe, *, overrides=(), progress=print, verbose: int = 0) -> dict:
    """Runs a recipe: loads the model and data, runs its stages, writes the files and the report.

    Nothing is trained until the whole recipe, the model, the data and every output
    path have been checked; outputs are written atomically and never replace existing
    files unless the recipe says `overwrite: true`. A Keras model passed in the recipe
    is copied, never modified.

    Args:
      recipe: a dict, or the path of a `.json`/`.yaml` recipe (see `tfcompress.recipe`).
      overrides: `key.path=value` strings applied on top, e.g. `["stages.prune.sparsity=0.5"]`.
      progress: called with one line of text as each stage starts and ends.
      verbose: Keras `fit` verbosity (0 silent, 1 progress bar, 2 one line per epoch).

    Returns:
      The report dict: `rows` (one per stage: seconds, parameters, non-zero parameters,
      Keras accuracy, `.tflite` bytes and gzip bytes, LiteRT accuracy and latency),
      `final` (the exported file's verification and size), `files` written, and the
      checked `recipe`. The same is written to `report.json`.

    Raises:
      RecipeError: the recipe has an unknown key or a bad value.
      FileNotFoundError: the model, the data or a folder does not exist.
      FileExistsError: an output exists and the recipe does not allow overwriting.
      ValueError: the model or the data cannot be used (named in the message).

    Example:
      >>> report = tfc.pipeline.run("examples/digits.yaml")
      >>> report["files"]["model"]
    """
    checked = recipes.check(recipes.override(recipes.load(recipe), overrides))
    paths = _output_paths(checked)
    seed, batch_size = checked["seed"], checked["batch_size"]
    keras.utils.set_random_seed(seed)
    (x_train, y_train), (x_test, y_test), class_names = _load_data(checked["data"], seed)
    classes = int(max(y_train.max(), y_test.max())) + 1
    model = _load_model(checked["model"], x_train.shape[1:], classes, "model", checked["trust_model_code"])
    stages = checked["stages"]
    teacher = None
    if "distill" in stages:
        teacher = _load_model(
            stages["distill"]["teacher"], x_train.shape[1:], classes, "stages.distill.teacher",
            checked["trust_model_code"],
        )  # fmt: skip

    folder = paths["folder"]
    os.makedirs(folder, exist_ok=True)
    fit = {"batch_size": batch_size, "verbose": verbose}
    log_dir = paths["tensorboard"]
    measure = _Measure(x_test, y_test)
    names = [name for name in recipes.STAGES if name in stages]
    timer = StageTimer(progress, len(names))
    rows = []
    if not _is_builtin(checked["model"]):
        rows.append(measure("input model", model, seconds=0.0))

    for name in names:
        settings = stages[name]
        with timer.step(_STAGE_TITLES[name](settings), key=name):
            if name == "train":
                _compile(model, settings["learning_rate"])
                model.fit(x_train, y_train, epochs=settings["epochs"], callbacks=_board(log_dir, name), **fit)
            elif name == "distill":
                model = _distill(model, teacher, settings, x_train, y_train, fit, log_dir)
            elif name == "channels":
                before = model
                model = _channels(model, settings, x_train, y_train, fit, log_dir)
                widths = _widths(before, model)
            elif name == "prune":
                model = _prune(model, settings, x_train, y_train, fit, log_dir)
            elif name == "qat":
                model = quantize.qat(model, representative_data=x_train)
                _compile(model, settings["learning_rate"])
                model.fit(x_train, y_train, epochs=settings["epochs"], callbacks=_board(log_dir, name), **fit)
            else:
                result = export.to_tflite(
                    model,
                    paths["model"],
                    mode=settings["mode"],
                    io_dtype=settings["io_dtype"],
                    representative_data=x_train if settings["mode"] in ("int8", "int16x8") else None,
                    calibration_samples=settings["calibration_samples"],
                    float_layers=settings["float_layers"],
                    overwrite=checked["overwrite"],
                )
        if name == "export":
            rows.append(measure.exported(f"export ({settings['mode']})", model, result, timer.seconds[name]))
        else:
            rows.append(measure(name, model, timer.seconds[name], quantization_aware=name == "qat"))

    final = rows[-1]
    files = {"model": paths["model"]}
    export_settings = stages["export"]
    if export_settings["android_labels"]:
        bundle = export.android_bundle(
            paths["model"],
            paths["android"],
            labels=export_settings["android_labels"],
            pixel_range=export_settings["pixel_range"],
            overwrite=checked["overwrite"],
        )
        files["android"] = {key: bundle[key] for key in ("model", "labels", "json")}
    report = {
        "rows": rows,
        "widths": widths if "channels" in stages else None,
        "final": final,
        "class_names": class_names,
        "recipe": recipes.map_values(checked, _json_value),
        "files": files,
    }
    report["files"].update(reports.write_all(report, paths, overwrite=checked["overwrite"]))
    reports.log_stages(rows, log_dir)
    progress("")
    progress(reports.format_table(rows, reports.STAGE_COLUMNS))
    return report


_STAGE_TITLES = {
    "train": lambda s: f"Training for {s['epochs']} epochs",
    "distill": lambda s: f"Distilling for {s['epochs']} epochs (alpha {s['alpha']}, T {s['temperature']})",
    "channels": lambda s: (
        f"Removing channels ({_how_many(s)}, {s['criterion']}) in {s['steps']} step(s), "
        f"{s['finetune_epochs']} fine-tuning epochs each"
    ),
    "prune": lambda s: (
        f"Pruning to {s['sparsity']:.0%} sparsity over {s['epochs']} epochs, then {s['finetune_epochs']}"
    ),
    "qat": lambda s: f"Quantization-aware fine-tuning for {s['epochs']} epochs",
    "export": lambda s: f"Exporting {s['mode']} .tflite and verifying it in LiteRT",
}


def _how_many(settings):
    if settings["budget"]:
        (key, value), = settings["budget"].items()
        return f"to {value:.0%} of the {key}" if value < 1 else f"to {value:,.0f} {key}"
    return f"{0.5 if settings['ratio'] is None else settings['ratio']:.0%}"


def _distill(student, teacher, settings, x_train, y_train, fit, log_dir):
    if settings["teacher_epochs"]:
        _compile(teacher, settings["learning_rate"])
        teacher.fit(x_train, y_train, epochs=settings["teacher_epochs"], callbacks=_board(log_dir, "teacher"), **fit)
    distiller = distill.Distiller(student=student, teacher=teacher)
    distiller.compile(
        optimizer=keras.optimizers.Adam(settings["learning_rate"]),
        metrics=[keras.metrics.SparseCategoricalAccuracy()],
        alpha=settings["alpha"],
        temperature=settings["temperature"],
    )
    distiller.fit(x_train, y_train, epochs=settings["epochs"], callbacks=_board(log_dir, "distill"), **fit)
    return distiller.student


def _channels(model, settings, x_train, y_train, fit, log_dir):
    """Network slimming's penalty (optional), residual blocks dropped (optional), then channels, fine-tuned."""
    if settings["gamma_penalty"]:
        model = prune.gamma_penalty(model, settings["gamma_penalty"])
        _compile(model, settings["learning_rate"])
        model.fit(x_train, y_train, epochs=settings["penalty_epochs"], callbacks=_board(log_dir, "penalty"), **fit)
        model = prune.gamma_penalty(model, 0.0)
    budget = settings["budget"]
    if budget:  # a share is of the model as the stage received it, before any block is dropped
        (key, value), = budget.items()
        budget = {key: int(value * prune.cost(model)[key]) if value < 1 else value}
    blocks = settings["drop_blocks"]
    if blocks:
        if isinstance(blocks, int):  # the ones whose loss costs least, measured on training examples
            measured = prune.residual_blocks(model, data=(x_train[:_SCORE_EXAMPLES * 4], y_train[:_SCORE_EXAMPLES * 4]))
            if len(measured) < blocks:
                raise ValueError(
                    f"`stages.channels.drop_blocks` asks for {blocks} blocks, but the model has {len(measured)} "
                    "residual blocks whose branch can be dropped."
                )
            blocks = [block["add"] for block in sorted(measured, key=lambda block: block["drop"])[:blocks]]
        model = prune.drop_blocks(model, blocks)
    choose = {
        "criterion": settings["criterion"],
        "protect": settings["protect"],
        "allocation": settings["allocation"],
        "budget": budget,
    }
    board = _board(log_dir, "channels")
    if settings["steps"] > 1:
        model, _ = prune.iterative(
            model, (x_train, y_train), settings["ratio"], steps=settings["steps"],
            epochs_per_step=settings["finetune_epochs"], learning_rate=settings["learning_rate"],
            batch_size=fit["batch_size"], callbacks=board, verbose=fit["verbose"], **choose,
        )  # fmt: skip
        return model
    scoring = (x_train[:_SCORE_EXAMPLES], y_train[:_SCORE_EXAMPLES])
    data = scoring if settings["criterion"] in prune.criteria.NEEDS_DATA else None
    model = prune.channels(model, settings["ratio"], data=data, **choose)
    if settings["finetune_epochs"]:
        prune.finetune(
            model, (x_train, y_train), epochs=settings["finetune_epochs"], learning_rate=settings["learning_rate"],
            batch_size=fit["batch_size"], callbacks=board, verbose=fit["verbose"],
        )  # fmt: skip
    else:
        _compile(model, settings["learning_rate"])
    return model


def _widths(before, after) -> dict:
    """Output channels of every pruned or kept layer, before and after the channels stage (0: dropped)."""
    before = flat_copy(before) if nested_models(before) else before  # the stage prunes the flat copy
    old, new = prune.plan_channels(before, 0.0).widths(), prune.plan_channels(after, 0.0).widths()
    return {name: [width, new.get(name, (0,))[0]] for name, (width, _) in old.items()}


def _prune(model, settings, x_train, y_train, fit, log_dir):
    steps = math.ceil(len(x_train) / fit["batch_size"])
    pruning = prune.magnitude(model, settings["sparsity"], epochs=settings["epochs"], steps_per_epoch=steps)
    _compile(pruning, settings["learning_rate"])
    epochs = settings["epochs"] + settings["finetune_epochs"]
    pruning.fit(x_train, y_train, epochs=epochs, callbacks=prune.callbacks() + _board(log_dir, "prune"), **fit)
    # Strip before anything else: QAT and export need the plain model with its zeros.
    return prune.strip(pruning)


def _compile(model, learning_rate):
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=outputs_logits(model)),
        metrics=["accuracy"],
    )


def _board(log_dir, name):
    return [keras.callbacks.TensorBoard(log_dir=os.path.join(log_dir, name))]


def _load_data(spec, seed):
    """`(train, test, class_names)` as checked numpy arrays, from the recipe's data section."""
    source, path = spec["source"], spec["path"]
    class_names = None
    if source == "builtin":
        train, test = data.load_digits(test_fraction=spec["test_fraction"], seed=seed)
    elif source == "mnist":
        train, test = data.load_mnist(path)
    elif source == "npz":
        train, test = _load_npz(path)
    else:
        (train_set, test_set), class_names = data.load_image_directory(
            path,
            image_size=spec["image_size"],
            color_mode=spec["color_mode"],
            validation_split=spec["test_fraction"],
            subset="both",
            seed=seed,
        )
        train, test = (train_set,), (test_set,)  # as_arrays below reads the datasets
    (x_train, y_train), (x_test, y_test) = (
        data.as_arrays(*train, argument="data (training)"),
        data.as_arrays(*test, argument="data (test)"),
    )
    for labels, part in ((y_train, "training"), (y_test, "test")):
        if labels is None or labels.ndim != 1 or not np.issubdtype(labels.dtype, np.integer) or labels.min() < 0:
            raise ValueError(f"The {part} labels must be integer class indices 0..n-1, one per example.")
    if x_train.shape[1:] != x_test.shape[1:]:
        raise ValueError(f"Training images have shape {x_train.shape[1:]} but test images {x_test.shape[1:]}.")
    return (x_train, y_train), (x_test, y_test), class_names


def _load_npz(path):
    if not os.path.isfile(path):
        raise FileNotFoundError(f"No .npz file at {path}.")
    with np.load(path, allow_pickle=False) as arrays:
        missing = [key for key in ("x_train", "y_train", "x_test", "y_test") if key not in arrays.files]
        if missing:
            raise ValueError(f"{path} lacks the arrays {missing}; it needs x_train, y_train, x_test and y_test.")
        return (arrays["x_train"], arrays["y_train"]), (arrays["x_test"], arrays["y_test"])


def _load_model(reference, input_shape, classes, key, trust_code):
    """A Keras 2 model the pipeline may train: a copy of an object, a loaded file, or a built-in CNN."""
    if reference == "builtin:resnet":
        return demo.residual_net(16, 3, "resnet", tuple(input_shape), classes=classes)
    if _is_builtin(reference):
        filters, units = _BUILTIN_SHAPES[reference]
        return demo.conv_net(filters, units, reference.split(":")[1], tuple(input_shape), classes=classes)
    if isinstance(reference, str):
        model = _model_files.load(reference, trust_code=trust_code, argument=key)
    elif is_keras3_model(reference):
        model = from_keras3(reference)
    else:
        model = clone_with_weights(ensure_graph_model(reference, key))
    ensure_graph_model(model, key)
    if tuple(model.input_shape[1:]) != tuple(input_shape):
        raise ValueError(
            f"`{key}` takes inputs of shape {model.input_shape[1:]}, but the data's images are {input_shape}."
        )
    if model.output_shape[-1] != classes:
        raise ValueError(f"`{key}` outputs {model.output_shape[-1]} scores, but the data has {classes} classes.")
    return model


def _is_builtin(reference) -> bool:
    return isinstance(reference, str) and reference.startswith("builtin:")


def _output_paths(checked) -> dict:
    """Every path the run writes, checked before any training."""
    folder = os.path.abspath(checked["output_dir"])
    export_settings = checked["stages"]["export"]
    paths = {
        "folder": folder,
        "model": os.path.join(folder, f"model_{export_settings['mode']}.tflite"),
        "tensorboard": os.path.join(folder, "tensorboard"),
        "android": os.path.join(folder, "android"),
    }
    paths.update({key: os.path.join(folder, name) for key, name in reports.REPORT_FILES.items()})
    if not os.path.isdir(os.path.dirname(folder)):
        raise FileNotFoundError(
            f"The folder {os.path.dirname(folder)} does not exist; create it, or change output_dir."
        )
    overwrite = checked["overwrite"]
    for key, path in paths.items():
        if key in ("folder", "tensorboard", "android"):
            continue
        if os.path.exists(path) and not overwrite:
            raise FileExistsError(
                f"{path} already exists and was left as it is. Set `overwrite: true` (--overwrite), "
                "or choose another output_dir."
            )
    if os.path.isdir(folder) and not os.access(folder, os.W_OK):
        raise PermissionError(f"The folder {folder} is not writable. Choose another output_dir.")
    if os.path.isdir(paths["tensorboard"]) and os.listdir(paths["tensorboard"]) and not overwrite:
        raise FileExistsError(
            f"{paths['tensorboard']} holds an earlier run's logs. Set `overwrite: true`, or another output_dir."
        )
    if (
        export_settings["android_labels"]
        and os.path.isdir(paths["android"])
        and os.listdir(paths["android"])
        and not overwrite
    ):
        raise FileExistsError(
            f"{paths['android']} holds an earlier bundle. Set `overwrite: true`, or another output_dir."
        )
    return paths


def _json_value(value):
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return f"<{type(value).__name__} {getattr(value, 'name', '')}>".replace(" >", ">")


class _Measure:
    """One report row per stage: size, sparsity, accuracy and latency of the stage's model."""

    def __init__(self, x_test, y_test):
        self._x, self._y = x_test, y_test

    def __call__(self, stage, model, seconds, quantization_aware=False) -> dict:
        counts = prune.report(model)
        row = {
            "stage": stage,
            "seconds": seconds,
            "parameters": counts["parameters"],
            "nonzero_parameters": counts["nonzero_parameters"],
            "keras_accuracy": self._accuracy(model),
            "tflite_bytes": None,
            "gzip_bytes": None,
            "tflite_accuracy": None,
            "latency_ms": None,
            "layers": counts["layers"],
        }
        if quantization_aware:  # its file is the export's; a float32 copy would not say anything new
            return row
        with tempfile.TemporaryDirectory() as folder, _quiet():
            result = export.to_tflite(model, os.path.join(folder, "stage.tflite"), mode="float32")
            return self._with_file(row, model, result)

    def exported(self, stage, model, result, seconds) -> dict:
        row = self(stage, model, seconds, quantization_aware=True)
        return self._with_file(row, model, result)

    def _with_file(self, row, model, result):
        check = export.verify(result.path, model, self._x, self._y)
        (timing,) = export.benchmark(result.path, threads=1, xnnpack=True, runs=50, max_seconds=5)["latency"]
        row.update(
            tflite_bytes=result.bytes,
            gzip_bytes=result.gzip_bytes,
            tflite_accuracy=check["tflite_accuracy"],
            top1_agreement=check["top1_agreement"],
            latency_ms=timing["median_ms"],
        )
        return row

    def _accuracy(self, model):
        predictions = model.predict(self._x, batch_size=256, verbose=0)
        return float(np.mean(np.argmax(predictions, axis=-1) == self._y))


@contextlib.contextmanager
def _quiet():
    # Float32 size measurements need no warnings about the fast path; the export's own are kept.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield
