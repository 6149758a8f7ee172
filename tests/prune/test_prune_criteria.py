"""Channel criteria measured on data, budgets, protected first/last layers, and the cost model."""

import numpy as np
import pytest
import tensorflow as tf

import tfcompress as tfc
from tfcompress import keras
from tfcompress.prune.channel_pruning import plan_channels


def _hidden_model():
    """4 inputs -> hidden Dense(4, relu) -> 3 logits, with channels built to tell the criteria apart.

    Channel 0: large weights, but a bias of -100 keeps its ReLU at zero (dead).
    Channel 1: large weights and alive, but the next layer ignores it (outgoing weights 0).
    Channels 2 and 3: small weights, alive, and used.
    """
    model = keras.Sequential(
        [keras.Input((4,)), keras.layers.Dense(4, activation="relu", name="hidden"), keras.layers.Dense(3, name="out")]
    )
    kernel = np.array([[5, 4, 0.3, 0.2]] * 4, np.float32)
    model.get_layer("hidden").set_weights([kernel, np.array([-100, 0, 0, 0], np.float32)])
    out = np.random.default_rng(0).normal(size=(4, 3)).astype(np.float32)
    out[1] = 0
    model.get_layer("out").set_weights([out, np.zeros(3, np.float32)])
    return model


def _data(count=150):
    rng = np.random.default_rng(1)
    return rng.random((count, 4)).astype(np.float32), rng.integers(0, 3, count)


def _kept(model, ratio, criterion, data=None):
    plan = plan_channels(model, ratio, criterion=criterion, data=data)
    return plan.groups[plan.group_of["hidden"]]["kept"]


def test_each_criterion_removes_the_channels_it_should():
    model, data = _hidden_model(), _data()
    assert _kept(model, 0.5, "l1") == [0, 1]  # the weights alone: the two useless channels look biggest
    assert _kept(model, 0.5, "taylor", data) == [2, 3]  # no gradient flows through channels 0 and 1
    assert _kept(model, 0.25, "mean_activation", data) == [1, 2, 3]  # channel 0 never fires
    assert _kept(model, 0.25, "apoz", data) == [1, 2, 3]
    assert _kept(model, 0.25, "apoz", data[0]) == [1, 2, 3]  # activations need no labels


def test_data_criteria_match_an_independent_computation():
    model, (x, y) = _hidden_model(), _data()
    seen = {}

    def spy(group):
        seen.update(taylor=group.taylor, mean=group.mean_activation, nonzero=group.nonzero_fraction)
        return group.taylor

    plan_channels(model, {"hidden": 0.5}, criterion=spy, data=(x, y))
    hidden = model.get_layer("hidden")
    kernel, bias = hidden.kernel, hidden.bias
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    terms = []
    for start in range(0, len(x), 64):  # Molchanov et al.: squared per batch, then averaged
        with tf.GradientTape() as tape:
            value = loss(y[start : start + 64], model(x[start : start + 64]))
        g_kernel, g_bias = tape.gradient(value, [kernel, bias])
        terms.append(np.square((g_kernel * kernel).numpy().sum(axis=0) + (g_bias * bias).numpy()))
    np.testing.assert_allclose(seen["taylor"], np.mean(terms, axis=0), rtol=1e-4, atol=1e-12)
    activations = np.maximum(x @ kernel.numpy() + bias.numpy(), 0)
    np.testing.assert_allclose(seen["mean"], np.abs(activations).mean(axis=0), rtol=1e-5)
    np.testing.assert_allclose(seen["nonzero"], (activations != 0).mean(axis=0))


def test_data_criteria_read_the_activation_the_next_layer_reads(seeded):
    inputs = keras.Input((6, 6, 1))
    conv = keras.layers.Conv2D(4, 3, padding="same", name="conv")(inputs)
    normed = keras.layers.BatchNormalization(name="bn")(conv)
    relu = keras.layers.ReLU(name="relu")(normed)
    model = keras.Model(inputs, keras.layers.Dense(2, name="out")(keras.layers.Flatten()(relu)))
    x = np.random.default_rng(0).normal(size=(20, 6, 6, 1)).astype(np.float32)
    seen = {}
    plan_channels(model, 0.5, criterion=lambda group: seen.setdefault("nonzero", group.nonzero_fraction), data=x)
    after_relu = keras.Model(inputs, relu).predict(x, verbose=0)
    np.testing.assert_allclose(seen["nonzero"], (after_relu != 0).reshape(-1, 4).mean(axis=0))


