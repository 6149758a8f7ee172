"""Magnitude pruning in both engines (TF-MOT for tf_keras, masks for Keras 3): reaches its target, never touches the
user's model, gives back a model of the Keras that came in."""

import math

import numpy as np
import pytest

import tfcompress as tfc
from tests.conftest import ENGINES, compile_classifier, weights_of
from tfcompress import keras
from tfcompress._keras3 import keras_of

BATCH = 64


def _kernel_sparsities(model):
    return {getattr(weight, "path", weight.name): float(np.mean(np.asarray(weight) == 0))
            for weight in model.weights if "kernel" in weight.name}  # fmt: skip


@pytest.fixture(scope="module", params=ENGINES)
def pruned_and_stripped(request, digits):
    """`(the user's model, its weights before, the pruning model, the stripped model)`, once per engine."""
    trained_cnn = request.getfixturevalue("trained_cnn" if request.param == "keras2" else "trained_cnn3")
    (x_train, y_train), _ = digits
    original = weights_of(trained_cnn)
    keras.utils.set_random_seed(0)
    steps = math.ceil(len(x_train) / BATCH)
    pruning = tfc.prune.magnitude(trained_cnn, target_sparsity=0.8, epochs=2, steps_per_epoch=steps)
    compile_classifier(pruning)
    pruning.fit(x_train, y_train, batch_size=BATCH, epochs=3, callbacks=tfc.prune.callbacks(), verbose=0)
    return trained_cnn, original, pruning, tfc.prune.strip(pruning)


def test_reaches_target_sparsity_in_every_kernel(pruned_and_stripped):
    _, _, _, stripped = pruned_and_stripped
    sparsities = _kernel_sparsities(stripped)
    assert len(sparsities) == 3
    for name, sparsity in sparsities.items():
        assert sparsity == pytest.approx(0.8, abs=0.01), name


def test_users_model_is_not_modified(pruned_and_stripped):
    trained_cnn, original, _, _ = pruned_and_stripped
    for before, after in zip(original, weights_of(trained_cnn)):
        np.testing.assert_array_equal(before, after)
    assert max(_kernel_sparsities(trained_cnn).values()) < 0.01


def test_strip_gives_an_independent_plain_model_of_the_users_keras(pruned_and_stripped, digits):
    trained_cnn, _, pruning, stripped = pruned_and_stripped
    assert not tfc.prune.is_pruned(stripped) and tfc.prune.is_pruned(pruning)
    assert [type(layer).__name__ for layer in stripped.layers] == [
        "InputLayer",
        "Conv2D",
        "MaxPooling2D",
        "Flatten",
        "Dense",
        "Dense",
    ]
    keras_of_user = keras_of(trained_cnn)
    assert isinstance(pruning, keras_of_user.Model) and isinstance(stripped, keras_of_user.Model)
    before = weights_of(stripped)
    (x_train, y_train), _ = digits
    pruning.fit(x_train[:64], y_train[:64], epochs=1, callbacks=tfc.prune.callbacks(), verbose=0)
    for kept, now in zip(before, weights_of(stripped)):
        np.testing.assert_array_equal(kept, now)


def test_pruned_model_still_classifies(pruned_and_stripped, digits):
    _, _, _, stripped = pruned_and_stripped
    _, (x_test, y_test) = digits
    accuracy = np.mean(np.argmax(stripped.predict(x_test, verbose=0), axis=-1) == y_test)
    assert accuracy > 0.8


def test_report_counts_parameters_and_zeros(pruned_and_stripped):
    trained_cnn, _, pruning, stripped = pruned_and_stripped
    report = tfc.prune.sparsity(stripped)
    assert report["parameters"] == trained_cnn.count_params()
    assert [row["layer"] for row in report["layers"]] == [layer.name for layer in trained_cnn.layers if layer.weights]
    zeros = sum(int(np.sum(weight == 0)) for weight in weights_of(stripped))
    assert report["nonzero_parameters"] == report["parameters"] - zeros
    assert 0.75 < report["sparsity"] < 0.8  # biases are not pruned
    # The wrapped model reports the same weights, not its masks.
    assert tfc.prune.sparsity(pruning)["parameters"] == report["parameters"]


