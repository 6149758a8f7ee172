"""Channel pruning: coupled groups found, whole channels removed, surviving weights copied exactly."""

import numpy as np
import pytest

import tfcompress as tfc
from tests.conftest import weights_of, with_removed_channels_zeroed
from tfcompress import keras
from tfcompress.prune.channel_pruning import plan_channels


def _zero_channels(model, layer_name, channels):
    """Makes `channels` of a producer output exactly zero (and of the BatchNormalization after it)."""
    layer = model.get_layer(layer_name)
    kernel, bias = layer.get_weights()
    kernel[..., channels] = 0
    bias[channels] = 0
    layer.set_weights([kernel, bias])


def _zero_batchnorm(model, layer_name, channels):
    layer = model.get_layer(layer_name)
    gamma, beta, mean, variance = layer.get_weights()
    gamma[channels], beta[channels], mean[channels] = 0, 0, 0
    layer.set_weights([gamma, beta, mean, variance])


def _sequential(keras=keras):
    return keras.Sequential(
        [
            keras.Input((8, 8, 1)),
            keras.layers.Conv2D(8, 3, padding="same", activation="relu", name="conv_a"),
            keras.layers.BatchNormalization(name="bn_a"),
            keras.layers.MaxPooling2D(),
            keras.layers.Conv2D(16, 3, padding="same", name="conv_b"),
            keras.layers.ReLU(),
            keras.layers.Flatten(),
            keras.layers.Dense(32, activation="relu", name="dense_a"),
            keras.layers.Dense(10, name="logits"),
        ]
    )


def _residual(keras=keras):
    """A small ResNet-style block with a depthwise branch, an Add and a Concatenate, in the Keras module `keras`."""
    inputs = keras.Input((8, 8, 3))
    stem = keras.layers.Conv2D(8, 1, name="stem")(inputs)
    branch = keras.layers.ReLU()(keras.layers.BatchNormalization(name="bn")(stem))
    branch = keras.layers.DepthwiseConv2D(3, padding="same", name="depthwise")(branch)
    branch = keras.layers.Conv2D(8, 1, name="project")(branch)
    merged = keras.layers.Add()([branch, stem])
    side = keras.layers.Conv2D(4, 3, padding="same", name="side")(inputs)
    joined = keras.layers.Concatenate(name="concatenate")([merged, side])
    pooled = keras.layers.GlobalAveragePooling2D()(joined)
    return keras.Model(inputs, keras.layers.Dense(5, name="head")(pooled))


def _width(model, name):
    return model.get_layer(name).output.shape[-1]


def test_zeroed_channels_are_removed_and_outputs_stay_the_same(engine, seeded):
    model = _sequential(engine.keras)
    _zero_channels(model, "conv_a", [0, 2, 4, 6])
    _zero_batchnorm(model, "bn_a", [0, 2, 4, 6])
    _zero_channels(model, "conv_b", list(range(8)))
    _zero_channels(model, "dense_a", list(range(16)))
    x = np.random.default_rng(0).random((16, 8, 8, 1)).astype(np.float32)
    smaller = tfc.prune.channels(model, ratio=0.5)
    assert isinstance(smaller, engine.keras.Model)  # in the model's own Keras
    by_plan = tfc.prune.rebuild(model, plan_channels(model, 0.5))
    assert isinstance(by_plan, engine.keras.Model) and by_plan.count_params() == smaller.count_params()
    shapes = {name: _width(smaller, name) for name in ("conv_a", "conv_b", "dense_a", "logits")}
    assert shapes == {"conv_a": 4, "conv_b": 8, "dense_a": 16, "logits": 10}
    np.testing.assert_allclose(smaller.predict(x, verbose=0), model.predict(x, verbose=0), atol=1e-5)
    assert smaller.count_params() < 0.35 * model.count_params()


def test_add_couples_both_sides_and_concatenate_keeps_its_slices(engine, seeded):
    model = _residual(engine.keras)
    plan = plan_channels(model, ratio=0.5)
    coupled = [group for group in plan.groups if group["layers"] == ["project", "stem"]]
    assert len(coupled) == 1 and coupled[0]["prunable"] and len(coupled[0]["kept"]) == 4
    for name in ("stem", "project"):
        _zero_channels(model, name, [1, 3, 5, 7])
    _zero_batchnorm(model, "bn", [1, 3, 5, 7])
    _zero_channels(model, "side", [0, 1])
    x = np.random.default_rng(1).random((8, 8, 8, 3)).astype(np.float32)
    smaller = tfc.prune.channels(model, ratio=0.5)
    assert isinstance(smaller, engine.keras.Model)
    assert _width(smaller, "depthwise") == 4 and _width(smaller, "side") == 2
    assert _width(smaller, "concatenate") == 6 and _width(smaller, "head") == 5
    np.testing.assert_allclose(smaller.predict(x, verbose=0), model.predict(x, verbose=0), atol=1e-5)


