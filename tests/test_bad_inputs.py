"""The catalogue of bad inputs: every public entry point and the CLI, handed what users get wrong.

For each case: the error is ours (raised inside tfcompress, not deep in TensorFlow), of
the expected type, and says what happened and what to do; no file appears or changes in
the working folder; and the user's model keeps its weights.
"""

import os
import signal
import subprocess
import sys
import time
import traceback

import flatbuffers
import numpy as np
import pytest

import tfcompress as tfc
from tests import zoo
from tests.conftest import keras3_model, small_cnn, tfcompress_child, weights_of
from tests.test_model_files import lambda_file
from tfcompress import keras


class Subclassed(keras.Model):
    def __init__(self):
        super().__init__()
        self.dense = keras.layers.Dense(10)

    def call(self, inputs):
        return self.dense(keras.layers.Flatten()(inputs))


def _recipe(tmp, **changes):
    recipe = {
        "model": "builtin:student",
        "output_dir": str(tmp / "out"),
        "stages": {"train": {"epochs": 1}, "export": {}},
    }
    recipe.update(changes)
    return recipe


# Files a case puts in place before its bad call (path -> content): they must come out unchanged.
_PLANTED = {}


def _file(tmp, name, content):
    path = tmp / name
    path.write_bytes(content)
    _PLANTED[str(path)] = content
    return path


def _tflite(tmp, model):
    path = tfc.export.to_tflite(model, tmp / "ok.tflite", mode="float32").path
    _PLANTED[path] = open(path, "rb").read()
    return path


def _with_a_nan_range(model, x):
    """`model` quantization-aware, one of its activation ranges NaN, as training that diverged leaves it."""
    quantization_aware = tfc.quantize.qat(model, representative_data=x[:64])
    limit = next(variable for variable in quantization_aware.variables if "post_activation_max" in variable.name)
    limit.assign(np.full(limit.shape, np.nan, np.float32))
    return quantization_aware


def _with_a_nan_scale(tmp, model, x):
    """An int8 file of `model` whose first quantized tensor's scale is NaN (LiteRT segfaults on it)."""
    from ai_edge_litert import schema_py_generated as schema

    content = tfc.export.to_tflite(model, tmp / "int8.tflite", representative_data=x[:64]).path
    flat = schema.ModelT.InitFromObj(schema.Model.GetRootAs(open(content, "rb").read(), 0))
    tensor = next(t for t in flat.subgraphs[0].tensors if t.quantization is not None and t.quantization.scale)
    tensor.quantization.scale = np.full(len(tensor.quantization.scale), np.nan, np.float32)
    builder = flatbuffers.Builder(1024)
    builder.Finish(flat.Pack(builder), file_identifier=b"TFL3")
    os.remove(content)
    return _file(tmp, "nan_scale.tflite", bytes(builder.Output()))


def _keras3_subclassed():
    import keras as keras3

    class Keras3Subclassed(keras3.Model):
        def call(self, inputs):
            return inputs

    return Keras3Subclassed()


def _keras3_lambda():
    import keras as keras3

    return keras3.Sequential([keras3.Input((4,)), keras3.layers.Lambda(lambda x: x * 2)])