def test_the_old_name_report_still_answers_and_says_it_is_deprecated(pruned_and_stripped):
    _, _, _, stripped = pruned_and_stripped
    with pytest.warns(DeprecationWarning, match="tfc.prune.report is now tfc.prune.sparsity"):
        assert tfc.prune.report(stripped) == tfc.prune.sparsity(stripped)


def test_constant_schedule_and_end_step(engine, digits):
    trained_cnn = engine.trained_cnn
    (x_train, y_train), _ = digits
    pruning = tfc.prune.magnitude(trained_cnn, 0.5, end_step=10, schedule="constant")
    compile_classifier(pruning)
    pruning.fit(x_train[:640], y_train[:640], batch_size=BATCH, epochs=1, callbacks=tfc.prune.callbacks(), verbose=0)
    for sparsity in _kernel_sparsities(tfc.prune.strip(pruning)).values():
        assert sparsity == pytest.approx(0.5, abs=0.01)


def test_forgetting_the_callback_is_a_clear_error(trained_cnn, digits):
    (x_train, y_train), _ = digits
    pruning = compile_classifier(tfc.prune.magnitude(trained_cnn, 0.5, end_step=10))
    with pytest.raises(ValueError, match=r"needs the pruning-step callback.*callbacks=tfc\.prune\.callbacks\(\)"):
        pruning.fit(x_train[:64], y_train[:64], verbose=0, callbacks=[keras.callbacks.History()])


def test_a_keras3_pruning_model_counts_its_own_steps_and_logs_its_sparsity(trained_cnn3, digits, tmp_path):
    import keras as keras3

    (x_train, y_train), _ = digits
    pruning = compile_classifier(tfc.prune.magnitude(trained_cnn3, 0.5, end_step=10, frequency=5))
    history = pruning.fit(x_train[:640], y_train[:640], batch_size=BATCH, epochs=2, verbose=0).history  # no callback
    # Pruned at steps 0, 5 and 10: at 5 the polynomial schedule is at 0.5 - 0.5 * (1 - 5 / 10) ** 3.
    assert history["sparsity"] == pytest.approx([0.4375, 0.5], abs=0.002) and pruning.pruning_step == 20
    # With tfc.prune.callbacks(log_dir=...) as a tf_keras user writes it, Keras 3's TensorBoard writes the summaries.
    callbacks = [*tfc.prune.callbacks(log_dir=str(tmp_path / "logs")), keras3.callbacks.EarlyStopping(patience=1,
                                                                                                      monitor="loss")]
    pruning.fit(x_train[:64], y_train[:64], epochs=1, verbose=0, callbacks=callbacks)
    assert any((tmp_path / "logs").rglob("events.out.tfevents.*"))


@pytest.mark.parametrize("target", [1.0, -0.1, 1.5, float("nan"), "80%"])
def test_target_outside_unit_interval(trained_cnn, target):
    with pytest.raises(ValueError, match=r"`target_sparsity` must be a number in \[0, 1\)"):
        tfc.prune.magnitude(trained_cnn, target, end_step=10)


@pytest.mark.parametrize(
    "arguments, message",
    [
        ({}, r"pass `epochs` and `steps_per_epoch`"),
        ({"epochs": 2}, r"pass `epochs` and `steps_per_epoch`"),
        ({"epochs": 2, "steps_per_epoch": 5, "end_step": 10}, r"not both"),
        ({"epochs": 0, "steps_per_epoch": 5}, r"`epochs` must be a positive integer"),
        ({"end_step": 5, "begin_step": 5}, r"`end_step` must be an integer greater than `begin_step` \(5\)"),
        ({"end_step": 10, "frequency": 0}, r"`frequency` must be a positive integer"),
        ({"end_step": 10, "schedule": "cubic"}, r"`schedule` must be one of \('polynomial', 'constant'\)"),
        ({"end_step": 10, "initial_sparsity": 0.9}, r"must not exceed `target_sparsity`"),
        ({"end_step": 10, "schedule": "constant", "initial_sparsity": 0.2}, r"only applies to the 'polynomial'"),
    ],
)
def test_bad_schedule_arguments(trained_cnn, arguments, message):
    with pytest.raises(ValueError, match=message):
        tfc.prune.magnitude(trained_cnn, 0.8, **arguments)