@pytest.mark.slow
def test_mobilenet_v2_is_pruned_and_still_runs(seeded):
    model = keras.applications.MobileNetV2(weights=None, alpha=0.35, input_shape=(96, 96, 3), classes=10)
    before = weights_of(model)
    smaller = tfc.prune.channels(model, ratio=0.5)
    assert smaller.count_params() < 0.4 * model.count_params()
    x = np.random.default_rng(0).random((2, 96, 96, 3)).astype(np.float32)
    assert smaller.predict(x, verbose=0).shape == (2, 10)
    # Each inverted residual's expansion is its own group; projections tied by Adds share one.
    assert (
        smaller.get_layer("block_1_expand").output_shape[-1] == model.get_layer("block_1_expand").output_shape[-1] // 2
    )
    assert smaller.get_layer("block_2_add").output_shape[-1] == smaller.get_layer("block_1_project").output_shape[-1]
    for original, now in zip(before, weights_of(model)):
        np.testing.assert_array_equal(original, now)


def test_criteria_choose_different_channels():
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2, name="hidden"), keras.layers.Dense(1)])
    # Channel 0: many small weights (L1 3.0, L2 1.5); channel 1: one large weight (L1 2.0, L2 2.0).
    kernel = np.array([[0.75, 2.0], [0.75, 0.0], [0.75, 0.0], [0.75, 0.0]], np.float32)
    model.get_layer("hidden").set_weights([kernel, np.zeros(2, np.float32)])
    kept = {name: plan_channels(model, 0.5, criterion=name).groups[1]["kept"] for name in ("l1", "l2")}
    assert kept == {"l1": [0], "l2": [1]}
    custom = plan_channels(model, 0.5, criterion=lambda group: -np.abs(group.kernels[0]).sum(axis=0)).groups[1]["kept"]
    assert custom == [1]


def test_per_layer_ratios_and_protected_layers(seeded):
    model = _sequential()
    only_b = tfc.prune.channels(model, ratio={"conv_b": 0.75})
    assert [only_b.get_layer(name).output_shape[-1] for name in ("conv_a", "conv_b", "dense_a")] == [8, 4, 32]
    protected = tfc.prune.channels(model, ratio=0.5, protect=["conv_a"])
    assert [protected.get_layer(name).output_shape[-1] for name in ("conv_a", "conv_b", "dense_a")] == [8, 8, 16]


def test_an_unsupported_layer_is_named_or_skipped_on_request(seeded):
    model = keras.Sequential(
        [
            keras.Input((8, 8, 1)),
            keras.layers.Conv2D(8, 3, name="conv"),
            keras.layers.Permute((2, 1, 3), name="swap"),
            keras.layers.Conv2D(8, 3, name="after"),
            keras.layers.GlobalAveragePooling2D(),
            keras.layers.Dense(3),
        ]
    )
    with pytest.raises(ValueError, match=r"Layer 'swap' \(Permute\) is not a layer kind it knows"):
        tfc.prune.channels(model, ratio=0.5)
    skipped = tfc.prune.channels(model, ratio=0.5, unsupported="skip")
    assert skipped.get_layer("conv").output_shape[-1] == 8 and skipped.get_layer("after").output_shape[-1] == 4


def test_layer_normalization_keeps_the_channels_it_normalizes_over(seeded):
    # Its mean and variance run over the channels: a zeroed channel would still change them.
    model = keras.Sequential(
        [keras.Input((8, 8, 1)), keras.layers.Conv2D(8, 3, name="conv"), keras.layers.LayerNormalization(),
         keras.layers.Conv2D(8, 3, name="after"), keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(3)]
    )  # fmt: skip
    smaller = tfc.prune.channels(model, ratio=0.5)
    assert smaller.get_layer("conv").output_shape[-1] == 8 and smaller.get_layer("after").output_shape[-1] == 4


@pytest.mark.parametrize(
    "arguments, error, message",
    [
        ({"ratio": 1.0}, ValueError, r"`ratio` must be a number in \[0, 1\)"),
        ({"ratio": -0.1}, ValueError, r"`ratio` must be a number in \[0, 1\)"),
        ({"ratio": {"nope": 0.5}}, ValueError, r"`ratio` names \['nope'\], which are not layers"),
        ({"protect": ["nope"]}, ValueError, r"`protect` names 'nope', which is not a layer"),
        ({"criterion": "taylor2"}, ValueError, "`criterion` must be one of"),
        ({"unsupported": "ignore"}, ValueError, "`unsupported` must be 'error' or 'skip'"),
    ],
)
def test_bad_arguments(arguments, error, message, seeded):
    with pytest.raises(error, match=message):
        tfc.prune.channels(_sequential(), **arguments)