# name -> (call(tmp, model, x), exception type, message pattern). `model` is a trained
# digits CNN whose weights must not change; `x` the training images.
CASES = {
    # Distillation
    "distiller: subclassed Keras 3 student": (
        lambda t, m, x: tfc.Distiller(student=_keras3_subclassed(), teacher=m),
        ValueError,
        "subclassed Keras 3 model",
    ),
    "distiller: a task the student's head cannot be": (
        lambda t, m, x: tfc.Distiller(student=small_cnn(), teacher=m, task="binary").compile(optimizer="adam"),
        ValueError,
        r"`task='binary'` was given, but output .* \(10 linear units\) cannot be 'binary'",
    ),
    "distiller: teacher is not a model": (
        lambda t, m, x: tfc.Distiller(student=m, teacher="teacher.keras"),
        TypeError,
        "must be a Keras model",
    ),
    "distiller: student is the teacher": (
        lambda t, m, x: tfc.Distiller(student=m, teacher=m),
        ValueError,
        "are the same model",
    ),
    "distiller: alpha above 1": (
        lambda t, m, x: tfc.Distiller(student=small_cnn(), teacher=m).compile(optimizer="adam", alpha=1.5),
        ValueError,
        r"`alpha` must be a number in \[0, 1\]",
    ),
    "distiller: temperature 0": (
        lambda t, m, x: tfc.Distiller(student=small_cnn(), teacher=m).compile(optimizer="adam", temperature=0),
        ValueError,
        "`temperature` must be a number > 0",
    ),
    # Pruning
    "prune: sparsity 1": (lambda t, m, x: tfc.prune.magnitude(m, 1.0, end_step=10), ValueError, r"in \[0, 1\)"),
    "prune: negative sparsity": (lambda t, m, x: tfc.prune.magnitude(m, -0.1, end_step=10), ValueError, r"in \[0, 1\)"),
    "prune: Keras 3 model fine-tuned in place": (
        lambda t, m, x: tfc.prune.finetune(keras3_model(), (x, np.arange(len(x)) % 10)),
        ValueError,
        r"changes its model in place.*tfc\.from_keras3",
    ),
    "prune: subclassed model": (
        lambda t, m, x: tfc.prune.magnitude(Subclassed(), 0.5, end_step=10),
        ValueError,
        "subclassed model",
    ),
    "prune: unbuilt model": (
        lambda t, m, x: tfc.prune.magnitude(keras.Sequential([keras.layers.Dense(2)]), 0.5, end_step=10),
        ValueError,
        "is not built",
    ),
    "prune: strip a plain model": (lambda t, m, x: tfc.prune.strip(m), ValueError, "no pruning wrappers"),
    # Quantization
    "qat: pruning wrappers left on": (
        lambda t, m, x: tfc.quantize.qat(tfc.prune.magnitude(m, 0.5, end_step=10)),
        ValueError,
        "Strip them first",
    ),
    "qat: already quantization-aware": (
        lambda t, m, x: tfc.quantize.qat(tfc.quantize.qat(m)),
        ValueError,
        "already quantization-aware",
    ),
    "cluster: one cluster": (lambda t, m, x: tfc.quantize.cluster(m, clusters=1), ValueError, "at least 2"),
    "cluster: unknown layer": (
        lambda t, m, x: tfc.quantize.cluster(m, layers=["conv9"]),
        ValueError,
        r"\['conv9'\], which are not",
    ),
    "cluster: Keras 3 model with a Lambda layer": (
        lambda t, m, x: tfc.quantize.cluster(_keras3_lambda()),
        ValueError,
        "is a Lambda layer",
    ),
    # Export
    "export: unknown mode": (
        lambda t, m, x: tfc.export.to_tflite(m, t / "m.tflite", mode="int4"),
        ValueError,
        "`mode` must be one of",
    ),
    "export: io dtype of another mode": (
        lambda t, m, x: tfc.export.to_tflite(m, t / "m.tflite", mode="float16", io_dtype="uint8"),
        ValueError,
        "`io_dtype` must be one of",
    ),
    "export: int8 without calibration data": (
        lambda t, m, x: tfc.export.to_tflite(m, t / "m.tflite"),
        ValueError,
        "needs `representative_data`",
    ),
    "export: NaN calibration data": (
        lambda t, m, x: tfc.export.to_tflite(m, t / "m.tflite", representative_data=np.full_like(x[:100], np.nan)),
        ValueError,
        "NaN",
    ),
    "export: calibration data of the wrong shape": (
        lambda t, m, x: tfc.export.to_tflite(m, t / "m.tflite", representative_data=np.zeros((100, 28, 28, 1))),
        ValueError,
        "shape",
    ),
    "export: empty calibration data": (
        lambda t, m, x: tfc.export.to_tflite(m, t / "m.tflite", representative_data=x[:0]),
        ValueError,
        "is empty",
    ),
    "export: text as calibration data": (
        lambda t, m, x: tfc.export.to_tflite(m, t / "m.tflite", representative_data=np.array([["a"] * 8] * 8)),
        ValueError,
        "must be numeric",
    ),
    "export: output file exists": (
        lambda t, m, x: tfc.export.to_tflite(m, _file(t, "mine.tflite", b"mine"), mode="float32"),
        FileExistsError,
        "already exists and was left as it is",
    ),
    "export: output folder missing": (
        lambda t, m, x: tfc.export.to_tflite(m, t / "missing" / "m.tflite", mode="float32"),
        FileNotFoundError,
        "does not exist. Create it first",
    ),
    "export: output path is a folder": (
        lambda t, m, x: tfc.export.to_tflite(m, t, mode="float32"),
        IsADirectoryError,
        "is a directory",
    ),
    "export: read-only destination": (
        lambda t, m, x: tfc.export.to_tflite(m, "/sys/m.tflite", mode="float32"),
        PermissionError,
        "not writable",
    ),
    "export: sparse float16": (
        lambda t, m, x: tfc.export.to_tflite(m, t / "m.tflite", mode="float16", sparse=True),
        ValueError,
        "`sparse=True` works in modes",
    ),
    "export: batch size 0": (
        lambda t, m, x: tfc.export.to_tflite(m, t / "m.tflite", mode="float32", batch_size=0),
        ValueError,
        "`batch_size` must be None",
    ),
    "export: float layer that does not exist": (
        lambda t, m, x: tfc.export.to_tflite(m, t / "m.tflite", representative_data=x[:100], float_layers=["x"]),
        ValueError,
        "not quantized layers",
    ),
    "finetune: a teacher whose outputs do not match": (
        lambda t, m, x: tfc.prune.finetune(
            tfc.prune.channels(m, 0.5), (x[:64], np.zeros(64, int)),
            teacher=keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Flatten(), keras.layers.Dense(5)]),
        ),  # fmt: skip
        ValueError,
        "output",
    ),
    "export: accuracy target outside (0, 1)": (
        lambda t, m, x: tfc.export.with_accuracy_control(
            m, t / "m.tflite", representative_data=x[:100], validation_data=(x[:50], np.zeros(50, int)),
            max_accuracy_drop=1.5,
        ),  # fmt: skip
        ValueError,
        r"`max_accuracy_drop` must be a number in \(0, 1\)",
    ),
    "export: accuracy target without labels": (
        lambda t, m, x: tfc.export.with_accuracy_control(
            m, t / "m.tflite", representative_data=x[:100], validation_data=x[:50], max_accuracy_drop=0.01
        ),
        ValueError,
        "needs labels: pass \\(x_val, y_val\\)",
    ),
    "export: validation data of the wrong shape": (
        lambda t, m, x: tfc.export.with_accuracy_control(
            m, t / "m.tflite", representative_data=x[:100], validation_data=(x[:50, :4], np.zeros(50, int)),
            min_agreement=0.99,
        ),  # fmt: skip
        ValueError,
        "validation_data",
    ),
    "export: accuracy target without validation data": (
        lambda t, m, x: tfc.export.with_accuracy_control(
            m, t / "m.tflite", representative_data=x[:100], min_agreement=0.99
        ),
        ValueError,
        "pass validation_data=",
    ),
    "qat: float_layers names a missing layer": (
        lambda t, m, x: tfc.quantize.qat(m, float_layers=["conv9"]),
        ValueError,
        r"`float_layers` names layers \['conv9'\] that 'trained_cnn' does not have",
    ),
    "export: calibration data for a qat model with float layers": (
        lambda t, m, x: tfc.export.to_tflite(
            tfc.quantize.qat(m, float_layers=["first"]), t / "m.tflite", representative_data=x[:100]
        ),
        ValueError,
        "would quantize them to int8 too. Remove `representative_data`",
    ),
    "verify: not a tflite file": (
        lambda t, m, x: tfc.litert.verify(_file(t, "bad.tflite", b"not a model" * 50), m, x),
        ValueError,
        "could not be loaded by the LiteRT interpreter",
    ),
    "verify: truncated tflite file": (
        lambda t, m, x: tfc.litert.verify(_file(t, "cut.tflite", open(_tflite(t, m), "rb").read()[:600]), m, x),
        ValueError,
        "could not be loaded",
    ),
    "export: a QAT model whose ranges went NaN": (
        lambda t, m, x: tfc.export.to_tflite(_with_a_nan_range(m, x), t / "m.tflite"),
        ValueError,
        r"The quantization ranges of 'trained_cnn' hold NaN or infinity at 'conv2d\w*'",
    ),
    "verify: a file whose quantization scales are NaN": (
        lambda t, m, x: tfc.litert.verify(_with_a_nan_scale(t, m, x), m, x[:8]),
        ValueError,
        r"nan_scale.tflite has quantization scales that are NaN, infinite or not positive",
    ),
    "verify: inputs of the wrong shape": (
        lambda t, m, x: tfc.litert.verify(_tflite(t, m), m, np.zeros((4, 28, 28, 1))),
        ValueError,
        "shape",
    ),
    "inspect: missing file": (lambda t, m, x: tfc.litert.inspect(t / "none.tflite"), FileNotFoundError, "No .tflite"),
    "compare: a single file": (
        lambda t, m, x: tfc.litert.time_side_by_side([_tflite(t, m)]),
        ValueError,
        "needs at least two files to put side by side",
    ),
    "compare: a missing file": (
        lambda t, m, x: tfc.litert.time_side_by_side([_tflite(t, m), t / "missing.tflite"]),
        FileNotFoundError,
        "No .tflite file at",
    ),
    "benchmark: too few runs": (
        lambda t, m, x: tfc.litert.benchmark(_tflite(t, m), runs=2),
        ValueError,
        "`runs` must be an int >= 5",
    ),
    "android bundle: labels do not match": (
        lambda t, m, x: tfc.export.android_bundle(_tflite(t, m), t / "android", labels=["a", "b"]),
        ValueError,
        "`labels` has 2 names but the model scores 10 classes",
    ),
    # Data
    "data: MNIST folder missing": (lambda t, m, x: tfc.data.load_mnist(t / "mnist"), FileNotFoundError, "mnist"),
    "data: image folder missing": (
        lambda t, m, x: tfc.data.load_image_directory(t / "images"),
        FileNotFoundError,
        "does not exist",
    ),
    "data: not an IDX file": (
        lambda t, m, x: tfc.data.read_idx(_file(t, "train-images-idx3-ubyte", b"\x00\x00\x09\x03" + b"\x00" * 4)),
        ValueError,
        "is truncated or padded",
    ),
    "data: empty array": (lambda t, m, x: tfc.data.as_arrays(np.zeros((0, 8, 8, 1))), ValueError, "is empty"),
    # Recipes and the pipeline
    "recipe: unknown key": (
        lambda t, m, x: tfc.pipeline.run(_recipe(t, epochs=3)),
        tfc.pipeline.recipe.RecipeError,
        "Unknown key `epochs`",
    ),
    "recipe: unknown stage": (
        lambda t, m, x: tfc.pipeline.run(_recipe(t, stages={"quantise": {}, "export": {}})),
        tfc.pipeline.recipe.RecipeError,
        "Unknown stage 'quantise'",
    ),
    "recipe: sparsity out of range": (
        lambda t, m, x: tfc.pipeline.run(_recipe(t, stages={"prune": {"sparsity": 1.5}, "export": {}})),
        tfc.pipeline.recipe.RecipeError,
        r"`stages.prune.sparsity` must be a number in \[0, 1\)",
    ),
    "recipe: accuracy target with a qat stage": (
        lambda t, m, x: tfc.pipeline.run(
            _recipe(t, stages={"train": {}, "qat": {}, "export": {"max_accuracy_drop": 0.01}})
        ),
        tfc.pipeline.recipe.RecipeError,
        "control post-training int8",
    ),
    "recipe: qat float layers with integer I/O": (
        lambda t, m, x: tfc.pipeline.run(
            _recipe(t, stages={"train": {}, "qat": {"float_layers": ["first"]}, "export": {"io_dtype": "uint8"}})
        ),
        tfc.pipeline.recipe.RecipeError,
        "With `stages.qat.float_layers` the file reads and writes float32",
    ),
    "recipe: accuracy target out of range": (
        lambda t, m, x: tfc.pipeline.run(_recipe(t, stages={"train": {}, "export": {"min_agreement": 99}})),
        tfc.pipeline.recipe.RecipeError,
        r"`stages.export.min_agreement` must be a number in \(0, 1\)",
    ),
    "recipe: channel ratio of 1": (
        lambda t, m, x: tfc.pipeline.run(_recipe(t, stages={"train": {}, "channels": {"ratio": 1}, "export": {}})),
        tfc.pipeline.recipe.RecipeError,
        r"`stages.channels.ratio` must be a number in \[0, 1\)",
    ),
    "channels: a layer it cannot prune": (
        lambda t, m, x: tfc.prune.channels(
            keras.Sequential([keras.Input((4, 4, 1)), keras.layers.Conv2D(4, 1), keras.layers.Reshape((64,))])
        ),
        ValueError,
        r"Layer 'reshape.*' \(Reshape\) reshapes more than unit axes; channel pruning cannot handle it",
    ),
    "recipe: channel ratio and budget both": (
        lambda t, m, x: tfc.pipeline.run(
            _recipe(t, stages={"train": {}, "channels": {"ratio": 0.5, "budget": {"macs": 0.5}}, "export": {}})
        ),
        tfc.pipeline.recipe.RecipeError,
        r"`stages.channels` takes `ratio` or `budget`, not both",
    ),
    "recipe: channel budget of flops": (
        lambda t, m, x: tfc.pipeline.run(
            _recipe(t, stages={"train": {}, "channels": {"budget": {"flops": 1}}, "export": {}})
        ),
        tfc.pipeline.recipe.RecipeError,
        r"`stages.channels.budget` must be \{parameters: n\} or \{macs: n\}",
    ),
    "recipe: penalty epochs without a penalty": (
        lambda t, m, x: tfc.pipeline.run(
            _recipe(t, stages={"train": {}, "channels": {"penalty_epochs": 3}, "export": {}})
        ),
        tfc.pipeline.recipe.RecipeError,
        r"`stages.channels.penalty_epochs` trains with the BatchNorm gamma penalty, which is off",
    ),
    "channels: a budget it cannot meet": (
        lambda t, m, x: tfc.prune.channels(m, budget={"parameters": 10}),
        ValueError,
        r"`budget` asks for at most 10 parameters, but even removing all but one channel",
    ),
    "channels: a data criterion without data": (
        lambda t, m, x: tfc.prune.channels(m, 0.5, criterion="taylor"),
        ValueError,
        r"criterion='taylor' measures channels on data; pass data=\(x, y\)",
    ),
    "drop_blocks: a block that is not one": (
        lambda t, m, x: tfc.prune.drop_blocks(m, ["dense"]),
        ValueError,
        r"`blocks` names \['dense'\], which are not residual blocks",
    ),
    "iterative: unlabelled data": (
        lambda t, m, x: tfc.prune.iterative(m, x, 0.5),
        ValueError,
        r"`data` needs labels",
    ),
    "gamma_penalty: a model without BatchNormalization": (
        lambda t, m, x: tfc.prune.gamma_penalty(m),
        ValueError,
        r"has no BatchNormalization layer that learns a scale",
    ),
    "recipe: export mode misspelt": (
        lambda t, m, x: tfc.pipeline.run(_recipe(t, stages={"train": {}, "export": {"mode": "int-8"}})),
        tfc.pipeline.recipe.RecipeError,
        r"`stages.export.mode` must be one of \['int8'",
    ),
    "recipe: no model": (
        lambda t, m, x: tfc.pipeline.run({"stages": {"export": {}}}),
        tfc.pipeline.recipe.RecipeError,
        "`model` is required",
    ),
    "recipe: untrained built-in model": (
        lambda t, m, x: tfc.pipeline.run(_recipe(t, stages={"export": {}})),
        tfc.pipeline.recipe.RecipeError,
        "starts untrained",
    ),
    "recipe: QAT then float16": (
        lambda t, m, x: tfc.pipeline.run(_recipe(t, stages={"train": {}, "qat": {}, "export": {"mode": "float16"}})),
        tfc.pipeline.recipe.RecipeError,
        "must then be 'int8'",
    ),
    "recipe: broken YAML": (
        lambda t, m, x: tfc.pipeline.run(_file(t, "r.yaml", b"stages: [unclosed")),
        tfc.pipeline.recipe.RecipeError,
        "does not parse as YAML",
    ),
    "recipe: a text file": (
        lambda t, m, x: tfc.pipeline.run(_file(t, "r.txt", b"model: m")),
        tfc.pipeline.recipe.RecipeError,
        ".json, .yaml or .yml",
    ),
    "recipe: override without =": (
        lambda t, m, x: tfc.pipeline.run(_recipe(t), overrides=["stages.prune.sparsity"]),
        tfc.pipeline.recipe.RecipeError,
        "must look like key.path=value",
    ),
    "pipeline: model file missing": (
        lambda t, m, x: tfc.pipeline.run(_recipe(t, model=str(t / "none.keras"))),
        FileNotFoundError,
        "no model file or folder",
    ),
    "pipeline: corrupt model file": (
        lambda t, m, x: tfc.pipeline.run(_recipe(t, model=str(_file(t, "m.keras", b"PK\x03\x04 broken")))),
        ValueError,
        "could not be loaded by Keras 2",
    ),
    "pipeline: model and data shapes differ": (
        lambda t, m, x: tfc.pipeline.run(
            _recipe(
                t, model=keras.Sequential([keras.Input((28, 28, 1)), keras.layers.Flatten(), keras.layers.Dense(10)])
            )
        ),
        ValueError,
        r"takes inputs of shape \(28, 28, 1\), but the data's images are \(8, 8, 1\)",
    ),
    "pipeline: npz without test arrays": (
        lambda t, m, x: tfc.pipeline.run(_recipe(t, data={"source": "npz", "path": str(_npz(t, x_train=x))})),
        ValueError,
        r"lacks the arrays \['y_train', 'x_test', 'y_test'\]",
    ),
    "pipeline: NaN in the data": (
        lambda t, m, x: tfc.pipeline.run(_recipe(t, data={"source": "npz", "path": str(_nan_npz(t, x))})),
        ValueError,
        "NaN",
    ),
    "pipeline: earlier results in the output folder": (
        lambda t, m, x: tfc.pipeline.run(_recipe(t, output_dir=str(_earlier_run(t)))),
        FileExistsError,
        "already exists and was left as it is",
    ),
    "pipeline: .h5 model with a Lambda layer": (
        lambda t, m, x: tfc.pipeline.run(_recipe(t, model=_lambda_file(t, "h5"))),
        ValueError,
        r"holds Lambda layers \['touches_a_file'\].*trust_model_code: true",
    ),
    "pipeline: .keras model with a Lambda layer": (
        lambda t, m, x: tfc.pipeline.run(_recipe(t, model=_lambda_file(t, "keras"))),
        ValueError,
        r"holds Lambda layers \['touches_a_file'\].*--trust_model_code",
    ),
    "pipeline: SavedModel teacher with a Lambda layer": (
        lambda t, m, x: tfc.pipeline.run(
            _recipe(t, stages={"distill": {"teacher": _lambda_file(t, "savedmodel")}, "export": {}})
        ),
        ValueError,
        r"`stages.distill.teacher`: .* holds Lambda layers \['touches_a_file'\]",
    ),
    # Keras 3
    "from_keras3: subclassed Keras 3 model": (
        lambda t, m, x: tfc.from_keras3(_keras3_subclassed()),
        ValueError,
        "subclassed Keras 3 model",
    ),
    "from_keras3: Lambda layer": (lambda t, m, x: tfc.from_keras3(_keras3_lambda()), ValueError, "is a Lambda layer"),
    "from_keras3: already Keras 2": (lambda t, m, x: tfc.from_keras3(m), TypeError, "already a Keras 2"),
    # The zoo: what is still out of reach, refused in tfcompress's words
    "zoo: GRU over a variable number of steps, int8": (
        lambda t, m, x: tfc.export.to_tflite(_variable_gru(), t / "gru.tflite", representative_data=_sequences(20)),
        ValueError,
        r"Layers \['gru'\] run a loop over a variable number of time steps.*mode='dynamic' or 'float32'",
    ),
    "zoo: two inputs given one array": (
        lambda t, m, x: tfc.export.to_tflite(
            zoo.build("multi_io"), t / "m.tflite", representative_data=np.ones((60, 4))
        ),
        ValueError,
        r"The model has 2 inputs \['image', 'features'\]; pass `representative_data` as a list",
    ),
    "zoo: token ids that are not whole numbers": (
        lambda t, m, x: tfc.export.to_tflite(
            zoo.build("text_embedding"), t / "t.tflite", representative_data=np.full((60, 32), 0.5)
        ),
        ValueError,
        r"feeds the integer input .* so it must hold whole numbers",
    ),
    "zoo: channels through a layer it cannot follow": (
        lambda t, m, x: tfc.prune.channels(_permuted(), 0.5),
        ValueError,
        r"Layer 'swap' \(Permute\) is not a layer kind it knows.*unsupported='skip'",
    ),
    "zoo: verify a file against another model": (
        lambda t, m, x: tfc.litert.verify(_multi_io_file(t), m, x[:5]),
        ValueError,
        r"takes 2 inputs \['features', 'image'\], but .* takes 1; verify a file against the model it was exported",
    ),
    # Tasks: labels, heads and the task said
    "verify: labels that fit no task of the output": (
        lambda t, m, x: tfc.litert.verify(_tflite(t, m), m, x[:50], np.full(50, 12)),
        ValueError,
        r"does not hold labels of a multi-class .* integer classes 0\.\.9",
    ),
    "verify: a task the head cannot be": (
        lambda t, m, x: tfc.litert.verify(_tflite(t, m), m, x[:50], task="regression_or_not"),
        ValueError,
        r"`task` must be one of \['multiclass', 'binary', 'multilabel', 'regression'\]",
    ),
    "verify: binary said of ten logits": (
        lambda t, m, x: tfc.litert.verify(_tflite(t, m), m, x[:50], task="binary"),
        ValueError,
        r"cannot be 'binary': a binary output is one value",
    ),
    "verify: one linear unit, and nothing says its task": (
        lambda t, m, x: tfc.litert.verify(_tflite(t, _one_unit()), _one_unit(), x[:50]),
        ValueError,
        r"could be a binary classifier's logit or a regression value.*task='binary'.*task='regression'",
    ),
    "verify: a task for an output the model lacks": (
        lambda t, m, x: tfc.litert.verify(_tflite(t, m), m, x[:50], task={"box": "regression"}),
        ValueError,
        r"`task` names outputs \['box'\]",
    ),
    "pipeline: binary said of ten classes of labels": (
        lambda t, m, x: tfc.pipeline.run(_recipe(t, task="binary"), progress=lambda line: None),
        ValueError,
        r"does not hold labels of a binary",
    ),
    "pipeline: a Keras 3 file with a layer that is not Keras's": (
        lambda t, m, x: tfc.pipeline.run(
            _recipe(t, model=str(_keras3_custom_file(t)), stages={"export": {}}), progress=lambda line: None
        ),
        ValueError,
        r"holds layers that are not Keras's own: 'doubling' \([\w.]*Doubling\)",
    ),
}


