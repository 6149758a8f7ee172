"""The recipe pipeline end to end, on real data and real files: every stage, the user's models and files."""

import json
import os
import subprocess
import sys
import warnings

import numpy as np
import pytest

import tfcompress as tfc
from tests.conftest import compile_classifier, small_cnn, weights_of
from tests.test_keras3 import keras3_models
from tfcompress import keras

# The demo's recipe at a few epochs per stage: the whole path, checked end to end.
EXAMPLE, QUICK = tfc.demo.RECIPE, list(tfc.demo.QUICK)
EXAMPLES = os.path.join(os.path.dirname(__file__), "..", "..", "examples")
PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def example_run(tmp_path_factory):
    output = tmp_path_factory.mktemp("run") / "out"
    sets = [f"--set={value}" for value in QUICK]
    command = [sys.executable, "-m", "tfcompress", "run", f"--recipe={EXAMPLE}", f"--output_dir={output}", *sets]
    return output, subprocess.run(command, capture_output=True, text=True, timeout=600)


@pytest.mark.slow
@pytest.mark.xdist_group("example_run")  # one worker runs the example once
def test_cli_runs_the_example_recipe_and_writes_every_output(example_run):
    output, result = example_run
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    assert "[1/4] Distilling" in result.stdout and "[4/4] Exporting int8" in result.stdout
    report = json.loads((output / "report.json").read_text())
    assert [row["stage"] for row in report["rows"]] == ["teacher", "distill", "prune", "qat", "export (int8)"]
    final = report["rows"][-1]
    assert final["tflite_bytes"] == os.path.getsize(output / "model_int8.tflite")
    assert final["top1_agreement"] >= 0.95 and final["tflite_accuracy"] > 0.5
    assert report["rows"][2]["nonzero_parameters"] < 0.25 * report["rows"][2]["parameters"]
    assert final["gzip_bytes"] < report["rows"][1]["gzip_bytes"] / 4
    for plot in ("accuracy_vs_size.png", "sparsity.png", "latency.png"):
        assert (output / plot).read_bytes()[:8] == PNG
    markdown = (output / "report.md").read_text()
    assert markdown.startswith("| stage | seconds |") and "| export (int8) |" in markdown
    logs = [name for _, _, names in os.walk(output / "tensorboard") for name in names]
    assert sum(name.startswith("events.out.tfevents") for name in logs) >= 5  # 4 fits and the stage scalars
    bundle = tfc.export.read_metadata(output / "android" / "model_int8.tflite")
    assert bundle["files"]["labels.txt"].decode().split() == [str(digit) for digit in range(10)]


