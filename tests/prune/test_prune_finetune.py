"""Fine-tuning after channel pruning, the iterative schedule, and network slimming's γ penalty."""

import numpy as np
import pytest

import tfcompress as tfc
from tests.conftest import accuracy, compile_classifier, weights_of
from tests.prune.test_prune_blocks import small_resnet
from tfcompress import keras
from tfcompress._keras3 import keras_of


@pytest.mark.slow
def test_finetune_recovers_accuracy_lost_to_pruning(trained_cnn, digits, seeded):
    (x_train, y_train), (x_test, y_test) = digits
    smaller = tfc.prune.channels(trained_cnn, 0.75)
    pruned = accuracy(smaller, x_test, y_test)
    history = tfc.prune.finetune(smaller, (x_train, y_train), epochs=3, validation_data=(x_test, y_test))
    assert len(history.history["val_accuracy"]) == 3
    assert accuracy(smaller, x_test, y_test) > pruned + 0.05
    with pytest.raises(ValueError, match="`data` needs labels"):
        tfc.prune.finetune(smaller, x_train)
    with pytest.raises(ValueError, match="`epochs` must be a positive integer"):
        tfc.prune.finetune(smaller, (x_train, y_train), epochs=0)


@pytest.mark.parametrize("allocation", ["uniform", "global"])
@pytest.mark.slow
def test_iterative_reaches_the_one_shot_widths_in_steps(trained_cnn, digits, allocation, seeded):
    (x_train, y_train), (x_test, y_test) = digits
    before = weights_of(trained_cnn)
    smaller, log = tfc.prune.iterative(
        trained_cnn, (x_train, y_train), 0.5, steps=2, allocation=allocation, validation_data=(x_test, y_test)
    )
    one_shot = tfc.prune.plan_channels(trained_cnn, 0.5, allocation=allocation).widths()
    assert {name: after for name, (_, after) in one_shot.items()} == {
        name: now for name, (now, _) in tfc.prune.plan_channels(smaller, 0.0).widths().items()
    }
    assert [row["step"] for row in log] == [1, 2]
    cut = [(before, after) for before, after in one_shot.values() if after < before]
    assert log[1]["removed"] == pytest.approx(1 - sum(after for _, after in cut) / sum(before for before, _ in cut))
    assert log[0]["removed"] == pytest.approx(log[1]["removed"] / 2, abs=0.05)  # half the way after one step
    assert log[0]["parameters"] > log[1]["parameters"] == smaller.count_params()
    assert log[1]["accuracy"] == pytest.approx(accuracy(smaller, x_test, y_test))
    assert all(row["accuracy"] > row["accuracy_pruned"] - 0.02 for row in log)
    for original, now in zip(before, weights_of(trained_cnn)):
        np.testing.assert_array_equal(original, now)


@pytest.mark.slow
def test_iterative_with_a_budget_and_a_data_criterion(trained_cnn, digits, seeded):
    (x_train, y_train), _ = digits
    limit = 0.4 * tfc.prune.cost(trained_cnn)["macs"]
    smaller, log = tfc.prune.iterative(
        trained_cnn, (x_train, y_train), budget={"macs": 0.4}, steps=2, criterion="taylor"
    )
    assert tfc.prune.cost(smaller)["macs"] <= limit and log[-1]["accuracy"] is None
    with pytest.raises(ValueError, match="`steps` must be a positive integer"):
        tfc.prune.iterative(trained_cnn, (x_train, y_train), 0.5, steps=0)


@pytest.mark.slow
def test_gamma_penalty_drives_batchnorm_scales_down_on_a_copy(digits, seeded):
    (x_train, y_train), _ = digits
    model = small_resnet(width=8, blocks=1)
    before = weights_of(model)
    penalized = tfc.prune.gamma_penalty(model, 0.1)
    assert len(penalized.losses) == 3 and not model.losses  # one per BatchNormalization; the original has none
    plain = keras.models.clone_model(model)
    plain.set_weights(model.get_weights())
    for candidate in (penalized, plain):
        keras.utils.set_random_seed(0)
        compile_classifier(candidate, 1e-2).fit(x_train, y_train, epochs=3, batch_size=64, verbose=0)

    def gamma_l1(m):
        return sum(np.abs(layer.gamma.numpy()).sum() for layer in m.layers if hasattr(layer, "gamma"))

    assert gamma_l1(penalized) < 0.5 * gamma_l1(plain)
    assert not tfc.prune.gamma_penalty(penalized, 0).losses
    for original, now in zip(before, weights_of(model)):
        np.testing.assert_array_equal(original, now)
    with pytest.raises(ValueError, match="no BatchNormalization layer that learns a scale"):
        tfc.prune.gamma_penalty(keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)]))
    with pytest.raises(ValueError, match="`strength` must be a number"):
        tfc.prune.gamma_penalty(model, -1.0)