def _lambda_file(tmp, file_format):
    # The Lambda would write a .json: the check for files left behind catches it running.
    return str(lambda_file(tmp, file_format, tmp / "code_ran.json"))


def _sequences(count):
    return np.random.default_rng(0).normal(size=(count, 20, 8)).astype(np.float32)


def _variable_gru():
    inputs = keras.Input((None, 8))
    return keras.Model(inputs, keras.layers.Dense(2)(keras.layers.GRU(8, name="gru")(inputs)))


def _permuted():
    return keras.Sequential(
        [keras.Input((8, 8, 1)), keras.layers.Conv2D(8, 3), keras.layers.Permute((2, 1, 3), name="swap"),
         keras.layers.Conv2D(4, 3), keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(3)]
    )  # fmt: skip


def _multi_io_file(tmp):
    return _tflite(tmp, zoo.build("multi_io"))


def _one_unit():
    keras.utils.set_random_seed(0)
    return keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Flatten(), keras.layers.Dense(1, name="score")])


def _keras3_custom_file(tmp):
    """A Keras 3 `.keras` file holding a layer of the user's own package."""
    import keras as keras3

    @keras3.saving.register_keras_serializable(package="users")
    class Doubling(keras3.layers.Layer):
        def call(self, inputs):
            return inputs * 2

    model = keras3.Sequential(
        [keras3.Input((8, 8, 1)), Doubling(name="doubling"), keras3.layers.Flatten(), keras3.layers.Dense(10)]
    )
    model.save(tmp / "custom.keras")
    _PLANTED[str(tmp / "custom.keras")] = (tmp / "custom.keras").read_bytes()
    return tmp / "custom.keras"


