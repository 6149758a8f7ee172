"""The Distiller's claims at scale: MirroredStrategy and mixed precision match plain float32 training."""

import subprocess
import sys
import textwrap

import numpy as np
import pytest

import tfcompress as tfc
from tfcompress import keras


def _dense_models(seed):
    keras.utils.set_random_seed(seed)
    teacher = keras.Sequential([keras.Input((64,)), keras.layers.Dense(32, activation="relu"), keras.layers.Dense(10)])
    student = keras.Sequential([keras.Input((64,)), keras.layers.Dense(16, activation="relu"), keras.layers.Dense(10)])
    return teacher, student


def _weights(model):
    return [np.array(weight, dtype=np.float32) for weight in model.get_weights()]


def _one_step(teacher, student, x, y, sample_weight=None, learning_rate=0.5):
    """One full-batch distillation step; returns its history, the student's weights and the Distiller."""
    distiller = tfc.Distiller(student=student, teacher=teacher)
    distiller.compile(optimizer=keras.optimizers.SGD(learning_rate), alpha=0.3, temperature=4.0)
    history = distiller.fit(
        x, y, sample_weight=sample_weight, batch_size=len(x), epochs=1, shuffle=False, verbose=0
    ).history
    return history, _weights(student), distiller


def _weight_changes(x, y, sample_weight, policy):
    teacher, _ = _dense_models(0)
    keras.mixed_precision.set_global_policy(policy)
    try:
        _, student = _dense_models(0)
        before = _weights(student)
        _, after, distiller = _one_step(teacher, student, x, y, sample_weight, learning_rate=1.0)
    finally:
        keras.mixed_precision.set_global_policy("float32")
    return [a - b for a, b in zip(after, before)], distiller, student


def test_mixed_float16_scales_the_loss_so_small_gradients_survive(digits):
    (x, y), _ = digits
    x, y = x[:64].reshape(64, -1), y[:64]
    # Tiny sample weights make gradients that underflow in float16 unless the loss is scaled.
    tiny = np.full(len(x), 1e-5, np.float32)
    expected, _, _ = _weight_changes(x, y, tiny, "float32")
    changes, distiller, student = _weight_changes(x, y, tiny, "mixed_float16")
    assert isinstance(distiller.optimizer, keras.mixed_precision.LossScaleOptimizer)
    assert student.layers[0].compute_dtype == "float16"
    for want, got in zip(expected, changes):
        np.testing.assert_allclose(got, want, atol=0.1 * np.abs(want).max())


_MIRRORED_SCRIPT = textwrap.dedent(
    """
    import json
    import numpy as np
    import tensorflow as tf
    import tfcompress as tfc
    from tests.test_distiller_scale import _dense_models, _one_step

    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    (x, y), _ = tfc.data.load_digits()
    x, y = x[:64].reshape(64, -1), y[:64]
    single, single_weights, _ = _one_step(*_dense_models(0), x, y)
    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    with strategy.scope():
        mirrored, mirrored_weights, _ = _one_step(*_dense_models(0), x, y)
    print(json.dumps({
        "replicas": strategy.num_replicas_in_sync,
        "losses": [single["loss"][0], mirrored["loss"][0]],
        "max_weight_difference": max(float(np.abs(a - b).max()) for a, b in zip(single_weights, mirrored_weights)),
        "max_weight_change": max(float(np.abs(a).max()) for a in single_weights),
    }))
    """
)


def test_mirrored_strategy_on_two_devices_matches_one_device():
    import json
    import pathlib

    root = pathlib.Path(__file__).parent.parent
    result = subprocess.run(
        [sys.executable, "-c", _MIRRORED_SCRIPT], capture_output=True, text=True, timeout=600, cwd=root
    )
    assert result.returncode == 0, result.stderr[-3000:]
    measured = json.loads(result.stdout.strip().splitlines()[-1])
    assert measured["replicas"] == 2
    assert measured["losses"][1] == pytest.approx(measured["losses"][0], rel=1e-5)
    assert measured["max_weight_difference"] < 1e-5