def test_a_transposed_convolution_is_cut_on_its_own_axes(seeded):
    # Conv2DTranspose subclasses Conv2D but keeps its kernel as (h, w, out, in): slicing it as a Conv2D would be wrong.
    model = keras.Sequential(
        [keras.Input((4, 4, 3)), keras.layers.Conv2D(6, 1), keras.layers.Conv2DTranspose(6, 3, name="up"),
         keras.layers.Flatten(), keras.layers.Dense(2)]
    )  # fmt: skip
    plan = plan_channels(model, 0.5)
    smaller = tfc.prune.rebuild(model, plan)
    assert smaller.get_layer("up").output_shape[-1] == 3 and smaller.get_layer("up").get_weights()[0].shape == (
        3,
        3,
        3,
        3,
    )
    x = np.random.default_rng(0).random((2, 4, 4, 3)).astype(np.float32)
    zeroed = with_removed_channels_zeroed(model, plan)
    np.testing.assert_allclose(smaller.predict(x, verbose=0), zeroed.predict(x, verbose=0), atol=1e-5)


def test_models_it_cannot_prune_get_clear_errors():
    class Subclassed(keras.Model):
        def call(self, inputs):
            return inputs

    with pytest.raises(ValueError, match="subclassed model"):
        tfc.prune.channels(Subclassed())
    with pytest.raises(TypeError, match="must be a Keras model"):
        tfc.prune.channels("model.keras")
    shared = keras.layers.Conv2D(3, 1, name="shared")
    inputs = keras.Input((4, 4, 3))
    twice = keras.Model(inputs, shared(shared(inputs)))
    with pytest.raises(ValueError, match=r"Layer 'shared' is shared \(called 2 times\)"):
        tfc.prune.channels(twice)


def test_sensitivity_prunes_each_group_alone_and_plots_it(engine, digits, tmp_path):
    _, (x_test, y_test) = digits
    trained_cnn = engine.trained_cnn
    before = weights_of(trained_cnn)
    result = tfc.prune.sensitivity(trained_cnn, (x_test, y_test), ratios=(0.25, 0.75), plot_path=tmp_path / "s.png")
    assert result["baseline"] == pytest.approx(trained_cnn.evaluate(x_test, y_test, verbose=0)[1])
    conv, dense = trained_cnn.layers[0].name, trained_cnn.layers[3].name  # Conv2D(16), Dense(64)
    assert [(row["layer"], row["ratio"], row["channels"]) for row in result["rows"]] == [
        (conv, 0.25, "12/16"),
        (conv, 0.75, "4/16"),
        (dense, 0.25, "48/64"),
        (dense, 0.75, "16/64"),
    ]
    smaller = tfc.prune.channels(trained_cnn, {conv: 0.75})
    expected = float(np.mean(np.argmax(smaller.predict(x_test, verbose=0), axis=-1) == y_test))
    assert result["rows"][1]["accuracy"] == pytest.approx(expected)
    assert result["rows"][1]["drop"] == pytest.approx(100 * (result["baseline"] - expected))
    assert "drop (points)" in result["table"] and (tmp_path / "s.png").read_bytes()[:4] == b"\x89PNG"
    for original, now in zip(before, weights_of(trained_cnn)):
        np.testing.assert_array_equal(original, now)


def test_sensitivity_bad_inputs(trained_cnn, digits, tmp_path):
    _, (x_test, y_test) = digits
    with pytest.raises(ValueError, match=r"`ratios` must be a number in \[0, 1\)"):
        tfc.prune.sensitivity(trained_cnn, (x_test, y_test), ratios=(0.5, 1.0))
    with pytest.raises(ValueError, match="`data` needs labels"):
        tfc.prune.sensitivity(trained_cnn, x_test)
    (tmp_path / "s.png").write_bytes(b"mine")
    with pytest.raises(FileExistsError, match="already exists"):
        tfc.prune.sensitivity(trained_cnn, (x_test, y_test), plot_path=tmp_path / "s.png")
    assert (tmp_path / "s.png").read_bytes() == b"mine"


