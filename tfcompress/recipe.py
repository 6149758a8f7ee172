"""Recipes: what `tfc.pipeline.run` does, from a dict or a JSON/YAML file, checked before any training.

A recipe names the model, the data, the output folder and the stages with their
settings. Every key is checked against the schema below; an unknown key or a bad value
raises `RecipeError` naming the key (as a dotted path) and what it accepts.

Example recipe (YAML):

    model: builtin:student
    data: builtin
    output_dir: compressed
    stages:
      distill: {teacher: builtin:teacher, teacher_epochs: 10, epochs: 20}
      channels: {ratio: 0.5, finetune_epochs: 2}
      prune: {sparsity: 0.8, epochs: 5, finetune_epochs: 2}
      qat: {epochs: 2}
      export: {mode: int8, android_labels: ["0", "1", "2", "3", "4", "5", "6", "7", "8", "9"]}
"""

import copy
import json
import numbers
import os

import yaml

# The stages in the order they run: each hands a plain Keras model to the next.
STAGES = ("train", "distill", "channels", "prune", "qat", "export")
BUILTIN_MODELS = ("builtin:teacher", "builtin:student", "builtin:resnet")
# tfcompress.prune.criteria.CRITERIA's names (kept here so reading a recipe does not load TensorFlow).
CHANNEL_CRITERIA = ("l1", "l2", "bn_gamma", "taylor", "mean_activation", "apoz")
DATA_SOURCES = ("builtin", "mnist", "directory", "npz")
EXPORT_MODES = ("int8", "float32", "float16", "dynamic", "int16x8", "weights_int8", "weights_int4", "dynamic_int4")
IO_DTYPES = (None, "uint8", "int8", "float32", "int16")


class RecipeError(ValueError):
    """A recipe key is unknown, missing or has a bad value; raised before any work starts."""


def _positive_int(value):
    return isinstance(value, numbers.Integral) and not isinstance(value, bool) and value >= 1, "a positive integer"


def _count(value):
    return isinstance(value, numbers.Integral) and not isinstance(value, bool) and value >= 0, "an integer >= 0"


def _positive(value):
    return _real(value) and value > 0, "a positive number"


def _unit(value):
    return _real(value) and 0 <= value <= 1, "a number in [0, 1]"


def _sparsity(value):
    return _real(value) and 0 <= value < 1, "a number in [0, 1)"


def _real(value):
    return isinstance(value, numbers.Real) and not isinstance(value, bool) and value == value


def _one_of(*choices):
    return lambda value: (value in choices, f"one of {list(choices)}")


def _model_reference(value):
    ok = isinstance(value, str) and value.strip() != "" or _is_model(value)
    return ok, f"a model file or folder (.keras, .h5, SavedModel), a Keras model, or one of {list(BUILTIN_MODELS)}"


def _labels(value):
    ok = isinstance(value, list) and value and all(isinstance(item, str) and item for item in value)
    return ok, "a list of class names (non-empty strings), in output order"


def _float_layers(value):
    names = isinstance(value, list) and all(isinstance(item, str) for item in value)
    return names or _positive_int(value)[0] or _positive(value)[0], "layer names, a count, or an error threshold"


def _budget(value):
    ok = (
        isinstance(value, dict)
        and len(value) == 1
        and next(iter(value)) in ("parameters", "macs")
        and _real(next(iter(value.values())))
        and next(iter(value.values())) > 0
    )
    return ok, "{parameters: n} or {macs: n}, n a share in (0, 1) or a count"


def _blocks(value):
    names = isinstance(value, list) and all(isinstance(item, str) and item for item in value)
    return names or _positive_int(value)[0], "a list of residual blocks' Add layer names, or how many to drop"


def _image_size(value):
    ok = isinstance(value, list) and len(value) == 2 and all(_positive_int(side)[0] for side in value)
    return ok, "[height, width] in pixels"


def _boolean(value):
    return isinstance(value, bool), "true or false"