def test_gamma_penalty_of_a_keras3_model_is_a_keras3_copy_that_adds_it(seeded):
    import keras as keras3

    model = small_resnet(width=8, blocks=1, k=keras3)
    penalized = tfc.prune.gamma_penalty(model, 0.1)
    assert isinstance(penalized, keras3.Model) and len(penalized.losses) == 3 and not model.losses
    gammas = sum(np.abs(np.asarray(layer.gamma)).sum() for layer in model.layers if hasattr(layer, "gamma"))
    assert float(sum(penalized.losses)) == pytest.approx(0.1 * gammas, rel=1e-5)
    assert not tfc.prune.gamma_penalty(penalized, 0).losses


def _batchnorm_input_statistics(model, x):
    k = keras_of(model)
    statistics = {}
    for layer in model.layers:
        if isinstance(layer, k.layers.BatchNormalization):
            values = k.Model(model.inputs[0], layer.input).predict(x, verbose=0).astype(np.float64)
            values = values.reshape(-1, values.shape[-1])
            statistics[layer.name] = (values.mean(axis=0), values.var(axis=0))
    return statistics


def test_recalibrate_batchnorm_measures_each_layer_on_the_model_as_it_now_is(engine, digits, seeded):
    (x_train, _), _ = digits
    smaller = tfc.prune.channels(tfc.models.residual_net(8, 1, "small_resnet", keras=engine.keras), 0.5)
    assert tfc.prune.recalibrate_batchnorm(smaller, (x_train, None), examples=300) == 3
    for name, (mean, variance) in _batchnorm_input_statistics(smaller, x_train[:300]).items():
        layer = smaller.get_layer(name)
        np.testing.assert_allclose(np.asarray(layer.moving_mean), mean, rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(np.asarray(layer.moving_variance), variance, rtol=1e-4, atol=1e-5)
    with pytest.raises(ValueError, match="`examples` must be a positive integer"):
        tfc.prune.recalibrate_batchnorm(smaller, x_train, examples=0)


@pytest.mark.slow
def test_finetune_leaves_batchnorm_statistics_matching_the_final_weights(digits, seeded):
    (x_train, y_train), _ = digits
    smaller = tfc.prune.channels(small_resnet(width=8, blocks=1), 0.5)
    tfc.prune.finetune(smaller, (x_train, y_train), epochs=1)
    for name, (mean, variance) in _batchnorm_input_statistics(smaller, x_train[:1024]).items():
        np.testing.assert_allclose(smaller.get_layer(name).moving_variance.numpy(), variance, rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(smaller.get_layer(name).moving_mean.numpy(), mean, rtol=1e-4, atol=1e-5)
    stale = tfc.prune.channels(small_resnet(width=8, blocks=1), 0.5)
    tfc.prune.finetune(stale, (x_train, y_train), epochs=1, recalibrate=False)
    stale_mean = stale.get_layer("stem_bn").moving_mean.numpy()
    assert not np.allclose(stale_mean, _batchnorm_input_statistics(stale, x_train[:1024])["stem_bn"][0], atol=1e-3)


@pytest.mark.slow
def test_sensitivity_can_recalibrate_batchnorm_after_each_cut(digits, seeded):
    (x_train, y_train), (x_test, y_test) = digits
    model = compile_classifier(small_resnet(width=8, blocks=1))
    model.fit(x_train, y_train, epochs=2, batch_size=64, verbose=0)
    before = weights_of(model)
    result = tfc.prune.sensitivity(model, (x_test, y_test), ratios=(0.5,), calibration=x_train[:256])
    for original, now in zip(before, weights_of(model)):  # moving statistics included
        np.testing.assert_array_equal(original, now)
    reference = keras.models.clone_model(model)
    reference.set_weights(model.get_weights())
    tfc.prune.recalibrate_batchnorm(reference, x_train[:256])
    assert result["baseline"] == pytest.approx(accuracy(reference, x_test, y_test))
    row = result["rows"][0]
    pruned = tfc.prune.channels(model, {row["layer"].split("+")[0]: 0.5})
    tfc.prune.recalibrate_batchnorm(pruned, x_train[:256])
    assert row["accuracy"] == pytest.approx(accuracy(pruned, x_test, y_test))
    with pytest.raises(ValueError, match="`calibration` holds NaN"):
        tfc.prune.sensitivity(model, (x_test, y_test), calibration=np.full((4, 8, 8, 1), np.nan))


def test_finetune_with_the_unpruned_model_as_teacher_distills_from_it(engine, digits, seeded):
    trained_cnn = engine.trained_cnn
    (x_train, y_train), (x_test, y_test) = digits
    before = weights_of(trained_cnn)
    smaller = tfc.prune.channels(trained_cnn, 0.75)
    pruned = accuracy(smaller, x_test, y_test)
    assert isinstance(smaller, engine.keras.Model)
    history = tfc.prune.finetune(smaller, (x_train, y_train), epochs=2, teacher=trained_cnn, temperature=4.0)
    assert history.history["distillation_loss"][-1] < history.history["distillation_loss"][0]
    assert accuracy(smaller, x_test, y_test) > pruned + 0.05
    assert all(np.array_equal(a, b) for a, b in zip(before, weights_of(trained_cnn)))  # the teacher is untouched


@pytest.mark.slow
def test_finetune_adds_the_pruning_step_for_magnitude_pruning_with_a_teacher(trained_cnn, digits, seeded):
    (x_train, y_train), _ = digits
    pruning = tfc.prune.magnitude(trained_cnn, 0.5, epochs=1, steps_per_epoch=len(x_train) // 32 + 1)
    history = tfc.prune.finetune(pruning, (x_train, y_train), epochs=1, teacher=trained_cnn, recalibrate=False)
    assert "distillation_loss" in history.history
    assert tfc.prune.sparsity(tfc.prune.strip(pruning))["sparsity"] > 0.45


def test_a_teacher_that_does_not_fit_is_a_clear_error(trained_cnn, digits):
    (x_train, y_train), _ = digits
    smaller = tfc.prune.channels(trained_cnn, 0.5)
    five_classes = keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Flatten(), keras.layers.Dense(5)])
    with pytest.raises(ValueError, match="output"):
        tfc.prune.finetune(smaller, (x_train, y_train), teacher=five_classes)
    yes_no = keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Flatten(), keras.layers.Dense(1, "sigmoid")])
    with pytest.raises(ValueError, match=r"teacher's outputs have shape \(1,\)"):
        tfc.prune.finetune(smaller, (x_train, y_train), teacher=yes_no)
    with pytest.raises(ValueError, match="`hints` match the teacher's layers"):
        tfc.prune.finetune(smaller, (x_train, y_train), hints=["dense"])


