"""Recipes: what `tfc.pipeline.run` does, from a dict or a JSON/YAML file, checked before any training.

A recipe names the model, the data, the output folder and the stages with their
settings, and optionally the task of the model's output (`task: binary`, ...; by default
the output layer and the labels say it). Every key is checked against the schema below; an unknown key or a bad value
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

import json
import os

import yaml

from tfcompress._checks import check_that
from tfcompress._choices import BUILTIN_MODELS, DATA_SOURCES, DISTRIBUTE, TASKS
from tfcompress.pipeline import inputs
from tfcompress.pipeline.schema import (
    Key,
    RecipeError,
    boolean,
    choice,
    complete,
    count,
    is_positive_integer,
    number,
    positive_integer,
    text,
)
from tfcompress.pipeline.stages import BY_NAME, REGISTERED

__all__ = ["SCHEMA", "STAGES", "RecipeError", "check", "load", "map_values", "override"]

# The stages in the order they run: each hands a plain Keras model to the next.
STAGES = tuple(stage.name for stage in REGISTERED)


def _image_size(name, value):
    ok = isinstance(value, list) and len(value) == 2 and all(map(is_positive_integer, value))
    check_that(ok, name, value, "[height, width] in pixels")


# Each section's keys: the top level, `data`, and one section per registered stage.
SCHEMA = {
    "": {
        "model": Key(inputs.check_reference, accepts=inputs.REFERENCE),
        "task": choice((None, *TASKS), None),  # None: the model's output layer and the labels say it
        "data": Key(None, "builtin"),
        "output_dir": Key(text, "tfcompress_output"),
        "overwrite": Key(boolean, False),
        "trust_model_code": Key(boolean, False),
        "stage_files": Key(boolean, False),
        "distribute": choice((None, *DISTRIBUTE), None),
        "seed": Key(count, 0),
        "batch_size": Key(positive_integer, 32),
        "stages": Key(None, accepts=f"a mapping of stage names {list(STAGES)} to settings"),
    },
    "data": {
        "source": choice(DATA_SOURCES, "builtin"),
        "path": Key(text, None),
        "image_size": Key(_image_size, [28, 28]),
        "color_mode": choice(("grayscale", "rgb"), "grayscale"),
        "test_fraction": Key(number(0, 1, low_open=True, high_open=True), 0.2),
    },
    **{stage.name: stage.schema for stage in REGISTERED},
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

    Examples:
      >>> recipe = tfc.pipeline.recipe.load("examples/resnet_channels.yaml")
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

    Examples:
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
                raise RecipeError(
                    f"Cannot set {key}: {part} is {node!r}, not a section of the recipe; set the whole of it "
                    f"instead, e.g. '{part}={{key: value, ...}}'."
                )
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

    Examples:
      >>> tfc.pipeline.recipe.check({"model": "model.keras", "stages": {"export": {}}})["stages"]["export"]["mode"]
      'int8'
    """
    if not isinstance(recipe, dict):
        raise RecipeError(f"A recipe is a mapping of keys to values; got {type(recipe).__name__}.")
    checked = complete(recipe, SCHEMA[""], "")
    data = checked["data"]
    if isinstance(data, str):
        data = {"source": data}
    if not isinstance(data, dict):
        raise RecipeError(f"`data` must be one of {list(DATA_SOURCES)} or a mapping with `source`; got {data!r}.")
    checked["data"] = complete(data, SCHEMA["data"], "data.")
    if checked["data"]["source"] != "builtin" and not checked["data"]["path"]:
        raise RecipeError(
            f"`data.path` is required for data.source {checked['data']['source']!r}: the file or folder."
        )
    stages = checked["stages"]
    if not isinstance(stages, dict) or not stages:
        raise RecipeError(f"`stages` must map stage names to their settings, with at least one of {list(STAGES)}.")
    unknown = [name for name in stages if name not in BY_NAME]
    if unknown:
        raise RecipeError(f"Unknown stage {unknown[0]!r} in `stages`; the stages are {list(STAGES)}.")
    checked["stages"] = {
        name: complete(stages[name], SCHEMA[name], f"stages.{name}.") for name in STAGES if name in stages
    }
    _check_model(checked)
    for name in checked["stages"]:
        if BY_NAME[name].check:
            BY_NAME[name].check(checked)
    return checked


def map_values(value, leaf=lambda item: item):
    """Copies a recipe's dicts and lists, passing every other value through `leaf`."""
    if isinstance(value, dict):
        return {key: map_values(item, leaf) for key, item in value.items()}
    if isinstance(value, list):
        return [map_values(item, leaf) for item in value]
    return leaf(value)


def _check_model(recipe):
    stages, model = recipe["stages"], recipe["model"]
    if inputs.is_builtin(model) and model not in BUILTIN_MODELS:
        raise RecipeError(f"`model` {model!r} is not a built-in model; those are {list(BUILTIN_MODELS)}.")
    if inputs.is_builtin(model) and "train" not in stages and "distill" not in stages:
        raise RecipeError(f"`model` {model!r} starts untrained: add a `train` or `distill` stage.")
    if "export" not in stages:
        raise RecipeError("`stages.export` is required: the pipeline's result is a .tflite file (use `export: {}`).")
