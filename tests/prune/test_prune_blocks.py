"""Layer removal (residual branches dropped) and channel pruning on a small ResNet."""

import numpy as np
import pytest

import tfcompress as tfc
from tests.conftest import accuracy, compile_classifier, weights_of


def small_resnet(width=8, blocks=2, k=None):
    return tfc.models.residual_net(width, blocks, "small_resnet", keras=k)


def _silence_branch(model, block):
    """Makes a block's branch output exactly zero: its last BatchNormalization scales and shifts to 0."""
    layer = model.get_layer(f"block{block}_bn2")
    gamma, beta, mean, variance = layer.get_weights()
    layer.set_weights([np.zeros_like(gamma), np.zeros_like(beta), mean, variance])


def test_residual_blocks_are_found_and_a_silent_branch_drops_exactly(engine, seeded):
    model = small_resnet(k=engine.keras)
    blocks = tfc.prune.residual_blocks(model)
    named = [(b["add"], [name for name in b["branch"] if not name.startswith("re_lu")]) for b in blocks]
    assert named == [
        ("block1_add", ["block1_conv1", "block1_bn1", "block1_conv2", "block1_bn2"]),
        ("block2_add", ["block2_conv1", "block2_bn1", "block2_conv2", "block2_bn2"]),
    ]
    assert [len(b["branch"]) for b in blocks] == [5, 5]  # and the ReLU between the convolutions
    assert blocks[0]["skip"] == model.get_layer("block1_add").input[0]._keras_history[0].name
    _silence_branch(model, 2)
    before = weights_of(model)
    shallower = tfc.prune.drop_blocks(model, ["block2_add"])
    assert isinstance(shallower, engine.keras.Model)  # in the model's own Keras
    x = np.random.default_rng(0).random((16, 8, 8, 1)).astype(np.float32)
    np.testing.assert_allclose(shallower.predict(x, verbose=0), model.predict(x, verbose=0), atol=1e-5)
    assert shallower.count_params() == model.count_params() - blocks[1]["parameters"]
    assert not any(layer.name.startswith("block2_") for layer in shallower.layers)
    for original, now in zip(before, weights_of(model)):
        np.testing.assert_array_equal(original, now)
    assert shallower.get_layer("stem").kernel is not model.get_layer("stem").kernel


def test_a_branch_read_elsewhere_or_off_the_input_is_not_droppable(engine, seeded):
    keras = engine.keras
    inputs = keras.Input((4, 4, 2))
    branch = keras.layers.Conv2D(2, 1, name="branch")(inputs)
    added = keras.layers.Add(name="add")([inputs, branch])  # skip is the model input: fine
    leaked = keras.layers.Conv2D(2, 1, name="leaked")(added)
    other = keras.layers.Add(name="other_add")([added, leaked])
    model = keras.Model(inputs, keras.layers.Concatenate()([other, leaked]))  # `leaked` is read outside
    assert [block["add"] for block in tfc.prune.residual_blocks(model)] == ["add"]
    without = tfc.prune.drop_blocks(model, ["add"])  # the input itself passed on
    assert without.count_params() == model.count_params() - 6
    assert "branch" not in [layer.name for layer in without.layers]
    with pytest.raises(ValueError, match=r"`blocks` names \['other_add'\], which are not residual blocks"):
        tfc.prune.drop_blocks(model, ["other_add"])
    with pytest.raises(ValueError, match="must be a list of Add layer names"):
        tfc.prune.drop_blocks(model, "add")
    assert tfc.prune.residual_blocks(keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])) == []


@pytest.mark.slow
def test_block_accuracy_on_data_and_mobilenet_blocks(digits, seeded):
    (x_train, y_train), (x_test, y_test) = digits
    model = compile_classifier(small_resnet())
    model.fit(x_train, y_train, epochs=2, batch_size=64, verbose=0)
    _silence_branch(model, 1)
    blocks = tfc.prune.residual_blocks(model, data=(x_test, y_test))
    assert blocks[0]["drop"] == pytest.approx(0.0, abs=1e-9)  # a silent branch costs nothing
    expected = accuracy(tfc.prune.drop_blocks(model, ["block2_add"]), x_test, y_test)
    assert blocks[1]["accuracy"] == pytest.approx(expected)
    import keras as keras3  # a Keras 3 user's MobileNetV2: its blocks found on the twin, dropped in Keras 3

    mobilenet = keras3.applications.MobileNetV2(weights=None, alpha=0.35, input_shape=(96, 96, 3), classes=10)
    adds = [block["add"] for block in tfc.prune.residual_blocks(mobilenet)]
    assert adds == [f"block_{i}_add" for i in (2, 4, 5, 7, 8, 9, 11, 12, 14, 15)]
    shallower = tfc.prune.drop_blocks(mobilenet, ["block_5_add", "block_9_add"])
    assert isinstance(shallower, keras3.Model) and len(shallower.layers) == len(mobilenet.layers) - 18
    assert shallower.predict(np.zeros((1, 96, 96, 3), np.float32), verbose=0).shape == (1, 10)


def test_channel_pruning_on_a_small_resnet(seeded):
    model = small_resnet(width=8, blocks=2)
    plan = tfc.prune.plan_channels(model, 0.5)
    coupled = [group["layers"] for group in plan.groups if len(group["layers"]) > 1]
    assert coupled == [["block1_conv2", "block2_conv2", "stem"]]  # the residual stream is one group
    for name in ("stem", "block1_conv2", "block2_conv2", "block1_conv1", "block2_conv1"):
        layer = model.get_layer(name)
        kernel, bias = layer.get_weights()
        kernel[..., ::2], bias[::2] = 0, 0
        layer.set_weights([kernel, bias])
    for name in ("stem_bn", "block1_bn1", "block1_bn2", "block2_bn1", "block2_bn2"):
        layer = model.get_layer(name)
        gamma, beta, mean, variance = layer.get_weights()
        gamma[::2], beta[::2], mean[::2] = 0, 0, 0
        layer.set_weights([gamma, beta, mean, variance])
    smaller = tfc.prune.channels(model, 0.5)
    assert {layer.name: layer.output_shape[-1] for layer in smaller.layers if "conv" in layer.name} == {
        "block1_conv1": 4, "block1_conv2": 4, "block2_conv1": 4, "block2_conv2": 4,
    }  # fmt: skip
    x = np.random.default_rng(0).random((8, 8, 8, 1)).astype(np.float32)
    np.testing.assert_allclose(smaller.predict(x, verbose=0), model.predict(x, verbose=0), atol=1e-5)