def test_already_pruned_and_strip_of_plain_model(engine):
    trained_cnn = engine.trained_cnn
    pruning = tfc.prune.magnitude(trained_cnn, 0.5, end_step=10)
    with pytest.raises(ValueError, match=r"already has pruning wrappers"):
        tfc.prune.magnitude(pruning, 0.5, end_step=10)
    with pytest.raises(ValueError, match=r"has no pruning wrappers to strip"):
        tfc.prune.strip(trained_cnn)


def test_subclassed_and_unbuilt_models(engine):
    keras = engine.keras

    class Subclassed(keras.Model):
        def __init__(self):
            super().__init__()
            self.dense = keras.layers.Dense(10)

        def call(self, inputs):
            return self.dense(inputs)

    model = Subclassed()
    model(np.zeros((1, 4), np.float32))
    with pytest.raises(ValueError, match=r"is a subclassed model \(Subclassed\)"):
        tfc.prune.magnitude(model, 0.5, end_step=10)
    with pytest.raises(ValueError, match=r"`model` is not built"):
        tfc.prune.magnitude(keras.Sequential([keras.layers.Dense(3)]), 0.5, end_step=10)


def test_callbacks_with_log_dir(tmp_path):
    found = tfc.prune.callbacks(log_dir=str(tmp_path))
    assert [type(callback).__name__ for callback in found] == ["UpdatePruningStep", "PruningSummaries"]


@pytest.mark.slow
def test_two_in_four_sparsity(digits, engine):
    keras = engine.keras
    keras.utils.set_random_seed(0)
    (x_train, y_train), _ = digits
    model = keras.Sequential(
        [
            keras.Input((8, 8, 1)),
            keras.layers.Conv2D(8, 3, padding="same", activation="relu", name="first"),
            keras.layers.Conv2D(16, 3, padding="same", activation="relu", name="second"),
            keras.layers.Flatten(),
            keras.layers.Dense(10, name="logits"),
        ]
    )
    pruned = tfc.prune.magnitude(model, target_sparsity=0.5, m_by_n=(2, 4), end_step=20)
    pruned.compile(optimizer="adam", loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    pruned.fit(x_train, y_train, epochs=1, batch_size=32, callbacks=tfc.prune.callbacks(), verbose=0)
    stripped = tfc.prune.strip(pruned)
    for name in ("second", "logits"):
        kernel = stripped.get_layer(name).get_weights()[0]
        groups = np.moveaxis(kernel, -2, -1).reshape(-1, 4)  # 4 consecutive weights along the input axis
        assert np.all((groups == 0).sum(axis=1) >= 2), name
    assert not np.any(stripped.get_layer("first").get_weights()[0] == 0)  # one input channel: left dense


@pytest.mark.parametrize(
    "arguments, message",
    [
        ({"m_by_n": (4, 2)}, r"`m_by_n` must be a pair \(m, n\) of ints with 0 < m < n"),
        ({"m_by_n": (2, 4)}, r"the sparsity is 2/4 = 0.5; pass target_sparsity=0.5"),
        ({"m_by_n": (2, 4), "target_sparsity": 0.5, "schedule": "polynomial"}, "use schedule='constant'"),
    ],
)
def test_bad_m_by_n(trained_cnn, arguments, message):
    with pytest.raises(ValueError, match=message):
        tfc.prune.magnitude(trained_cnn, end_step=10, **arguments)
