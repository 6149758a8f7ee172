"""Bad inputs to recipes and the pipeline: its cases of the catalogue (tests/test_bad_inputs.py)."""

import tfcompress as tfc
from tests.bad_inputs_support import earlier_run, file, keras3_custom_file, lambda_file, nan_npz, npz, recipe
from tfcompress import keras


def _saved_mid_pruning(tmp, keras):
    """A file of a model being pruned, saved by `keras` (tf_keras or Keras 3) as `model.save` writes it."""
    model = keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Flatten(), keras.layers.Dense(10)])
    staged = tmp / f"staged_{keras.__name__}.keras"
    tfc.prune.magnitude(model, 0.5, end_step=2).save(staged)
    content = staged.read_bytes()
    staged.unlink()
    return str(file(tmp, f"pruning_{keras.__name__}.keras", content))  # planted: it must come out unchanged


def _keras3():
    import keras as keras3

    return keras3


CASES = {
    "pipeline: a tf_keras model saved mid-pruning (TF-MOT's wrappers)": (
        lambda t, m, x: tfc.pipeline.run(recipe(t, model=_saved_mid_pruning(t, keras))),
        ValueError,
        r"still being pruned .*tfc\.prune\.strip\(model\)\.save",
    ),
    "pipeline: a Keras 3 model saved mid-pruning (its masks)": (
        lambda t, m, x: tfc.pipeline.run(recipe(t, model=_saved_mid_pruning(t, _keras3()))),
        ValueError,
        r"still being pruned .*tfc\.prune\.strip\(model\)\.save",
    ),
    "recipe: unknown key": (
        lambda t, m, x: tfc.pipeline.run(recipe(t, epochs=3)),
        tfc.pipeline.recipe.RecipeError,
        "Unknown key `epochs`",
    ),
    "recipe: unknown stage": (
        lambda t, m, x: tfc.pipeline.run(recipe(t, stages={"quantise": {}, "export": {}})),
        tfc.pipeline.recipe.RecipeError,
        "Unknown stage 'quantise'",
    ),
    "recipe: sparsity out of range": (
        lambda t, m, x: tfc.pipeline.run(recipe(t, stages={"prune": {"sparsity": 1.5}, "export": {}})),
        tfc.pipeline.recipe.RecipeError,
        r"`stages.prune.sparsity` must be a number in \[0, 1\)",
    ),
    "recipe: accuracy target with a qat stage": (
        lambda t, m, x: tfc.pipeline.run(
            recipe(t, stages={"train": {}, "qat": {}, "export": {"max_accuracy_drop": 0.01}})
        ),
        tfc.pipeline.recipe.RecipeError,
        "control post-training int8",
    ),
    "recipe: calibration method with a qat stage": (
        lambda t, m, x: tfc.pipeline.run(recipe(t, stages={"train": {}, "qat": {}, "export": {"calibration": "kl"}})),
        tfc.pipeline.recipe.RecipeError,
        "`stages.export.calibration`, `weight_calibration` and `rounding` choose post-training int8 ranges and",
    ),
    "recipe: int16 layers with an accuracy target": (
        lambda t, m, x: tfc.pipeline.run(
            recipe(t, stages={"train": {}, "export": {"int16_layers": ["dense"], "max_accuracy_drop": 0.01}})
        ),
        tfc.pipeline.recipe.RecipeError,
        "`stages.export.int16_layers` and `int4_layers` choose post-training int8 precision per layer",
    ),
    "recipe: budget without an accuracy target": (
        lambda t, m, x: tfc.pipeline.run(recipe(t, stages={"train": {}, "export": {"budget": {"bytes": 10_000}}})),
        tfc.pipeline.recipe.RecipeError,
        "`stages.export.budget` limits accuracy control's choice",
    ),
    "recipe: budget of unknown measures": (
        lambda t, m, x: tfc.pipeline.run(
            recipe(t, stages={"train": {}, "export": {"max_accuracy_drop": 0.01, "budget": {"size": 1}}})
        ),
        tfc.pipeline.recipe.RecipeError,
        r"`stages.export.budget`: `budget` must be a dict with `bytes`",
    ),
    "recipe: unknown calibration method": (
        lambda t, m, x: tfc.pipeline.run(recipe(t, stages={"train": {}, "export": {"calibration": "entropy"}})),
        tfc.pipeline.recipe.RecipeError,
        r"`stages.export.calibration` must be one of",
    ),
    "recipe: qat float layers with integer I/O": (
        lambda t, m, x: tfc.pipeline.run(
            recipe(t, stages={"train": {}, "qat": {"float_layers": ["first"]}, "export": {"io_dtype": "uint8"}})
        ),
        tfc.pipeline.recipe.RecipeError,
        "With `stages.qat.float_layers` the file reads and writes float32",
    ),
    "recipe: accuracy target out of range": (
        lambda t, m, x: tfc.pipeline.run(recipe(t, stages={"train": {}, "export": {"min_agreement": 99}})),
        tfc.pipeline.recipe.RecipeError,
        r"`stages.export.min_agreement` must be a number in \(0, 1\)",
    ),
    "recipe: channel ratio of 1": (
        lambda t, m, x: tfc.pipeline.run(recipe(t, stages={"train": {}, "channels": {"ratio": 1}, "export": {}})),
        tfc.pipeline.recipe.RecipeError,
        r"`stages.channels.ratio` must be a number in \[0, 1\)",
    ),
    "recipe: channel ratio and budget both": (
        lambda t, m, x: tfc.pipeline.run(
            recipe(t, stages={"train": {}, "channels": {"ratio": 0.5, "budget": {"macs": 0.5}}, "export": {}})
        ),
        tfc.pipeline.recipe.RecipeError,
        r"`stages.channels` takes `ratio` or `budget`, not both",
    ),
    "recipe: channel budget of flops": (
        lambda t, m, x: tfc.pipeline.run(
            recipe(t, stages={"train": {}, "channels": {"budget": {"flops": 1}}, "export": {}})
        ),
        tfc.pipeline.recipe.RecipeError,
        r"`stages.channels.budget` must be \{parameters: n\} or \{macs: n\}",
    ),
    "recipe: penalty epochs without a penalty": (
        lambda t, m, x: tfc.pipeline.run(
            recipe(t, stages={"train": {}, "channels": {"penalty_epochs": 3}, "export": {}})
        ),
        tfc.pipeline.recipe.RecipeError,
        r"`stages.channels.penalty_epochs` trains with the BatchNorm gamma penalty, which is off",
    ),
    "recipe: export mode misspelt": (
        lambda t, m, x: tfc.pipeline.run(recipe(t, stages={"train": {}, "export": {"mode": "int-8"}})),
        tfc.pipeline.recipe.RecipeError,
        r"`stages.export.mode` must be one of \['int8'",
    ),
    "recipe: no model": (
        lambda t, m, x: tfc.pipeline.run({"stages": {"export": {}}}),
        tfc.pipeline.recipe.RecipeError,
        "`model` is required",
    ),
    "recipe: untrained built-in model": (
        lambda t, m, x: tfc.pipeline.run(recipe(t, stages={"export": {}})),
        tfc.pipeline.recipe.RecipeError,
        "starts untrained",
    ),
    "recipe: QAT then float16": (
        lambda t, m, x: tfc.pipeline.run(recipe(t, stages={"train": {}, "qat": {}, "export": {"mode": "float16"}})),
        tfc.pipeline.recipe.RecipeError,
        "must then be 'int8'",
    ),
    "recipe: broken YAML": (
        lambda t, m, x: tfc.pipeline.run(file(t, "r.yaml", b"stages: [unclosed")),
        tfc.pipeline.recipe.RecipeError,
        "does not parse as YAML",
    ),
    "recipe: a text file": (
        lambda t, m, x: tfc.pipeline.run(file(t, "r.txt", b"model: m")),
        tfc.pipeline.recipe.RecipeError,
        ".json, .yaml or .yml",
    ),
    "recipe: override without =": (
        lambda t, m, x: tfc.pipeline.run(recipe(t), overrides=["stages.prune.sparsity"]),
        tfc.pipeline.recipe.RecipeError,
        "must look like key.path=value",
    ),
    "pipeline: model file missing": (
        lambda t, m, x: tfc.pipeline.run(recipe(t, model=str(t / "none.keras"))),
        FileNotFoundError,
        "no model file or folder",
    ),
    "pipeline: corrupt model file": (
        lambda t, m, x: tfc.pipeline.run(recipe(t, model=str(file(t, "m.keras", b"PK\x03\x04 broken")))),
        ValueError,
        "could not be loaded by Keras 2",
    ),
    "pipeline: model and data shapes differ": (
        lambda t, m, x: tfc.pipeline.run(
            recipe(
                t, model=keras.Sequential([keras.Input((28, 28, 1)), keras.layers.Flatten(), keras.layers.Dense(10)])
            )
        ),
        ValueError,
        r"takes inputs of shape \(28, 28, 1\), but the data's images are \(8, 8, 1\)",
    ),
    "pipeline: npz without test arrays": (
        lambda t, m, x: tfc.pipeline.run(recipe(t, data={"source": "npz", "path": str(npz(t, x_train=x))})),
        ValueError,
        r"lacks the arrays \['y_train', 'x_test', 'y_test'\]",
    ),
    "pipeline: NaN in the data": (
        lambda t, m, x: tfc.pipeline.run(recipe(t, data={"source": "npz", "path": str(nan_npz(t, x))})),
        ValueError,
        "NaN",
    ),
    "pipeline: earlier results in the output folder": (
        lambda t, m, x: tfc.pipeline.run(recipe(t, output_dir=str(earlier_run(t)))),
        FileExistsError,
        "already exists and was left as it is",
    ),
    "pipeline: .h5 model with a Lambda layer": (
        lambda t, m, x: tfc.pipeline.run(recipe(t, model=lambda_file(t, "h5"))),
        ValueError,
        r"holds Lambda layers \['touches_a_file'\].*trust_model_code: true",
    ),
    "pipeline: .keras model with a Lambda layer": (
        lambda t, m, x: tfc.pipeline.run(recipe(t, model=lambda_file(t, "keras"))),
        ValueError,
        r"holds Lambda layers \['touches_a_file'\].*--trust_model_code",
    ),
    "pipeline: SavedModel teacher with a Lambda layer": (
        lambda t, m, x: tfc.pipeline.run(
            recipe(t, stages={"distill": {"teacher": lambda_file(t, "savedmodel")}, "export": {}})
        ),
        ValueError,
        r"`stages.distill.teacher`: .* holds Lambda layers \['touches_a_file'\]",
    ),
    "pipeline: binary said of ten classes of labels": (
        lambda t, m, x: tfc.pipeline.run(recipe(t, task="binary"), progress=lambda line: None),
        ValueError,
        r"does not hold labels of a binary",
    ),
    "pipeline: a Keras 3 file with a layer that is not Keras's": (
        lambda t, m, x: tfc.pipeline.run(
            recipe(t, model=str(keras3_custom_file(t)), stages={"export": {}}), progress=lambda line: None
        ),
        ValueError,
        r"holds layers that are not Keras's own: 'doubling' \([\w.]*Doubling\)",
    ),
}