def _keras3_twin(name):
    import keras as keras3

    return zoo.build(name, keras3)


def _npz(tmp, **arrays):
    np.savez(tmp / "data.npz", **arrays)
    _PLANTED[str(tmp / "data.npz")] = (tmp / "data.npz").read_bytes()
    return tmp / "data.npz"


def _nan_npz(tmp, x):
    x = x[:100].copy()
    x[3, 0, 0, 0] = np.nan
    labels = np.arange(100) % 10
    return _npz(tmp, x_train=x, y_train=labels, x_test=x, y_test=labels)


def _earlier_run(tmp):
    folder = tmp / "earlier"
    folder.mkdir()
    _file(folder, "report.json", b"{}")
    return folder


def _snapshot(folder):
    return {
        path: open(path, "rb").read()
        for path in (os.path.join(root, name) for root, _, names in os.walk(folder) for name in names)
    }


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_input_gets_a_clear_error_and_loses_nothing(case, trained_cnn, digits, tmp_path):
    call, error, pattern = CASES[case]
    (x_train, _), _ = digits
    weights = weights_of(trained_cnn)
    with pytest.raises(error, match=pattern) as caught:
        call(tmp_path, trained_cnn, x_train)
    origin = traceback.extract_tb(caught.value.__traceback__)[-1].filename
    assert f"{os.sep}tfcompress{os.sep}" in origin, f"raised from {origin}, not by tfcompress"
    assert len(str(caught.value)) > 30, "too terse to say what happened and what to do"
    after = _snapshot(tmp_path)
    planted = {path: content for path, content in _PLANTED.items() if path.startswith(str(tmp_path))}
    assert {path: after.get(path) for path in planted} == planted, "a file that was there changed"
    new = [path for path in after if path not in planted and path.endswith((".tflite", ".json", ".png", ".partial"))]
    assert not new, f"left behind: {new}"
    for original, now in zip(weights, weights_of(trained_cnn)):
        np.testing.assert_array_equal(original, now)