def _text(value):
    return isinstance(value, str) and value != "", "a non-empty string"


def _is_model(value):
    return hasattr(value, "layers") and hasattr(value, "predict")


# For each section: key -> (check, default). A default of `_REQUIRED` must be given.
_REQUIRED = object()
SCHEMA = {
    "": {
        "model": (_model_reference, _REQUIRED),
        "data": (None, "builtin"),
        "output_dir": (_text, "tfcompress_output"),
        "overwrite": (_boolean, False),
        "trust_model_code": (_boolean, False),
        "seed": (_count, 0),
        "batch_size": (_positive_int, 32),
        "stages": (None, _REQUIRED),
    },
    "data": {
        "source": (_one_of(*DATA_SOURCES), "builtin"),
        "path": (_text, None),
        "image_size": (_image_size, [28, 28]),
        "color_mode": (_one_of("grayscale", "rgb"), "grayscale"),
        "test_fraction": (lambda v: (_real(v) and 0 < v < 1, "a number in (0, 1)"), 0.2),
    },
    "train": {"epochs": (_positive_int, 10), "learning_rate": (_positive, 1e-3)},
    "distill": {
        "teacher": (_model_reference, _REQUIRED),
        "teacher_epochs": (_count, 0),
        "epochs": (_positive_int, 10),
        "alpha": (_unit, 0.1),
        "temperature": (_positive, 4.0),
        "learning_rate": (_positive, 1e-3),
    },
    "channels": {
        "ratio": (_sparsity, None),  # 0.5 unless a budget is given
        "budget": (_budget, None),
        "criterion": (_one_of(*CHANNEL_CRITERIA), "l1"),
        "allocation": (_one_of("uniform", "global"), "uniform"),
        "protect": (
            lambda v: (
                isinstance(v, list) and all(isinstance(i, str) for i in v),
                "a list of layer names ('first' and 'last' for the first and last prunable layers)",
            ),
            [],
        ),
        "steps": (_positive_int, 1),
        "finetune_epochs": (_count, 2),
        "gamma_penalty": (lambda v: (_real(v) and v >= 0, "a number >= 0"), 0.0),
        "penalty_epochs": (_positive_int, 2),
        "drop_blocks": (_blocks, []),
        "learning_rate": (_positive, 5e-4),
    },
    "prune": {
        "sparsity": (_sparsity, 0.8),
        "epochs": (_positive_int, 3),
        "finetune_epochs": (_count, 1),
        "learning_rate": (_positive, 5e-4),
    },
    "qat": {"epochs": (_positive_int, 2), "learning_rate": (_positive, 1e-4)},
    "export": {
        "mode": (_one_of(*EXPORT_MODES), "int8"),
        "io_dtype": (_one_of(*IO_DTYPES), None),
        "calibration_samples": (_positive_int, 500),
        "float_layers": (_float_layers, None),
        "android_labels": (_labels, None),
        "pixel_range": (lambda v: (isinstance(v, list) and len(v) == 2 and all(map(_real, v)), "[low, high]"), [0, 1]),
    },
}


def load(source) -> dict:
    """Reads a recipe from a dict, or a `.json`, `.yaml` or `.yml` file (YAML parsed safely).

    Args:
      source: a dict, or the path of a recipe file.

    Returns:
      A new dict (the source is not modified), not yet checked: see `check`.

    Raises:
      FileNotFoundError: the file does not exist.
      RecipeError: the file's suffix is not one of the accepted ones, it does not parse,
        or it does not hold a mapping.

    Example:
      >>> recipe = tfc.recipe.load("examples/digits.yaml")
    """
    if isinstance(source, dict):
        return map_values(source)
    path = os.fspath(source)
    suffix = os.path.splitext(path)[1].lower()
    if suffix not in (".json", ".yaml", ".yml"):
        raise RecipeError(f"The recipe {path} must be a .json, .yaml or .yml file (or a dict).")
    if not os.path.isfile(path):
        raise FileNotFoundError(f"No recipe file at {path}.")
    with open(path, encoding="utf-8") as file:
        text = file.read()
    try:
        recipe = json.loads(text) if suffix == ".json" else yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError) as error:
        raise RecipeError(f"The recipe {path} does not parse as {suffix[1:].upper()}: {error}") from None
    if not isinstance(recipe, dict):
        raise RecipeError(f"The recipe {path} must hold a mapping of keys to values; it holds {type(recipe).__name__}.")
    return recipe


