"""A recipe's `distribute`: its training stages under MirroredStrategy and MultiWorkerMirroredStrategy.

The distributed runs are compared with the same recipe on one device. Each training
stage takes one full-batch step, so both see the same examples in each step; what is left
is the order in which the replicas' gradients are summed. Adam's first step divides each
gradient by its own size, so a gradient that is nearly zero (a sum of terms that cancel)
still moves its weight by up to the learning rate, and the summation order can change it.
Measured on the built-in student, one full-batch step on two logical CPUs against one:
SGD's weights differ by at most 1.5e-8, Adam's (what the stages use) by 2.2e-4; the
stages' logits then differ by about 1e-4 of their scale.
"""

import json
import os
import pathlib
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import tfcompress as tfc
from tests.conftest import free_ports
from tfcompress.pipeline import distribution

ROOT = pathlib.Path(__file__).resolve().parent.parent.parent
# One full-batch step per training stage (the digits' 1,437 training images in one batch of 2,048).
RECIPE = {
    "model": "builtin:student",
    "stage_files": True,
    "batch_size": 2048,
    "stages": {
        "train": {"epochs": 1},
        "prune": {"sparsity": 0.5, "epochs": 1, "finetune_epochs": 0},
        "qat": {"epochs": 1},
        "export": {},
    },
}
# Of the logits' largest magnitude; see the module docstring.
RELATIVE_TOLERANCE = 1e-3


def _compare(one_device, distributed):
    """The distributed run's files against one device's: float stages within tolerance, int8 agreeing."""
    (_, _), (x, _) = tfc.data.load_digits()
    for label in ("train", "prune"):
        expected = tfc.litert.LiteRTModel(one_device["files"][f"{label} (float32)"]).predict(x)
        got = tfc.litert.LiteRTModel(distributed["files"][f"{label} (float32)"]).predict(x)
        assert np.abs(got - expected).max() <= RELATIVE_TOLERANCE * np.abs(expected).max(), label
    expected = tfc.litert.LiteRTModel(one_device["files"]["model"]).predict(x)
    got = tfc.litert.LiteRTModel(distributed["files"]["model"]).predict(x)
    assert np.mean(got.argmax(-1) == expected.argmax(-1)) >= 0.99  # int8 rounds: a near tie may flip
    for mine, theirs in zip(one_device["rows"], distributed["rows"]):
        assert (mine["stage"], mine["parameters"], mine["nonzero_parameters"]) == (
            theirs["stage"], theirs["parameters"], theirs["nonzero_parameters"]
        )  # fmt: skip
        assert abs(mine["keras_accuracy"] - theirs["keras_accuracy"]) <= 2 / 360  # at most two examples


def test_distribute_takes_the_three_strategies_and_names_them_when_misspelt():
    expected = r"`distribute` must be one of \[None, 'mirrored', 'multi_worker'"
    with pytest.raises(tfc.pipeline.recipe.RecipeError, match=expected):
        tfc.pipeline.recipe.check(dict(RECIPE, distribute="multiworker"))
    assert tfc.pipeline.recipe.check(dict(RECIPE, distribute="mirrored"))["distribute"] == "mirrored"


def test_multi_worker_without_tf_config_says_how_to_set_it(monkeypatch):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    with pytest.raises(ValueError, match=r"reads the cluster from the TF_CONFIG environment variable.*every worker"):
        distribution.strategy_for("multi_worker")
    monkeypatch.setenv("TF_CONFIG", "{not json")
    with pytest.raises(ValueError, match="TF_CONFIG must be JSON with a `cluster` and a `task`"):
        distribution.strategy_for("multi_worker")


def test_one_device_writes_its_files_itself():
    assert distribution.strategy_for(None) is None and distribution.is_chief(None)


_MIRRORED_SCRIPT = textwrap.dedent(
    """
    import json, sys
    import tensorflow as tf
    import tfcompress as tfc
    from tests.pipeline.test_distribution import RECIPE

    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    reports = {}
    for name, distribute in (("one", None), ("mirrored", "mirrored")):
        recipe = dict(RECIPE, output_dir=f"{sys.argv[1]}/{name}", distribute=distribute)
        reports[name] = tfc.pipeline.run(recipe, progress=lambda line: None)
    print(json.dumps({**reports, "replicas": tf.distribute.MirroredStrategy().num_replicas_in_sync}))
    """
)


@pytest.mark.slow
def test_mirrored_on_two_devices_matches_one_device(tmp_path):
    result = subprocess.run(
        [sys.executable, "-c", _MIRRORED_SCRIPT, str(tmp_path)], capture_output=True, text=True, timeout=600, cwd=ROOT
    )
    assert result.returncode == 0, result.stderr[-3000:]
    reports = json.loads(result.stdout.strip().splitlines()[-1])
    assert reports["replicas"] == 2
    _compare(reports["one"], reports["mirrored"])


_WORKER_SCRIPT = textwrap.dedent(
    """
    import json, sys
    import tfcompress as tfc
    from tests.pipeline.test_distribution import RECIPE

    recipe = dict(RECIPE, output_dir=sys.argv[1], distribute="multi_worker")
    print(json.dumps(tfc.pipeline.run(recipe, progress=lambda line: None)))
    """
)


@pytest.mark.slow
def test_two_local_workers_match_one_device_and_only_the_chief_writes(tmp_path):
    cluster = {"worker": [f"localhost:{port}" for port in free_ports(2)]}
    folders = [tmp_path / "chief", tmp_path / "worker1"]
    workers = []
    for index, folder in enumerate(folders):
        config = json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}})
        workers.append(
            subprocess.Popen(
                [sys.executable, "-c", _WORKER_SCRIPT, str(folder)],
                cwd=ROOT,
                env={**os.environ, "TF_CONFIG": config},
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
        )
    try:
        outputs = [worker.communicate(timeout=600) for worker in workers]
    finally:
        for worker in workers:
            worker.kill()
    for worker, (_, stderr) in zip(workers, outputs):
        assert worker.returncode == 0, stderr[-3000:]
    chief, other = (json.loads(stdout.strip().splitlines()[-1]) for stdout, _ in outputs)
    assert chief["files"]["model"] == str(folders[0] / "model_int8.tflite")
    assert not folders[1].exists() and not other["files"]["model"].startswith(str(tmp_path))
    one_device = tfc.pipeline.run(dict(RECIPE, output_dir=str(tmp_path / "one")), progress=lambda line: None)
    _compare(one_device, chief)
