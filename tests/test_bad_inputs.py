"""The catalogue of bad inputs: every public entry point and the CLI, handed what users get wrong.

Each area keeps its cases beside its tests (`tests/<area>/bad_inputs.py`, a `CASES` table); the cases that span
areas are here. For each case: the error is ours (raised inside tfcompress, not deep in TensorFlow), of the
expected type, and says what happened and what to do; no file appears or changes in the working folder; and the
user's model keeps its weights.
"""

import importlib
import os
import signal
import subprocess
import sys
import time
import traceback

import numpy as np
import pytest

import tfcompress as tfc
from tests import zoo
from tests.bad_inputs_support import (
    PLANTED,
    keras3_lambda,
    keras3_subclassed,
    multi_io_file,
    permuted,
    sequences,
    snapshot,
    variable_gru,
)
from tests.conftest import tfcompress_child, weights_of

AREAS = ("data", "distill", "prune", "quantize", "export", "litert", "pipeline")

CASES = {
    "from_keras3: subclassed Keras 3 model": (
        lambda t, m, x: tfc.from_keras3(keras3_subclassed()),
        ValueError,
        "subclassed Keras 3 model",
    ),
    "from_keras3: Lambda layer": (lambda t, m, x: tfc.from_keras3(keras3_lambda()), ValueError, "is a Lambda layer"),
    "from_keras3: already Keras 2": (lambda t, m, x: tfc.from_keras3(m), TypeError, "already a Keras 2"),
    "zoo: GRU over a variable number of steps, int8": (
        lambda t, m, x: tfc.export.to_tflite(variable_gru(), t / "gru.tflite", representative_data=sequences(20)),
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
        lambda t, m, x: tfc.prune.channels(permuted(), 0.5),
        ValueError,
        r"Layer 'swap' \(Permute\) is not a layer kind it knows.*unsupported='skip'",
    ),
    "zoo: verify a file against another model": (
        lambda t, m, x: tfc.litert.verify(multi_io_file(t), m, x[:5]),
        ValueError,
        r"takes 2 inputs \['features', 'image'\], but .* takes 1; verify a file against the model it was exported",
    ),
}
for _area in AREAS:
    _cases = importlib.import_module(f"tests.{_area}.bad_inputs").CASES
    assert not set(_cases) & set(CASES), f"{_area} repeats a case name"
    CASES.update(_cases)


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
    after = snapshot(tmp_path)
    planted = {path: content for path, content in PLANTED.items() if path.startswith(str(tmp_path))}
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
