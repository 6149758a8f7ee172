"""Weight clustering over TF-MOT: shared values per kernel, through fine-tuning, QAT and int8 export."""

import numpy as np
import pytest
from ai_edge_litert.interpreter import Interpreter

import tfcompress as tfc
from tests.conftest import compile_classifier, weights_of
from tfcompress import keras


def _fine_tune(model, digits, epochs=1):
    (x_train, y_train), (x_test, y_test) = digits
    compile_classifier(model, learning_rate=1e-4)
    model.fit(x_train, y_train, epochs=epochs, batch_size=32, verbose=0)
    return model.evaluate(x_test, y_test, verbose=0)[1]


def test_clustered_kernels_hold_the_asked_number_of_values_and_stay_accurate(trained_cnn, digits, seeded):
    before = weights_of(trained_cnn)
    clustered = tfc.quantize.cluster(trained_cnn, clusters=8)
    assert tfc.quantize.is_clustered(clustered)
    accuracy = _fine_tune(clustered, digits)
    shared = tfc.quantize.strip_clustering(clustered)
    assert not tfc.quantize.is_clustered(shared)
    report = tfc.quantize.unique_weights(shared)
    assert [row["layer"] for row in report["layers"]] == ["conv2d", "dense", "dense_1"]
    assert report["max_unique"] <= 8 and all(row["unique"] <= 8 for row in report["layers"])
    assert tfc.quantize.unique_weights(trained_cnn)["max_unique"] > 100
    assert accuracy > 0.9
    for original, now in zip(before, weights_of(trained_cnn)):
        np.testing.assert_array_equal(original, now)


def test_per_channel_clusters_each_conv_channel_separately(trained_cnn, seeded):
    shared = tfc.quantize.strip_clustering(tfc.quantize.cluster(trained_cnn, clusters=4, per_channel=True))
    conv, dense, _ = tfc.quantize.unique_weights(shared)["layers"]
    assert conv["unique_per_channel"] <= 4 < conv["unique"]
    assert dense["unique"] <= 4


def test_only_the_named_layers_are_clustered(trained_cnn, seeded):
    shared = tfc.quantize.strip_clustering(tfc.quantize.cluster(trained_cnn, clusters=4, layers=["dense"]))
    unique = {row["layer"]: row["unique"] for row in tfc.quantize.unique_weights(shared)["layers"]}
    assert unique["dense"] <= 4 and unique["conv2d"] > 4 and unique["dense_1"] > 4


@pytest.mark.slow
def test_pruned_zeros_stay_zero_through_clustering(trained_cnn, digits, seeded):
    sparse = keras.models.clone_model(trained_cnn)
    sparse.set_weights([np.where(np.arange(w.size).reshape(w.shape) % 2, 0, w) for w in weights_of(trained_cnn)])
    zeros = [weight == 0 for weight in weights_of(sparse)]
    clustered = tfc.quantize.cluster(sparse, clusters=8)  # preserve_sparsity turns on: the kernels hold zeros
    _fine_tune(clustered, digits)
    shared = tfc.quantize.strip_clustering(clustered)
    for layer in [layer.name for layer in sparse.layers if layer.weights]:  # names depend on what was built first
        kernel = shared.get_layer(layer).get_weights()[0]
        index = [w.name for w in sparse.weights].index(sparse.get_layer(layer).weights[0].name)
        assert np.all(kernel[zeros[index]] == 0)


@pytest.mark.slow
def test_cluster_preserving_qat_exports_int8_kernels_with_the_shared_values(trained_cnn, digits, tmp_path, seeded):
    (x_train, _), (x_test, y_test) = digits
    clustered = tfc.quantize.cluster(trained_cnn, clusters=8)
    _fine_tune(clustered, digits)
    qat = tfc.quantize.qat(tfc.quantize.strip_clustering(clustered), preserve_clusters=True)
    accuracy = _fine_tune(qat, digits)
    result = tfc.export.to_tflite(qat, tmp_path / "m.tflite", representative_data=x_train[:200])
    interpreter = Interpreter(model_path=result.path)
    kernels = [
        interpreter.get_tensor(detail["index"])
        for detail in interpreter.get_tensor_details()
        if detail["dtype"] == np.int8 and len(detail["shape"]) >= 2 and detail["shape"][0] in (16, 64, 10)
    ]
    assert kernels and all(len(np.unique(row)) <= 8 for kernel in kernels for row in kernel.reshape(len(kernel), -1))
    assert accuracy > 0.9
    assert tfc.litert.verify(result.path, qat, x_test, y_test)["top1_agreement"] > 0.97


@pytest.mark.parametrize(
    "arguments, message",
    [
        ({"clusters": 1}, "`clusters` must be at least 2"),
        ({"clusters": 2.5}, "clusters"),
        ({"init": "random"}, r"`init` must be one of \('kmeans\+\+', 'linear', 'density'\)"),
        ({"layers": ["conv2d", "nope"]}, r"names \['nope'\], which are not Conv2D or Dense"),
        ({"layers": ["max_pooling2d"]}, "which are not Conv2D"),
        ({"clusters": 1000, "layers": ["dense_1"]}, r"have no more than 1000 weights"),
        ({"clusters": 100000}, "No Conv2D or Dense layer .* has more than 100000 weights"),
    ],
)
def test_bad_cluster_arguments(trained_cnn, arguments, message):
    with pytest.raises(ValueError, match=message):
        tfc.quantize.cluster(trained_cnn, **arguments)


def test_wrappers_and_keras3_models_get_clear_errors(trained_cnn, seeded):
    clustered = tfc.quantize.cluster(trained_cnn, clusters=4)
    with pytest.raises(ValueError, match="strip_clustering"):
        tfc.quantize.qat(clustered)
    with pytest.raises(ValueError, match="still has clustering wrappers"):
        tfc.quantize.unique_weights(clustered)
    with pytest.raises(ValueError, match="no clustering wrappers to strip"):
        tfc.quantize.strip_clustering(trained_cnn)
    with pytest.raises(TypeError, match="must be a Keras model"):
        tfc.quantize.cluster("model.keras")


def test_depthwise_kernels_are_left_alone_as_tf_mot_does_not_cluster_them(seeded):
    model = keras.Sequential(
        [keras.Input((8, 8, 3)), keras.layers.DepthwiseConv2D(3), keras.layers.Conv2D(16, 1), keras.layers.Flatten()]
    )
    shared = tfc.quantize.strip_clustering(tfc.quantize.cluster(model, clusters=4))
    depthwise, pointwise = tfc.quantize.unique_weights(shared)["layers"]
    assert depthwise["unique"] == 27 and depthwise["unique_per_channel"] == 9
    assert pointwise["unique"] <= 4
    with pytest.raises(ValueError, match="not Conv2D or Dense layers"):
        tfc.quantize.cluster(model, clusters=4, layers=["depthwise_conv2d"])
