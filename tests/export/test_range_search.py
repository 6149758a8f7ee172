"""int8 files whose activation ranges are picked by percentile, MSE or KL instead of min-max."""

import numpy as np
import pytest

import tfcompress as tfc
from tests import zoo
from tests.export.test_accuracy_control import _with_outliers
from tfcompress._keras import keras, tf
from tfcompress.export import graph_edit, range_search


def _histogram(values, low, high, channels=1):
    histogram = range_search.Histogram(low, high, channels)
    histogram.add(values)
    return histogram


def test_each_method_clips_a_long_tail_that_min_max_keeps():
    rng = np.random.default_rng(0)
    values = np.concatenate([rng.exponential(1.0, 200_000), np.zeros(50_000), [60.0, 80.0, 100.0]])
    histogram = _histogram(values, 0.0, 100.0)
    assert histogram.zeros == 50_000  # a ReLU's zeros are counted apart: they cost no rounding error
    ranges = {method: range_search.choose(histogram, method) for method in ("percentile", "mse", "kl")}
    assert all(low == 0.0 for low, _ in ranges.values())  # all values >= 0: the range starts at 0
    assert 8 < ranges["percentile"][1] < 15  # the 99.99th percentile of an exponential is 9.2
    assert ranges["kl"][1] < 30 and ranges["mse"][1] < 100
    assert ranges["kl"][1] >= ranges["percentile"][1]  # KL's search clips no more than the percentile
    # MSE weighs each clipped value by its squared distance: three values 60-100 away keep it wider than KL.
    assert ranges["mse"][1] > ranges["kl"][1]


def test_mse_clips_a_large_channel_its_readers_barely_read():
    rng = np.random.default_rng(2)
    values = rng.exponential(1.0, (20_000, 8))
    values[:, 0] *= 100  # one channel 100x larger, like the outlier units
    histogram = _histogram(values, 0.0, float(values.max()), channels=8)
    evenly = range_search.choose(histogram, "mse")[1]
    weakly_read = range_search.choose(histogram, "mse", np.array([1e-4] + [1.0] * 7))[1]
    assert evenly > 0.5 * values.max()  # read as strongly as the rest, the large channel keeps its range
    assert weakly_read < 0.25 * values.max()  # read 100x weaker (1e-4 in squared weight), it is clipped


def test_signed_values_keep_both_sides():
    values = np.random.default_rng(1).standard_normal(300_000)
    histogram = _histogram(values, values.min(), values.max())
    for method in ("percentile", "mse", "kl"):
        low, high = range_search.choose(histogram, method)
        assert values.min() <= low < -2.5 and 2.5 < high <= values.max(), method


def _hidden_scale(path):
    """The int8 scale of the hidden Dense's output in a `.tflite` file."""
    model = graph_edit.load(open(path, "rb").read())
    graph = model.subgraphs[0]
    for op in graph.operators:
        tensor = graph.tensors[op.outputs[0]]
        if graph_edit.builtin(model, op) == 9 and b"/dense/" in tensor.name:  # FULLY_CONNECTED
            return float(tensor.quantization.scale[0])
    raise AssertionError("no hidden Dense in the file")


def test_the_file_carries_the_ranges_the_method_picked(trained_cnn, digits, tmp_path):
    (x_train, _), (x_test, y_test) = digits
    dense, logits = [layer.name for layer in trained_cnn.layers if isinstance(layer, keras.layers.Dense)]
    outliers = _with_outliers(trained_cnn, dense, logits)
    files = {method: tfc.export.to_tflite(outliers, tmp_path / f"{method}.tflite", representative_data=x_train[:300],
                                          calibration=method) for method in ("minmax", "mse")}  # fmt: skip
    # Four hidden units 100x larger set min-max's range; the logits read them 100x weaker, so MSE clips them and
    # keeps the steps for the other 60.
    assert _hidden_scale(files["mse"].path) < _hidden_scale(files["minmax"].path) / 2
    float_accuracy = np.mean(outliers.predict(x_test, verbose=0).argmax(-1) == y_test)
    accuracy = {method: np.mean(tfc.litert.LiteRTModel(result.path).predict(x_test).argmax(-1) == y_test)
                for method, result in files.items()}  # fmt: skip
    assert accuracy["minmax"] < float_accuracy - 0.01
    assert accuracy["mse"] >= float_accuracy - 0.01  # within a point of float, integer-only, no layer in float
    inspected = tfc.litert.inspect(files["mse"].path)
    assert inspected["float_ops"] == [] and inspected["undelegated_compute_ops"] == []


@pytest.mark.parametrize("method", ["percentile", "mse"])
def test_every_io_type_works_with_a_method(trained_cnn, digits, tmp_path, method):
    (x_train, _), (x_test, _) = digits
    keras_top = trained_cnn.predict(x_test, verbose=0).argmax(-1)
    for io_dtype in ("uint8", "int8", "float32"):
        result = tfc.export.to_tflite(trained_cnn, tmp_path / f"{io_dtype}.tflite", representative_data=x_train[:200],
                                      io_dtype=io_dtype, calibration=method)  # fmt: skip
        assert result.input_dtype == io_dtype and result.output_dtype == io_dtype
        assert np.mean(tfc.litert.LiteRTModel(result.path).predict(x_test).argmax(-1) == keras_top) >= 0.97



def test_a_model_with_two_inputs_gets_each_input_s_examples(tmp_path):
    model = zoo.build("multi_io")
    data = zoo.inputs_for("multi_io", model, 160)
    result = tfc.export.to_tflite(model, tmp_path / "m.tflite", representative_data=data, calibration="mse")
    verified = tfc.litert.verify(result.path, model, data)
    assert verified["outputs"]["scores"]["top1_agreement"] >= 0.9


def test_min_max_is_the_raw_converter_s_file(trained_cnn, digits, tmp_path):
    (x_train, _), (x_test, _) = digits
    converter = tf.lite.TFLiteConverter.from_keras_model(trained_cnn)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = lambda: ([x_train[i : i + 1]] for i in range(200))
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    raw = tfc.litert.LiteRTModel(converter.convert()).predict(x_test)
    ours = tfc.export.to_tflite(trained_cnn, tmp_path / "m.tflite", representative_data=x_train[:200],
                                io_dtype="float32")  # fmt: skip
    np.testing.assert_array_equal(tfc.litert.LiteRTModel(ours.path).predict(x_test), raw)
