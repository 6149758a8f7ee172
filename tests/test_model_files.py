"""Model files are untrusted input: a Lambda layer's code never runs unless the user opts in."""

import subprocess
import sys

import numpy as np
import pytest

import tfcompress as tfc
from tests.conftest import small_cnn
from tfcompress import _model_files, keras

FORMATS = ("h5", "keras", "savedmodel")


def lambda_file(folder, file_format, marker, nested=False):
    """A model file whose Lambda layer creates `marker` each time it runs: proof that file code ran."""
    touch = eval(f"lambda x: (__import__('pathlib').Path({str(marker)!r}).touch(), x)[1]")  # noqa: S307
    inputs = keras.Input((8, 8, 1))
    x = keras.layers.Lambda(touch, name="touches_a_file")(inputs)
    if nested:
        inner = keras.Model(inputs, x, name="base")
        inputs = keras.Input((8, 8, 1))
        x = inner(inputs)
    outputs = keras.layers.Dense(10)(keras.layers.Flatten()(x))
    path = save(keras.Model(inputs, outputs), folder, file_format)
    marker.unlink()  # building the model (and tracing it for a SavedModel) ran the Lambda
    return path


def save(model, folder, file_format):
    path = folder / {"h5": "model.h5", "keras": "model.keras", "savedmodel": "saved_model"}[file_format]
    model.save(str(path), **({"save_format": "tf"} if file_format == "savedmodel" else {}))
    return path


@pytest.fixture(scope="module")
def lambda_files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("lambda")
    marker = folder / "code_ran"
    files = {file_format: lambda_file(folder, file_format, marker) for file_format in FORMATS}
    (folder / "nested").mkdir()
    files["nested"] = lambda_file(folder / "nested", "h5", marker, nested=True)
    return files, marker


@pytest.mark.parametrize("file_format", FORMATS + ("nested",))
def test_a_lambda_in_any_format_is_refused_without_running_it(lambda_files, file_format):
    files, marker = lambda_files
    with pytest.raises(ValueError, match=r"Lambda layers \['touches_a_file'\].*trust_model_code: true"):
        _model_files.load(files[file_format])
    assert not marker.exists()


@pytest.mark.parametrize("file_format", FORMATS)
def test_trusting_the_file_loads_it_and_runs_its_code(lambda_files, file_format):
    files, marker = lambda_files
    model = _model_files.load(files[file_format], trust_code=True)
    model.predict(np.zeros((1, 8, 8, 1), np.float32), verbose=0)
    assert marker.exists()  # what the refusal above prevents
    marker.unlink()


@pytest.mark.parametrize("file_format", FORMATS)
def test_a_file_of_ordinary_layers_loads_with_its_weights(tmp_path, file_format):
    model = small_cnn()
    path = save(model, tmp_path, file_format)
    assert _model_files.code_carrying_layers(path) == []
    for original, reloaded in zip(model.get_weights(), _model_files.load(path).get_weights()):
        np.testing.assert_array_equal(original, reloaded)


@pytest.mark.parametrize("key", ["model", "teacher"])
def test_the_pipeline_refuses_a_lambda_model_or_teacher_before_any_training(lambda_files, tmp_path, key):
    files, marker = lambda_files
    recipe = {"model": "builtin:student", "output_dir": str(tmp_path / "out"), "stages": {"export": {}}}
    if key == "model":
        recipe["model"] = str(files["h5"])
    else:
        recipe["stages"]["distill"] = {"teacher": str(files["savedmodel"]), "epochs": 1}
    with pytest.raises(ValueError, match=r"touches_a_file.*trust_model_code"):
        tfc.pipeline.run(recipe)
    assert not marker.exists()
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
def test_the_cli_refuses_a_lambda_model_and_names_the_opt_in(lambda_files, tmp_path):
    files, marker = lambda_files
    (tmp_path / "r.yaml").write_text(f"model: {files['keras']}\nstages: {{train: {{epochs: 1}}, export: {{}}}}\n")
    result = subprocess.run(
        [sys.executable, "-m", "tfcompress", "run", "--recipe=r.yaml"],
        capture_output=True, text=True, timeout=600, cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 1, result.stdout + result.stderr[-2000:]
    assert "--trust_model_code" in result.stdout and "Traceback" not in result.stdout + result.stderr
    assert not marker.exists()