def override(recipe: dict, assignments) -> dict:
    """Sets recipe values from `key.path=value` strings, as the CLI's `--set` passes them.

    Values are parsed as YAML scalars or lists: `0.5`, `true`, `int8`, `[a, b]`.

    Args:
      recipe: a recipe dict (not modified).
      assignments: strings such as "stages.prune.sparsity=0.5".

    Returns:
      A new recipe dict with the values set.

    Raises:
      RecipeError: an assignment has no `=`, or its path runs through a value that is
        not a mapping.

    Example:
      >>> override(recipe, ["stages.prune.sparsity=0.5", "output_dir=out"])
    """
    result = map_values(recipe)
    for assignment in assignments:
        key, separator, text = assignment.partition("=")
        if not separator or not key.strip():
            raise RecipeError(
                f"An override must look like key.path=value, e.g. stages.prune.sparsity=0.5; got {assignment!r}."
            )
        *parents, leaf = key.strip().split(".")
        node = result
        for part in parents:
            if node.get(part) is None:  # `export:` with nothing after it in YAML
                node[part] = {}
            node = node[part]
            if not isinstance(node, dict):
                raise RecipeError(f"Cannot set {key}: {part} is not a section of the recipe.")
        node[leaf] = yaml.safe_load(text)
    return result


def check(recipe: dict) -> dict:
    """Checks every key and value, and fills in the defaults.

    Args:
      recipe: a recipe dict, as `load` returns.

    Returns:
      The complete recipe: `model`, `data` (a dict with `source` and its settings),
      `output_dir`, `overwrite`, `seed`, `batch_size`, and `stages` holding each stage
      asked for with all its settings.

    Raises:
      RecipeError: a key is unknown or missing, or a value is not accepted; the message
        names the key and the accepted values.

    Example:
      >>> tfc.recipe.check({"model": "model.keras", "stages": {"export": {}}})["stages"]["export"]["mode"]
      'int8'
    """
    if not isinstance(recipe, dict):
        raise RecipeError(f"A recipe is a mapping of keys to values; got {type(recipe).__name__}.")
    complete = _section(recipe, "", "")
    data = complete["data"]
    if isinstance(data, str):
        data = {"source": data}
    if not isinstance(data, dict):
        raise RecipeError(f"`data` must be one of {list(DATA_SOURCES)} or a mapping with `source`; got {data!r}.")
    complete["data"] = _section(data, "data", "data.")
    if complete["data"]["source"] != "builtin" and not complete["data"]["path"]:
        raise RecipeError(
            f"`data.path` is required for data.source {complete['data']['source']!r}: the file or folder."
        )
    stages = complete["stages"]
    if not isinstance(stages, dict) or not stages:
        raise RecipeError(f"`stages` must map stage names to their settings, with at least one of {list(STAGES)}.")
    unknown = [name for name in stages if name not in STAGES]
    if unknown:
        raise RecipeError(f"Unknown stage {unknown[0]!r} in `stages`; the stages are {list(STAGES)}.")
    complete["stages"] = {
        name: _section(stages[name] if stages[name] is not None else {}, name, f"stages.{name}.")
        for name in STAGES
        if name in stages
    }
    channels = stages.get("channels") or {}
    if channels.get("penalty_epochs") is not None and not complete["stages"]["channels"]["gamma_penalty"]:
        raise RecipeError(
            "`stages.channels.penalty_epochs` trains with the BatchNorm gamma penalty, which is off: set "
            "`gamma_penalty` above 0 (e.g. 1e-4), or remove `penalty_epochs`."
        )
    _check_combination(complete)
    return complete


