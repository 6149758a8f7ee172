"""The Distiller's claims at scale, in both engines: MirroredStrategy and mixed precision match float32 training."""

import subprocess
import sys
import textwrap

import numpy as np
import pytest

import tfcompress as tfc
from tests.conftest import ENGINES, free_ports
from tfcompress import keras as keras2
from tfcompress._keras3 import keras_of

METHODS = ("hinton", "dkd", "hint", "two_teachers")


def _dense_model(units, name, keras):
    hidden = keras.layers.Dense(units, activation="relu", name=f"{name}_hidden")
    return keras.Sequential([keras.Input((64,)), hidden, keras.layers.Dense(10)], name=name)


def _dense_models(seed, engine="keras2"):
    keras = _keras(engine)
    keras.utils.set_random_seed(seed)
    return _dense_model(32, "teacher", keras), _dense_model(16, "student", keras)


def _keras(engine):
    if engine == "keras2":
        return keras2
    import keras

    return keras


def _method_arguments(method, teacher):
    """`(teacher argument, compile keyword arguments)` that exercise one distillation method."""
    if method == "two_teachers":
        return [teacher, _dense_model(24, "second_teacher", keras_of(teacher))], {}
    extra = {
        "hinton": {},
        "dkd": {"distillation_loss_fn": tfc.distill.DecoupledKD(alpha=1.0, beta=8.0)},
        "hint": {"feature_losses": [tfc.distill.Hint("student_hidden", "teacher_hidden")]},
    }
    return teacher, extra[method]


def _weights(model):
    return [np.array(weight, dtype=np.float32) for weight in model.get_weights()]


def _one_step(teacher, student, x, y, sample_weight=None, learning_rate=0.5, method="hinton"):
    """One full-batch distillation step; returns its history, the student's weights and the Distiller."""
    teacher, compile_kwargs = _method_arguments(method, teacher)
    distiller = tfc.Distiller(student=student, teacher=teacher)
    optimizer = keras_of(student).optimizers.SGD(learning_rate)
    distiller.compile(optimizer=optimizer, alpha=0.3, temperature=4.0, **compile_kwargs)
    history = distiller.fit(
        x, y, sample_weight=sample_weight, batch_size=len(x), epochs=1, shuffle=False, verbose=0
    ).history
    return history, _weights(student), distiller


def _weight_changes(x, y, sample_weight, policy, method, engine):
    keras = _keras(engine)
    teacher, _ = _dense_models(0, engine)
    keras.mixed_precision.set_global_policy(policy)
    try:
        _, student = _dense_models(0, engine)
        before = _weights(student)
        _, after, distiller = _one_step(teacher, student, x, y, sample_weight, learning_rate=1.0, method=method)
    finally:
        keras.mixed_precision.set_global_policy("float32")
    return [a - b for a, b in zip(after, before)], distiller, student


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("method", METHODS)
@pytest.mark.slow
def test_mixed_float16_scales_the_loss_so_small_gradients_survive(digits, method, engine):
    (x, y), _ = digits
    x, y = x[:64].reshape(64, -1), y[:64]
    # Tiny sample weights make gradients that underflow in float16 unless the loss is scaled.
    tiny = np.full(len(x), 1e-5, np.float32)
    expected, _, _ = _weight_changes(x, y, tiny, "float32", method, engine)
    changes, distiller, student = _weight_changes(x, y, tiny, "mixed_float16", method, engine)
    assert isinstance(distiller.optimizer, _keras(engine).mixed_precision.LossScaleOptimizer)
    assert student.layers[0].compute_dtype == "float16"
    for want, got in zip(expected, changes):
        np.testing.assert_allclose(got, want, atol=0.1 * np.abs(want).max())


_MIRRORED_SCRIPT = textwrap.dedent(
    """
    import json
    import numpy as np
    import tensorflow as tf
    import tfcompress as tfc
    from tests.conftest import ENGINES
    from tests.distill.test_distiller_scale import METHODS, _dense_models, _one_step

    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    (x, y), _ = tfc.data.load_digits()
    x, y = x[:64].reshape(64, -1), y[:64]
    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    results = {"replicas": strategy.num_replicas_in_sync}
    for engine, method in [(engine, method) for engine in ENGINES for method in METHODS]:
        single, single_weights, _ = _one_step(*_dense_models(0, engine), x, y, method=method)
        with strategy.scope():
            mirrored, mirrored_weights, _ = _one_step(*_dense_models(0, engine), x, y, method=method)
        results[f"{engine} {method}"] = {
            "losses": [single["loss"][0], mirrored["loss"][0]],
            "max_weight_difference": max(float(np.abs(a - b).max()) for a, b in zip(single_weights, mirrored_weights)),
        }
    print(json.dumps(results))
    """
)


@pytest.mark.slow
def test_mirrored_strategy_on_two_devices_matches_one_device():
    import json
    import pathlib

    root = pathlib.Path(__file__).parent.parent.parent
    result = subprocess.run(
        [sys.executable, "-c", _MIRRORED_SCRIPT], capture_output=True, text=True, timeout=600, cwd=root
    )
    assert result.returncode == 0, result.stderr[-3000:]
    measured = json.loads(result.stdout.strip().splitlines()[-1])
    assert measured["replicas"] == 2
    for run in [f"{engine} {method}" for engine in ENGINES for method in METHODS]:
        single_loss, mirrored_loss = measured[run]["losses"]
        assert mirrored_loss == pytest.approx(single_loss, rel=1e-5), run
        assert measured[run]["max_weight_difference"] < 1e-5, run


