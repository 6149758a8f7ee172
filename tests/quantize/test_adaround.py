"""AdaRound: learned rounding of Conv, DepthwiseConv and Dense kernels onto the converter's int8 grid."""

import numpy as np
import pytest
from conftest import weights_of

import tfcompress as tfc
from tfcompress._keras import keras
from tfcompress.export import graph_edit
from tfcompress.quantize import learned_rounding


def _grid(kernel, depthwise=False):
    """The kernel's int8 steps per output channel (last axis; a depthwise kernel's last two as one)."""
    channels = kernel.reshape(kernel.shape[:-2] + (-1,)) if depthwise else kernel
    scale = np.abs(channels.reshape(-1, channels.shape[-1])).max(axis=0) / 127
    return channels / np.where(scale > 0, scale, 1.0)


def _file_weights(path):
    """The int8 weight tensors of a `.tflite` file's ops, in op order (the model's layer order)."""
    model = graph_edit.load(open(path, "rb").read())
    graph, found = model.subgraphs[0], []
    for op in graph.operators:
        weights = graph.tensors[op.inputs[1]] if len(op.inputs) > 1 and op.inputs[1] >= 0 else None
        if weights is not None and weights.type == 9:  # INT8
            found.append(np.frombuffer(bytes(model.buffers[weights.buffer].data), np.int8).reshape(weights.shape))
    return found


def test_the_int8_file_stores_the_learned_rounding_exactly(trained_cnn, digits, tmp_path):
    (x_train, _), _ = digits
    before = weights_of(trained_cnn)
    rounded, layers = tfc.quantize.adaround(trained_cnn, x_train[:256], iterations=200)
    assert layers == ["conv2d", "dense", "dense_1"]
    assert all(np.array_equal(a, b) for a, b in zip(before, weights_of(trained_cnn)))  # the user's model unchanged
    result = tfc.export.to_tflite(rounded, tmp_path / "m.tflite", representative_data=x_train[:200])
    stored = _file_weights(result.path)
    changed = 0
    for name, in_file in zip(layers, stored, strict=True):
        steps = _grid(rounded.get_layer(name).get_weights()[0])
        np.testing.assert_allclose(steps, np.round(steps), atol=1e-3)  # on the grid
        expected = np.round(steps).astype(np.int8)
        # The file lays kernels out (out, ..., in): the output channel first.
        np.testing.assert_array_equal(np.moveaxis(in_file, 0, -1).reshape(expected.shape), expected)
        changed += np.sum(expected != np.round(_grid(trained_cnn.get_layer(name).get_weights()[0])))
    assert changed > 0  # some weights were rounded the other way than to nearest


def test_learned_rounding_errs_less_than_nearest_on_each_layer_s_output(trained_cnn, digits):
    (x_train, _), _ = digits
    rounded, layers = tfc.quantize.adaround(trained_cnn, x_train[:256], iterations=300)
    for name in layers:
        layer = trained_cnn.get_layer(name)
        kernel = layer.get_weights()[0]
        inputs = keras.Model(trained_cnn.inputs, layer.input).predict(x_train[256:512], verbose=0)
        scale = np.abs(kernel.reshape(-1, kernel.shape[-1])).max(axis=0) / 127
        nearest = np.round(kernel / scale) * scale

        def error(candidate, layer=layer, kernel=kernel, inputs=inputs):
            outputs = [learned_rounding._output(layer, inputs, k) for k in (candidate, kernel)]
            return float(np.mean(np.square(outputs[0] - outputs[1])))

        assert error(rounded.get_layer(name).get_weights()[0]) <= error(nearest) * 1.001, name


def test_depthwise_kernels_and_batchnorm_keep_the_learned_grid(seeded, digits, tmp_path):
    (x_train, _), _ = digits
    inputs = keras.Input((8, 8, 1))
    x = keras.layers.Conv2D(8, 3, padding="same", name="conv")(inputs)
    x = keras.layers.BatchNormalization(name="bn")(x)
    x = keras.layers.DepthwiseConv2D(3, depth_multiplier=2, activation="relu", name="depthwise")(x)
    outputs = keras.layers.Dense(10, name="logits")(keras.layers.GlobalAveragePooling2D()(x))
    model = keras.Model(inputs, outputs)
    model.get_layer("bn").set_weights([np.linspace(0.5, 3, 8), np.linspace(-1, 1, 8), np.zeros(8), np.ones(8) * 2])
    rounded, layers = tfc.quantize.adaround(model, x_train[:128], iterations=100)
    assert layers == ["conv", "depthwise", "logits"]
    result = tfc.export.to_tflite(rounded, tmp_path / "m.tflite", representative_data=x_train[:128])
    conv, depthwise, _ = _file_weights(result.path)
    # The converter folds the BatchNorm into the conv kernel, scaling whole output channels: the steps stay.
    expected = np.round(_grid(rounded.get_layer("conv").get_weights()[0])).astype(np.int8)
    np.testing.assert_array_equal(np.moveaxis(conv, 0, -1), expected)
    # A depthwise kernel is (1, h, w, channels) in the file.
    expected = np.round(_grid(rounded.get_layer("depthwise").get_weights()[0], depthwise=True)).astype(np.int8)
    np.testing.assert_array_equal(depthwise[0], expected)


def test_to_tflite_rounds_with_adaround_on_request(trained_cnn, digits, tmp_path):
    (x_train, _), (x_test, _) = digits
    result = tfc.export.to_tflite(trained_cnn, tmp_path / "m.tflite", representative_data=x_train[:200],
                                  rounding="adaround")  # fmt: skip
    keras_top = trained_cnn.predict(x_test, verbose=0).argmax(-1)
    assert np.mean(tfc.litert.LiteRTModel(result.path).predict(x_test).argmax(-1) == keras_top) >= 0.97
    with pytest.raises(ValueError, match="`rounding` must be one of"):
        tfc.export.to_tflite(trained_cnn, tmp_path / "n.tflite", representative_data=x_train[:200], rounding="up")