def map_values(value, leaf=lambda item: item):
    """Copies a recipe's dicts and lists, passing every other value through `leaf`.

    With the default `leaf` this is a copy that keeps a Keras model the same object.

    Args:
      value: a recipe or any part of it.
      leaf: applied to each value that is not a dict or a list.

    Returns:
      The new structure.

    Example:
      >>> map_values(recipe, repr)   # every value as text
    """
    if isinstance(value, dict):
        return {key: map_values(item, leaf) for key, item in value.items()}
    if isinstance(value, list):
        return [map_values(item, leaf) for item in value]
    return leaf(value)


def _section(values, section, prefix):
    if not isinstance(values, dict):
        raise RecipeError(f"`{prefix.rstrip('.') or 'recipe'}` must be a mapping of settings; got {values!r}.")
    schema = SCHEMA[section]
    unknown = [key for key in values if key not in schema]
    if unknown:
        raise RecipeError(f"Unknown key `{prefix}{unknown[0]}`; the keys here are {sorted(schema)}.")
    complete = {}
    for key, (validate, default) in schema.items():
        if key not in values or (values[key] is None and default is not _REQUIRED):
            if default is _REQUIRED:
                accepted = validate(None)[1] if validate else f"a mapping of stage names {list(STAGES)} to settings"
                raise RecipeError(f"`{prefix}{key}` is required: {accepted}.")
            complete[key] = copy.deepcopy(default)
            continue
        value = values[key]
        if validate is not None:
            ok, accepted = validate(value)
            if not ok:
                raise RecipeError(f"`{prefix}{key}` must be {accepted}. Received: {value!r}")
        complete[key] = value
    return complete


def _check_combination(recipe):
    stages = recipe["stages"]
    builtin_model = isinstance(recipe["model"], str) and recipe["model"].startswith("builtin:")
    if builtin_model and recipe["model"] not in BUILTIN_MODELS:
        raise RecipeError(f"`model` {recipe['model']!r} is not a built-in model; those are {list(BUILTIN_MODELS)}.")
    if builtin_model and "train" not in stages and "distill" not in stages:
        raise RecipeError(f"`model` {recipe['model']!r} starts untrained: add a `train` or `distill` stage.")
    if "distill" in stages:
        teacher = stages["distill"]["teacher"]
        if isinstance(teacher, str) and teacher.startswith("builtin:"):
            if teacher not in BUILTIN_MODELS:
                raise RecipeError(f"`stages.distill.teacher` {teacher!r} is not one of {list(BUILTIN_MODELS)}.")
            if stages["distill"]["teacher_epochs"] < 1:
                raise RecipeError("A built-in teacher starts untrained: set `stages.distill.teacher_epochs` >= 1.")
    channels = stages.get("channels")
    if channels is not None and channels["ratio"] is not None and channels["budget"] is not None:
        raise RecipeError("`stages.channels` takes `ratio` or `budget`, not both: a budget finds its own ratio.")
    if channels is not None and channels["steps"] > 1 and channels["finetune_epochs"] < 1:
        raise RecipeError("`stages.channels.steps` > 1 fine-tunes after each step: set `finetune_epochs` >= 1.")
    export = stages.get("export")
    if export is None:
        raise RecipeError("`stages.export` is required: the pipeline's result is a .tflite file (use `export: {}`).")
    if "qat" in stages and export["mode"] != "int8":
        raise RecipeError(
            f"`stages.qat` trains for int8; `stages.export.mode` must then be 'int8', not {export['mode']!r}."
        )
    if export["float_layers"] is not None and ("qat" in stages or export["mode"] != "int8"):
        raise RecipeError("`stages.export.float_layers` needs post-training int8: mode 'int8' and no `qat` stage.")