def test_global_allocation_cuts_where_channels_matter_least(seeded):
    model = _sequential()  # prunable: conv_a 8, conv_b 16, dense_a 32 channels
    kernel, bias = model.get_layer("conv_b").get_weights()
    kernel[..., :8] *= 1e-3  # half of conv_b's channels carry almost nothing
    model.get_layer("conv_b").set_weights([kernel, bias])
    plan = plan_channels(model, 0.25, allocation="global")
    kept = {group["layers"][0]: group["kept"] for group in plan.groups if group["prunable"]}
    removed = {
        name: plan_channels(model, 0.0).groups[plan.group_of[name]]["channels"] - len(kept[name]) for name in kept
    }
    assert sum(removed.values()) == int(0.25 * (8 + 16 + 32))
    assert not set(range(8)) & set(kept["conv_b"])  # every near-zero channel went
    assert removed["conv_b"] >= 8 and all(len(channels) >= 1 for channels in kept.values())
    uniform = plan_channels(model, 0.25)
    assert [len(group["kept"]) for group in uniform.groups if group["prunable"]] == [6, 12, 24]
    smaller = tfc.prune.channels(model, 0.25, allocation="global")
    assert smaller.get_layer("conv_b").output_shape[-1] == len(kept["conv_b"])


def test_global_allocation_bad_arguments(seeded):
    with pytest.raises(ValueError, match="`allocation` must be 'uniform' or 'global'"):
        tfc.prune.channels(_sequential(), 0.5, allocation="layerwise")
    with pytest.raises(ValueError, match="pass a number, not a dict"):
        tfc.prune.channels(_sequential(), {"conv_a": 0.5}, allocation="global")


def test_bn_gamma_prunes_the_channels_batchnorm_scales_down(seeded):
    model = _sequential()  # conv_a -> bn_a; conv_b and dense_a have no BatchNormalization
    gamma, beta, mean, variance = model.get_layer("bn_a").get_weights()
    gamma[[1, 3, 5, 7]] = 1e-4  # network slimming drives these towards zero
    model.get_layer("bn_a").set_weights([gamma, beta, mean, variance])
    kernel, bias = model.get_layer("conv_a").get_weights()
    kernel[..., [1, 3, 5, 7]] *= 100  # large kernels: L1 alone would keep exactly these
    model.get_layer("conv_a").set_weights([kernel, bias])
    plan = plan_channels(model, 0.5, criterion="bn_gamma")
    by_layer = {group["layers"][0]: group for group in plan.groups if group["prunable"]}
    assert by_layer["conv_a"]["kept"] == [0, 2, 4, 6] and by_layer["conv_a"]["criterion"] == "bn_gamma"
    assert by_layer["conv_b"]["criterion"] == "l1" and by_layer["dense_a"]["criterion"] == "l1"
    assert plan_channels(model, 0.5, criterion="l1").groups[plan.group_of["conv_a"]]["kept"] == [1, 3, 5, 7]


def test_separable_multiply_and_pooling_layers_keep_their_outputs_on_zeroed_channels(seeded):
    inputs = keras.Input((8, 8, 3))
    a = keras.layers.SeparableConv2D(8, 3, padding="same", activation="relu", name="separable")(inputs)
    b = keras.layers.Conv2D(8, 1, activation="sigmoid", name="gate")(inputs)
    gated = keras.layers.Multiply(name="multiply")([a, b])  # a gate: both sides one group
    pooled = keras.layers.AveragePooling2D()(keras.layers.ZeroPadding2D()(gated))
    x = keras.layers.Conv2D(6, 3, padding="same", activation="relu", name="conv")(pooled)
    x = keras.layers.GlobalMaxPooling2D()(keras.layers.Dropout(0.2)(x))
    model = keras.Model(inputs, keras.layers.Dense(4, name="head")(x))
    plan = plan_channels(model, 0.5)
    assert [group["layers"] for group in plan.groups if group["prunable"]] == [["gate", "separable"], ["conv"]]
    depthwise, pointwise, bias = model.get_layer("separable").get_weights()
    pointwise[..., ::2], bias[::2] = 0, 0  # relu(0) * gate = 0 on the even channels
    model.get_layer("separable").set_weights([depthwise, pointwise, bias])
    _zero_channels(model, "gate", [0, 2, 4, 6])  # so the even channels score lowest on both sides
    _zero_channels(model, "conv", [0, 1, 2])
    smaller = tfc.prune.channels(model, 0.5)
    assert smaller.get_layer("separable").output_shape[-1] == 4 and smaller.get_layer("conv").output_shape[-1] == 3
    x = np.random.default_rng(0).random((8, 8, 8, 3)).astype(np.float32)
    np.testing.assert_allclose(smaller.predict(x, verbose=0), model.predict(x, verbose=0), atol=1e-5)