class _Logged(keras.callbacks.Callback):
    """The names every epoch logged: what the fine-tuning actually trained on."""

    def __init__(self):
        super().__init__()
        self.names = set()

    def on_epoch_end(self, epoch, logs=None):
        self.names |= set(logs or {})


def test_iterative_passes_hints_recalibrate_and_fit_options_through_to_finetune(digits, seeded):
    (x_train, y_train), _ = digits
    x, y = x_train[:256], y_train[:256]
    teacher = small_resnet(width=8, blocks=1)
    logged = _Logged()
    stale, _ = tfc.prune.iterative(
        teacher, (x, y), 0.5, steps=1, criterion="l2",
        finetune_options={"teacher": teacher, "hints": ["block1_conv2"], "recalibrate": False, "callbacks": [logged],
                          "batch_size": 64, "temperature": 2.0},
    )  # fmt: skip
    assert {"block1_conv2_hint", "distillation_loss"} <= logged.names  # the hint and the teacher arrived
    measured = _batchnorm_input_statistics(stale, x)["stem_bn"][0]
    assert not np.allclose(stale.get_layer("stem_bn").moving_mean.numpy(), measured, atol=1e-3)  # not recalibrated
    settled, _ = tfc.prune.iterative(teacher, (x, y), 0.5, steps=1, finetune_options={"batch_size": 64})
    measured = _batchnorm_input_statistics(settled, x)["stem_bn"][0]
    np.testing.assert_allclose(settled.get_layer("stem_bn").moving_mean.numpy(), measured, rtol=1e-4, atol=1e-5)
    with pytest.deprecated_call(match=r"finetune_options=\{'batch_size': ...\}"):
        tfc.prune.iterative(teacher, (x, y), 0.5, steps=1, batch_size=64)
    with pytest.raises(TypeError, match="unexpected keyword argument 'ratios'"):
        tfc.prune.iterative(teacher, (x, y), 0.5, steps=1, ratios=0.5)