class _Interruption(Exception):
    pass


class _InterruptAtEpoch(keras2.callbacks.Callback):  # Keras 3's fit takes it too
    """Stands in for a preempted machine: training dies as the given epoch begins."""

    def __init__(self, epoch):
        super().__init__()
        self.epoch = epoch

    def on_epoch_begin(self, epoch, logs=None):
        if epoch == self.epoch:
            raise _Interruption(f"interrupted at epoch {epoch}")


def _resumable_fit(x, y, callbacks, hint, engine):
    """A fresh process's view: the same models and settings rebuilt from the same seed, then fit."""
    teacher, student = _dense_models(0, engine)
    teacher_arg, compile_kwargs = _method_arguments("hint" if hint else "hinton", teacher)
    distiller = tfc.Distiller(student=student, teacher=teacher_arg)
    distiller.compile(optimizer=_keras(engine).optimizers.Adam(1e-2), alpha=0.3, temperature=4.0, **compile_kwargs)
    schedule = tfc.distill.DistillationSchedule(alpha=tfc.distill.linear(0.1, 0.7, epochs=4))
    history = distiller.fit(x, y, batch_size=32, epochs=4, shuffle=False, verbose=0, callbacks=[schedule, *callbacks])
    return history.history, student, distiller


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("hint", [False, True], ids=["hinton", "hint_with_adapter"])
@pytest.mark.slow
def test_backup_and_restore_resumes_an_interrupted_distillation_exactly(digits, tmp_path, hint, engine):
    (x, y), _ = digits
    x, y = x[:256].reshape(256, -1), y[:256]
    _, uninterrupted, _ = _resumable_fit(x, y, [], hint, engine)

    backup = str(tmp_path / "backup")
    keras = _keras(engine)
    with pytest.raises(_Interruption):
        _resumable_fit(x, y, [keras.callbacks.BackupAndRestore(backup), _InterruptAtEpoch(2)], hint, engine)
    history, resumed, distiller = _resumable_fit(x, y, [keras.callbacks.BackupAndRestore(backup)], hint, engine)

    assert len(history["loss"]) == 2  # epochs 2 and 3 only: 0 and 1 came from the backup
    assert history["alpha"] == pytest.approx([0.5, 0.7])  # the schedule carries on where it stopped
    assert distiller.alpha == pytest.approx(0.7)
    for a, b in zip(_weights(uninterrupted), _weights(resumed)):
        np.testing.assert_allclose(a, b, atol=1e-6)


_WORKER_SCRIPT = textwrap.dedent(
    """
    import json
    import numpy as np
    import tfcompress as tfc
    from tfcompress._keras import tf
    from tests.conftest import ENGINES
    from tests.distill.test_distiller_scale import _dense_models, _keras

    strategy = tf.distribute.MultiWorkerMirroredStrategy()
    (x, y), _ = tfc.data.load_digits()
    dataset = tf.data.Dataset.from_tensor_slices((x[:256].reshape(256, -1), y[:256])).batch(64)
    results = {
        "workers": strategy.cluster_resolver.cluster_spec().num_tasks("worker"),
        "replicas": strategy.num_replicas_in_sync,
    }
    for engine in ENGINES:  # one pair of workers for both engines: starting them is most of the cost
        with strategy.scope():
            teacher, student = _dense_models(0, engine)
            distiller = tfc.Distiller(student=student, teacher=teacher)
            distiller.compile(optimizer=_keras(engine).optimizers.SGD(0.1), alpha=0.3, temperature=4.0)
        try:
            history = distiller.fit(dataset, epochs=3, verbose=0).history
        except ValueError as error:  # Keras 3's fit fails on several workers: refused in our words
            results[engine] = {"refused": str(error)}
            continue
        results[engine] = {
            "loss": history["loss"], "weights": [float(np.abs(weight).sum()) for weight in student.get_weights()]
        }
    print(json.dumps(results))
    """
)


@pytest.mark.slow
def test_multi_worker_mirrored_strategy_runs_a_distillation_fit_on_two_local_workers():
    import json
    import os
    import pathlib

    root = pathlib.Path(__file__).parent.parent.parent
    cluster = {"worker": [f"localhost:{port}" for port in free_ports(2)]}
    workers = []
    for index in range(2):
        config = json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}})
        workers.append(
            subprocess.Popen(
                [sys.executable, "-c", _WORKER_SCRIPT],
                cwd=root,
                env={**os.environ, "TF_CONFIG": config},
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
        )
    outputs = []
    try:
        for worker in workers:
            stdout, stderr = worker.communicate(timeout=300)
            assert worker.returncode == 0, stderr[-3000:]
            outputs.append(json.loads(stdout.strip().splitlines()[-1]))
    finally:
        for worker in workers:
            worker.kill()
    assert [output["workers"] for output in outputs] == [2, 2]
    assert [output["replicas"] for output in outputs] == [2, 2]
    # Synchronous training: both workers end with the same student, and it learned.
    np.testing.assert_allclose(outputs[0]["keras2"]["weights"], outputs[1]["keras2"]["weights"], rtol=1e-6)
    assert outputs[0]["keras2"]["loss"][-1] < outputs[0]["keras2"]["loss"][0]
    assert "MultiWorkerMirroredStrategy of 2 workers" in outputs[0]["keras3"]["refused"]