@pytest.mark.slow
@pytest.mark.xdist_group("example_run")  # one worker runs the example once
def test_a_second_run_never_replaces_the_first(example_run):
    output, _ = example_run
    before = (output / "model_int8.tflite").read_bytes()
    command = [sys.executable, "-m", "tfcompress", "run", f"--recipe={EXAMPLE}", f"--output_dir={output}"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert result.returncode == 1 and "already exists" in result.stdout and "[1/" not in result.stdout
    assert (output / "model_int8.tflite").read_bytes() == before


def _write_digit_images(folder, x, y):
    for index, (image, label) in enumerate(zip(x, y)):
        (folder / str(label)).mkdir(exist_ok=True)
        keras.utils.save_img(folder / str(label) / f"{index}.png", image * 255, scale=False)


@pytest.mark.slow
def test_cli_runs_the_image_folder_recipe_on_a_folder_of_images(digits, tmp_path):
    (x_train, y_train), _ = digits
    images = tmp_path / "images"
    images.mkdir()
    _write_digit_images(images, x_train[:400], y_train[:400])
    recipe = os.path.join(EXAMPLES, "image_folder.yaml")
    sets = [f"--set={value}" for value in QUICK + [f"data.path={images}", "data.image_size=[8, 8]"]]
    sets.append("--set=data.color_mode=grayscale")
    command = [sys.executable, "-m", "tfcompress", "run", f"--recipe={recipe}", f"--output_dir={tmp_path / 'out'}"]
    result = subprocess.run(command + sets, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert report["class_names"] == [str(digit) for digit in range(10)]
    assert [row["stage"] for row in report["rows"]] == ["teacher", "distill", "prune", "qat", "export (int8)"]
    assert report["rows"][-1]["top1_agreement"] >= 0.75  # a model trained 2 epochs: many near-ties
    assert tfc.litert.inspect(tmp_path / "out" / "model_int8.tflite")["int8_mac_share"] == 1.0
    for name in ("report.md", "accuracy_vs_size.png", "sparsity.png", "latency.png"):
        assert (tmp_path / "out" / name).is_file()


@pytest.mark.slow
def test_a_built_in_model_trained_then_post_training_int8(tmp_path):
    recipe = {
        "model": "builtin:student",
        "output_dir": str(tmp_path / "out"),
        "stages": {"train": {"epochs": 3}, "export": {}},
    }
    report = tfc.pipeline.run(recipe, progress=lambda line: None)
    assert [row["stage"] for row in report["rows"]] == ["train", "export (int8)"]
    assert report["rows"][-1]["top1_agreement"] >= 0.75  # a model trained 2 epochs: many near-ties


@pytest.mark.parametrize("saved_as", ["model.keras", "model.h5", "saved_model"])
@pytest.mark.slow
def test_a_saved_model_and_npz_data_the_user_file_left_as_it_was(trained_cnn, digits, tmp_path, saved_as):
    (x_train, y_train), (x_test, y_test) = digits
    np.savez(tmp_path / "data.npz", x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test)
    trained_cnn.save(tmp_path / saved_as)
    before = {path: open(path, "rb").read() for path in _files_under(tmp_path / saved_as)}
    recipe = tmp_path / "recipe.json"
    recipe.write_text(
        json.dumps(
            {
                "model": str(tmp_path / saved_as),
                "data": {"source": "npz", "path": str(tmp_path / "data.npz")},
                "output_dir": str(tmp_path / "out"),
                "stages": {"prune": {"sparsity": 0.5, "epochs": 1, "finetune_epochs": 0}, "export": {}},
            }
        )
    )
    report = tfc.pipeline.run(recipe, progress=lambda line: None)
    assert [row["stage"] for row in report["rows"]] == ["input model", "prune", "export (int8)"]
    assert report["rows"][0]["keras_accuracy"] == pytest.approx(trained_cnn.evaluate(x_test, y_test, verbose=0)[1])
    assert {path: open(path, "rb").read() for path in _files_under(tmp_path / saved_as)} == before


def _files_under(path):
    if path.is_file():
        return [path]
    return sorted(item for item in path.rglob("*") if item.is_file())


def test_a_keras_object_is_copied_not_trained(digits, tmp_path, seeded):
    model = compile_classifier(small_cnn())
    before = weights_of(model)
    recipe = {"model": model, "output_dir": str(tmp_path / "out"), "stages": {"train": {"epochs": 1}, "export": {}}}
    lines = []
    report = tfc.pipeline.run(recipe, progress=lines.append)
    for original, now in zip(before, weights_of(model)):
        np.testing.assert_array_equal(original, now)
    # Every file timed side by side at the end: speed-ups over the first row, with intervals, and the CPU named.
    first, trained, exported = report["rows"]
    assert first["speedup"] == 1.0 and first["speedup_interval"] == "1.00-1.00"
    # The same float32 architecture: near 1, or an interval that says it cannot be told apart (once 1.27, 0.81-1.44).
    low, high = map(float, trained["speedup_interval"].split("-"))
    assert 0.8 < trained["speedup"] < 1.25 or low <= 1 <= high, trained
    low, high = map(float, exported["speedup_interval"].split("-"))
    # The interval is printed to two decimals; the speed-up is not.
    assert low - 0.005 <= exported["speedup"] <= high + 0.005 and exported["latency_ms"] > 0
    assert report["cpu"] and report["cpu"] in lines[-1] and "interleaved rounds" in lines[-1]


def test_a_keras3_file_runs_every_stage_in_keras3_and_each_stage_is_kept_as_a_keras3_file(
    trained_cnn3, digits, tmp_path, monkeypatch
):
    import keras as keras3

    def no_rebuild(model, *args, **kwargs):
        raise AssertionError(f"{model.name!r} went through from_keras3")

    for module in (tfc._keras3_bridge, tfc._model_guards, tfc.export.tflite):
        monkeypatch.setattr(module, "from_keras3", no_rebuild)
    trained_cnn3.save(tmp_path / "user.keras")
    report = tfc.pipeline.run({
        "model": str(tmp_path / "user.keras"), "output_dir": str(tmp_path / "out"), "stage_files": True,
        "stages": {"distill": {"teacher": "builtin:student", "teacher_epochs": 1, "epochs": 1},
                   "prune": {"sparsity": 0.5, "epochs": 1, "finetune_epochs": 0, "distill_recovery": True},
                   "qat": {"epochs": 1, "distill_recovery": True}, "export": {}},
    }, progress=lambda line: None)  # fmt: skip
    stages = ["input model", "teacher", "distill", "prune", "qat", "export (int8)"]
    assert [row["stage"] for row in report["rows"]] == stages
    for stage in stages[:-1]:
        kept = keras3.models.load_model(report["files"][f"{stage} (Keras)"])
        assert isinstance(kept, keras3.Model), stage
    # The masks held through distillation-aided pruning and QAT, and the file agrees with its QAT model.
    assert report["rows"][4]["nonzero_parameters"] < 0.6 * report["rows"][0]["nonzero_parameters"]
    assert report["final"]["top1_agreement"] >= 0.97 and not tfc.litert.inspect(report["files"]["model"])["float_ops"]
    assert (tmp_path / "user.keras").stat().st_size > 0  # the user's file stays


@pytest.mark.slow
def test_the_pipeline_takes_a_keras3_model(tmp_path, seeded):
    sequential, _ = keras3_models()
    recipe = {
        "model": sequential,
        "output_dir": str(tmp_path / "out"),
        "stages": {"train": {"epochs": 1}, "export": {}},
    }
    report = tfc.pipeline.run(recipe, progress=lambda line: None)
    assert report["rows"][0]["stage"] == "input model" and os.path.isfile(report["files"]["model"])


@pytest.mark.slow
def test_the_channels_stage_hands_a_smaller_model_on(tmp_path):
    recipe = {
        "model": "builtin:student",
        "output_dir": str(tmp_path / "out"),
        "stages": {
            "train": {"epochs": 3},
            "channels": {"ratio": 0.5, "finetune_epochs": 1},
            "export": {"mode": "float32"},
        },
    }
    report = tfc.pipeline.run(recipe, progress=lambda line: None)
    train, smaller, exported = report["rows"]
    assert smaller["stage"] == "channels" and smaller["parameters"] < 0.35 * train["parameters"]
    assert exported["tflite_bytes"] < 0.35 * train["tflite_bytes"] and exported["top1_agreement"] == 1.0


@pytest.mark.slow
@pytest.mark.parametrize("model_file", [False, True], ids=["builtin tf_keras model", "Keras 3 .keras file"])
def test_the_channels_stage_on_a_resnet_with_every_option(model_file, tmp_path):
    if model_file:  # every option in Keras 3: the penalty, dropped blocks, distilled recovery
        import keras as keras3

        tfc.models.residual_net(16, 3, "resnet", keras=keras3).save(tmp_path / "resnet.keras")
    recipe = {
        "model": str(tmp_path / "resnet.keras") if model_file else "builtin:resnet",
        "output_dir": str(tmp_path / "out"),
        "stages": {
            "train": {"epochs": 2},
            "channels": {
                "budget": {"macs": 0.5},
                "criterion": "taylor",
                "steps": 2,
                "finetune_epochs": 1,
                "gamma_penalty": 1e-3,
                "penalty_epochs": 1,
                "drop_blocks": 1,
                "protect": ["first"],
                "distill_recovery": model_file,
            },
            "export": {"mode": "float32"},
        },
    }
    with warnings.catch_warnings():
        warnings.filterwarnings("error", ".*rebuilt with tfc.from_keras3")  # a Keras 3 model stays Keras 3
        report = tfc.pipeline.run(recipe, progress=lambda line: None)
    widths = report["widths"]
    assert widths["stem"] == [16, 16]  # protected
    assert sorted(width for name, (_, width) in widths.items() if name.endswith("_conv1")).count(0) == 1
    trained = tfc.models.residual_net(16, 3, "resnet")
    macs = tfc.litert.inspect(report["files"]["model"])["macs"]
    assert macs <= 0.5 * tfc.prune.cost(trained)["macs"]
    assert os.path.isfile(report["files"]["widths"]) and report["files"]["widths"].endswith("widths.png")
    with open(report["files"]["json"]) as file:
        assert json.load(file)["widths"] == widths


@pytest.mark.slow
def test_a_text_model_with_token_ids_runs_prune_qat_export(tmp_path, seeded):
    # Reviews of 32 token ids; positive when token 7 occurs more often than token 9: learnable, and integer.
    rng = np.random.default_rng(0)
    tokens = rng.integers(0, 50, (600, 32)).astype(np.int32)
    labels = ((tokens == 7).sum(axis=1) > (tokens == 9).sum(axis=1)).astype(np.int64)
    np.savez(tmp_path / "reviews.npz", x_train=tokens[:480], y_train=labels[:480], x_test=tokens[480:],
             y_test=labels[480:])  # fmt: skip
    inputs = keras.Input((32,), dtype="int32", name="tokens")
    x = keras.layers.GlobalAveragePooling1D()(keras.layers.Embedding(50, 16)(inputs))
    model = keras.Model(inputs, keras.layers.Dense(2)(keras.layers.Dense(16, activation="relu")(x)))
    model.save(tmp_path / "text.keras")
    report = tfc.pipeline.run({
        "model": str(tmp_path / "text.keras"),
        "data": {"source": "npz", "path": str(tmp_path / "reviews.npz")},
        "output_dir": str(tmp_path / "out"),
        "stages": {"train": {"epochs": 8}, "prune": {"sparsity": 0.5, "epochs": 1, "finetune_epochs": 1},
                   "qat": {"epochs": 1}, "export": {}},
    }, progress=lambda line: None)  # fmt: skip
    final = report["rows"][-1]
    assert final["top1_agreement"] >= 0.95 and final["tflite_accuracy"] > 0.6
    (image,) = tfc.litert.inspect(report["files"]["model"])["inputs"]
    assert image["dtype"] == "int32" and image["name"].endswith("tokens:0")


@pytest.mark.slow
def test_every_lossy_stage_recovers_by_distillation_and_the_export_controls_accuracy(tmp_path, seeded):
    recipe = {
        "model": "builtin:student",
        "output_dir": str(tmp_path / "out"),
        "stages": {
            "train": {"epochs": 3},
            "channels": {"ratio": 0.5, "finetune_epochs": 1, "distill_recovery": True},
            "prune": {"sparsity": 0.5, "epochs": 1, "finetune_epochs": 0, "distill_recovery": True},
            "export": {"max_accuracy_drop": 0.02},
        },
    }
    lines = []
    report = tfc.pipeline.run(recipe, progress=lines.append)
    assert sum("distilled from the unpruned model" in line for line in lines) == 2
    control = report["accuracy_control"]
    assert control["chosen"]["met"] and control["validation_examples"] == 287  # the last fifth of 1,437
    exported = report["rows"][-1]
    assert exported["stage"] == "export (int8)" and exported["top1_agreement"] >= 0.95
    qat = {"epochs": 1, "distill_recovery": True, "float_layers": ["first"]}
    recipe["stages"] = {"train": {"epochs": 1}, "qat": qat, "export": {}}
    recipe["output_dir"] = str(tmp_path / "qat")
    lines.clear()
    report = tfc.pipeline.run(recipe, progress=lines.append)
    assert any("distilled from the float model, float layers: first" in line for line in lines)
    ops = tfc.litert.inspect(report["files"]["model"])["ops"]
    assert [op["input_dtypes"][0] for op in ops if op["op"] == "CONV_2D"] == ["float32", "int8"]


def test_two_classes_and_one_output_are_a_binary_task_measured_at_its_threshold(digits, tmp_path, seeded):
    (x_train, y_train), (x_test, y_test) = digits
    np.savez(tmp_path / "odd.npz", x_train=x_train, y_train=y_train % 2, x_test=x_test, y_test=y_test % 2)
    model = keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Flatten(), keras.layers.Dense(16, "relu"),
                              keras.layers.Dense(1, name="odd")])  # fmt: skip
    report = tfc.pipeline.run({
        "model": model, "data": {"source": "npz", "path": str(tmp_path / "odd.npz")},
        "output_dir": str(tmp_path / "out"),
        "stages": {"train": {"epochs": 3}, "distill": {"teacher": "builtin:teacher", "teacher_epochs": 2, "epochs": 2},
                   "export": {"android_labels": ["even", "odd"], "calibration": "mse"}},
    }, progress=lambda line: None)  # fmt: skip
    assert report["task"]["kind"] == "binary" and report["task"]["source"] == "the labels"
    teacher = report["rows"][2]
    assert teacher["stage"] == "teacher" and teacher["keras_accuracy"] > 0.8  # one logit too, trained on 0/1
    final = report["final"]
    outputs = tfc.litert.LiteRTModel(report["files"]["model"]).predict(x_test)[:, 0]
    assert final["tflite_accuracy"] == pytest.approx(np.mean((outputs > 0) == (y_test % 2 == 1)))
    assert final["top1_agreement"] is None and final["agreement"] >= 0.97 and final["tflite_accuracy"] > 0.8
    assert tfc.litert.inspect(report["files"]["android"]["model"])["outputs"][0]["shape"] == [1, 2]