def _tfcompress(*arguments, cwd):
    return subprocess.run(
        [sys.executable, "-m", "tfcompress", *arguments], capture_output=True, text=True, timeout=600, cwd=cwd
    )


# arguments, exit code, message on stdout.
CLI_CASES = {
    "no command": ([], 2, "Usage:"),
    "unknown command": (["compress"], 2, "unknown command 'compress'"),
    "run without a recipe": (["run"], 2, "run needs --recipe=FILE"),
    "run with a missing recipe file": (["run", "--recipe=none.yaml"], 1, "No recipe file at none.yaml"),
    "run with a bad recipe value": (
        ["run", "--recipe=r.yaml", "--set=stages.qat.epochs=0"],
        2,
        "`stages.qat.epochs` must be a positive integer",
    ),
    "run with an accuracy target and a qat stage": (
        ["run", "--recipe=r.yaml", "--set=stages.export.max_accuracy_drop=0.005"],
        2,
        "`stages.export.max_accuracy_drop` and `min_agreement` control post-training int8",
    ),
    "bench with a bad thread count": (["bench", "m.tflite", "--threads=two"], 2, "--threads takes thread counts"),
    "inspect a file that is not a model": (["inspect", "r.yaml"], 1, "could not be loaded by the LiteRT interpreter"),
    "bench a file that is not a model": (["bench", "r.yaml"], 1, "could not be loaded by the LiteRT interpreter"),
    "bench two files, one missing": (["bench", "none.tflite", "r.yaml"], 1, "No .tflite file at"),
    "bench with a baseline not given": (["bench", "a.tflite", "b.tflite", "--baseline=c.tflite"], 2, "--baseline must"),
}