def test_data_criteria_need_data_and_unused_data_is_reported():
    model, (x, y) = _hidden_model(), _data()
    with pytest.raises(ValueError, match=r"criterion='taylor' measures channels on data; pass data=\(x, y\)"):
        tfc.prune.channels(model, 0.5, criterion="taylor")
    with pytest.raises(ValueError, match="'taylor' criterion needs labels"):
        tfc.prune.channels(model, 0.5, criterion="taylor", data=x)
    with pytest.raises(ValueError, match="pass data="):
        tfc.prune.channels(model, 0.5, criterion=lambda group: group.mean_activation)
    with pytest.warns(UserWarning, match="criterion 'l1' does not read `data`"):
        tfc.prune.channels(model, 0.5, criterion="l1", data=(x, y))
    with pytest.raises(ValueError, match="returned 2 scores for the 4 channels of 'hidden'"):
        tfc.prune.channels(model, 0.5, criterion=lambda group: np.ones(2))


def _convnet():
    inputs = keras.Input((8, 8, 3))
    x = keras.layers.Conv2D(8, 3, padding="same", activation="relu", name="first")(inputs)
    x = keras.layers.DepthwiseConv2D(3, padding="same", name="depthwise")(x)
    x = keras.layers.SeparableConv2D(16, 3, padding="same", activation="relu", name="separable")(x)
    x = keras.layers.Conv2D(16, 3, strides=2, padding="same", activation="relu", name="conv")(x)
    x = keras.layers.Dense(12, activation="relu", name="pointwise_dense")(x)  # a Dense on every position
    x = keras.layers.GlobalAveragePooling2D()(x)
    x = keras.layers.Dense(24, activation="relu", name="hidden")(x)
    return keras.Model(inputs, keras.layers.Dense(5, name="out")(x))


@pytest.mark.slow
def test_cost_counts_what_the_converter_runs(seeded, tmp_path):
    model = _convnet()
    counted = tfc.prune.cost(model)
    assert counted["parameters"] == model.count_params()
    # A fixed batch: with a dynamic one, the file leaves the Dense-on-positions output shape to run time.
    tfc.export.to_tflite(model, tmp_path / "m.tflite", mode="float32", batch_size=1)
    assert counted["macs"] == tfc.litert.inspect(tmp_path / "m.tflite")["macs"]
    plan = plan_channels(model, 0.5)
    smaller = tfc.prune.rebuild(model, plan)
    tfc.export.to_tflite(smaller, tmp_path / "s.tflite", mode="float32", batch_size=1)
    assert tfc.prune.plan_cost(model, plan)["macs"] == tfc.litert.inspect(tmp_path / "s.tflite")["macs"]
    assert tfc.prune.plan_cost(model, plan)["parameters"] == smaller.count_params()


@pytest.mark.parametrize("allocation", ["uniform", "global"])
@pytest.mark.parametrize("budget", [{"macs": 0.5}, {"parameters": 0.3}, {"parameters": 2000}])
def test_a_budget_is_met_with_the_least_pruning(budget, allocation, seeded):
    model = _convnet()
    (key, value), = budget.items()
    limit = value * tfc.prune.cost(model)[key] if value < 1 else value
    plan = plan_channels(model, budget=budget, allocation=allocation)
    assert tfc.prune.plan_cost(model, plan)[key] <= limit
    assert tfc.prune.cost(tfc.prune.rebuild(model, plan))[key] <= limit
    slightly_less = plan_channels(model, plan.ratio - 1e-6, allocation=allocation)
    assert tfc.prune.plan_cost(model, slightly_less)[key] > limit  # any less pruning would not fit


def test_budget_bad_inputs(seeded):
    model = _convnet()
    with pytest.raises(ValueError, match="either `ratio` or `budget`, not both"):
        tfc.prune.channels(model, 0.5, budget={"macs": 0.5})
    with pytest.raises(ValueError, match=r"`budget` must be one of \{'parameters': n\} or \{'macs': n\}"):
        tfc.prune.channels(model, budget={"flops": 0.5})
    with pytest.raises(ValueError, match=r"share in \(0, 1\) of the model's own count or a whole count"):
        tfc.prune.channels(model, budget={"macs": 1.5})
    with pytest.raises(ValueError, match="even removing all but one channel of every prunable group leaves"):
        tfc.prune.channels(model, budget={"parameters": 10})


def test_protect_first_and_last(seeded):
    widths = plan_channels(_convnet(), 0.5, protect=["first", "last"]).widths()
    assert widths["first"] == (8, 8) and widths["hidden"] == (24, 24) and widths["conv"] == (16, 8)
    with pytest.raises(ValueError, match="must be a list of layer names"):
        plan_channels(_convnet(), 0.5, protect="first")