def test_a_regression_is_measured_by_its_error_never_an_accuracy(digits, tmp_path, seeded):
    (x_train, y_train), (x_test, y_test) = digits
    np.savez(tmp_path / "value.npz", x_train=x_train, y_train=y_train / 9, x_test=x_test, y_test=y_test / 9)
    lines, data = [], {"source": "npz", "path": str(tmp_path / "value.npz")}
    report = tfc.pipeline.run({
        "model": "builtin:student", "task": "regression", "data": data, "output_dir": str(tmp_path / "out"),
        "stages": {"train": {"epochs": 3}, "export": {}},
    }, progress=lines.append)  # fmt: skip
    final = report["final"]
    outputs = tfc.litert.LiteRTModel(report["files"]["model"]).predict(x_test)[:, 0]
    assert final["tflite_mae"] == pytest.approx(np.mean(np.abs(outputs - y_test / 9)), rel=1e-5)
    assert final["keras_accuracy"] is None and final["tflite_accuracy"] is None and final["agreement"] is None
    assert final["tflite_mae"] < 0.2 and "Keras MAE" in "\n".join(lines) and "acc." not in "\n".join(lines)
    with pytest.raises(ValueError, match=r"android_labels` has 2 names, but the model's output is regression"):
        tfc.pipeline.run({"model": "builtin:student", "task": "regression", "overwrite": True, "data": data,
                          "output_dir": str(tmp_path / "out"),
                          "stages": {"train": {"epochs": 1}, "export": {"android_labels": ["a", "b"]}}})  # fmt: skip
