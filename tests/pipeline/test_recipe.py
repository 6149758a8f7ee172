"""Recipes: loading, overrides, the schema every registered stage declares, and the checks before any work."""

import os

import pytest
import yaml

import tfcompress as tfc
from tfcompress.pipeline.schema import Key
from tfcompress.pipeline.stages import REGISTERED

EXAMPLES = os.path.join(os.path.dirname(__file__), "..", "..", "examples")
EXAMPLE = tfc.demo.RECIPE


def test_recipes_load_from_yaml_and_overrides_apply(tmp_path):
    path = tmp_path / "recipe.yml"
    path.write_text(yaml.safe_dump({"model": "m.keras", "stages": {"prune": {"sparsity": 0.8}, "export": None}}))
    changes = ["stages.prune.sparsity=0.5", "stages.export.mode=float16"]
    recipe = tfc.pipeline.recipe.override(tfc.pipeline.recipe.load(path), changes)
    checked = tfc.pipeline.recipe.check(recipe)
    assert checked["stages"]["prune"] == {
        "sparsity": 0.5, "epochs": 3, "finetune_epochs": 1, "learning_rate": 5e-4, "distill_recovery": False
    }  # fmt: skip
    assert checked["stages"]["export"]["mode"] == "float16" and checked["data"]["source"] == "builtin"



@pytest.mark.parametrize("path", [EXAMPLE] + sorted(os.path.join(EXAMPLES, name) for name in os.listdir(EXAMPLES)))
def test_every_example_recipe_passes_the_checks(path):
    checked = tfc.pipeline.recipe.check(tfc.pipeline.recipe.load(path))
    assert checked["stages"]["export"]["mode"] == "int8"



def test_the_schema_and_the_stage_order_come_from_the_registered_stages():
    assert tfc.pipeline.recipe.STAGES == tuple(stage.name for stage in REGISTERED)
    for stage in REGISTERED:
        assert tfc.pipeline.recipe.SCHEMA[stage.name] is stage.schema
        assert all(isinstance(key, Key) for key in stage.schema.values())
        given = {"teacher": "t.keras"} if stage.name == "distill" else {}  # its one required key
        defaults = tfc.pipeline.recipe.check({"model": "m.keras", "stages": {stage.name: given, "export": {}}})
        assert stage.title(defaults["stages"][stage.name])


@pytest.mark.parametrize("stage", [stage.name for stage in REGISTERED])
def test_every_stage_refuses_an_unknown_key_by_its_dotted_name(stage):
    with pytest.raises(tfc.pipeline.recipe.RecipeError, match=rf"Unknown key `stages\.{stage}\.epoch`"):
        tfc.pipeline.recipe.check({"model": "m.keras", "stages": {"export": {}, stage: {"epoch": 1}}})


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"seed": -1}, r"`seed` must be an integer >= 0\. Received: seed=-1"),
        ({"batch_size": 0}, r"`batch_size` must be a positive integer"),
        ({"trust_model_code": "yes"}, r"`trust_model_code` must be true or false"),
        ({"stages": {"train": {"learning_rate": 0}, "export": {}}}, r"`stages\.train\.learning_rate` must be a num"),
        ({"stages": {"channels": {"criterion": "l3"}, "train": {}, "export": {}}}, r"must be one of \['l1', 'l2'"),
        ({"data": {"source": "npz"}}, r"`data\.path` is required"),
        ({"data": {"test_fraction": 1}}, r"`data\.test_fraction` must be a number in \(0, 1\)"),
    ],
)
def test_bad_values_are_named_in_the_package_s_one_message_form(changes, message):
    recipe = {"model": "builtin:student", "stages": {"train": {}, "export": {}}, **changes}
    with pytest.raises(tfc.pipeline.recipe.RecipeError, match=message):
        tfc.pipeline.recipe.check(recipe)


def test_check_fills_every_default_and_leaves_the_input_untouched():
    recipe = {"model": "builtin:student", "stages": {"train": None, "export": {"mode": "float16"}}}
    before = yaml.safe_dump(recipe)
    checked = tfc.pipeline.recipe.check(recipe)
    assert yaml.safe_dump(recipe) == before
    assert checked["stages"]["train"] == {"epochs": 10, "learning_rate": 1e-3}
    assert checked["trust_model_code"] is False and checked["stage_files"] is False


def test_an_override_into_a_shorthand_value_says_to_set_the_whole_section():
    recipe = {"model": "builtin:student", "data": "builtin", "stages": {"train": {}, "export": {}}}
    with pytest.raises(tfc.pipeline.recipe.RecipeError, match=r"data is 'builtin', not a section.*'data=\{key: value"):
        tfc.pipeline.recipe.override(recipe, ["data.path=digits.npz"])
    changed = tfc.pipeline.recipe.override(recipe, ["data={source: npz, path: digits.npz}"])
    assert tfc.pipeline.recipe.check(changed)["data"]["path"] == "digits.npz" and recipe["data"] == "builtin"