@pytest.mark.parametrize("case", sorted(CLI_CASES))
@pytest.mark.slow
def test_cli_bad_input_exits_with_its_code_and_no_traceback(case, tmp_path):
    arguments, code, message = CLI_CASES[case]
    (tmp_path / "r.yaml").write_text("model: builtin:student\nstages: {train: {epochs: 1}, qat: {}, export: {}}\n")
    result = _tfcompress(*arguments, cwd=tmp_path)
    assert result.returncode == code, result.stdout + result.stderr[-2000:]
    assert message in result.stdout
    assert "Traceback" not in result.stdout + result.stderr
    assert sorted(os.listdir(tmp_path)) == ["r.yaml"]


@pytest.mark.slow
@pytest.mark.parametrize("stop, code, said", [(signal.SIGINT, 130, "interrupted"), (signal.SIGTERM, 143, "terminated")])
def test_a_stopped_run_exits_with_its_code_and_leaves_no_files(tmp_path, stop, code, said):
    recipe = tmp_path / "r.yaml"
    recipe.write_text("model: builtin:teacher\noutput_dir: out\nstages: {train: {epochs: 500}, export: {}}\n")
    with tfcompress_child("run", f"--recipe={recipe}", cwd=tmp_path) as process:
        for line in process.stdout:  # wait until training has started
            if line.startswith("[1/2] Training"):
                break
        time.sleep(3)
        process.send_signal(stop)
        stdout, stderr = process.communicate(timeout=120)
    assert process.returncode == code, stdout + stderr[-2000:]
    assert said in stdout and "Traceback" not in stdout + stderr
    written = [name for _, _, names in os.walk(tmp_path / "out") for name in names if not name.startswith("events.")]
    assert written == []
