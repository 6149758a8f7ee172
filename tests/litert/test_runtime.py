"""What an app meets at run time: latency, sparse files XNNPACK refuses, signatures and batch sizes."""

import numpy as np
import pytest
from ai_edge_litert.interpreter import Interpreter

import tfcompress as tfc
from tests.conftest import small_cnn
from tfcompress import keras


@pytest.fixture(scope="module")
def float_file(trained_cnn, tmp_path_factory):
    return tfc.export.to_tflite(trained_cnn, tmp_path_factory.mktemp("bench") / "f.tflite", mode="float32").path


def test_benchmark_times_every_setting_and_reports_sizes(float_file):
    report = tfc.litert.benchmark(float_file, threads=(1, 2), warmup=2, runs=20)
    assert report["bytes"] > report["gzip_bytes"] > 0 and report["batch"] == 1
    settings = [(row["threads"], row["xnnpack"]) for row in report["latency"]]
    assert settings == [(1, True), (2, True), (1, False), (2, False)]
    for row in report["latency"]:
        assert row["error"] is None and row["runs"] == 20
        assert 0 < row["min_ms"] <= row["p10_ms"] <= row["median_ms"] <= row["p90_ms"] and row["spread"] >= 0


def test_benchmark_stops_at_its_time_limit(float_file):
    report = tfc.litert.benchmark(float_file, threads=1, xnnpack=True, runs=10**9, warmup=0, max_seconds=0.2)
    (row,) = report["latency"]
    assert 5 <= row["runs"] < 10**9


@pytest.mark.parametrize(
    "arguments, message",
    [
        ({"threads": 0}, "`threads` has a value out of range"),
        ({"xnnpack": "yes"}, "`xnnpack` has a value out of range"),
        ({"runs": 2}, "`runs` must be an int >= 5"),
        ({"max_seconds": 0}, "`max_seconds` must be positive"),
    ],
)
def test_benchmark_bad_arguments(float_file, arguments, message):
    with pytest.raises(ValueError, match=message):
        tfc.litert.benchmark(float_file, **arguments)


def test_benchmark_bad_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="No .tflite file"):
        tfc.litert.benchmark(tmp_path / "missing.tflite")
    truncated = tmp_path / "truncated.tflite"
    truncated.write_bytes(b"TFL3")
    with pytest.raises(ValueError, match="could not be loaded"):
        tfc.litert.benchmark(truncated)


def _mostly_zero_copy(model, sparsity=0.9):
    copy = keras.models.clone_model(model)
    copy.set_weights(model.get_weights())
    for layer in copy.layers:
        weights = layer.get_weights()
        if weights:
            kernel = weights[0]
            kernel[np.abs(kernel) < np.quantile(np.abs(kernel), sparsity)] = 0
            layer.set_weights([kernel] + weights[1:])
    return copy


def test_sparse_int8_warns_that_xnnpack_refuses_it_and_still_verifies(trained_cnn, digits, tmp_path):
    (x_train, _), (x_test, y_test) = digits
    pruned = _mostly_zero_copy(trained_cnn)
    dense = tfc.export.to_tflite(pruned, tmp_path / "dense.tflite", representative_data=x_train[:300])
    with pytest.warns(UserWarning, match="cannot be loaded with LiteRT's default XNNPACK delegate"):
        sparse = tfc.export.to_tflite(pruned, tmp_path / "s.tflite", representative_data=x_train[:300], sparse=True)
    assert sparse.bytes < dense.bytes
    report = tfc.litert.inspect(sparse.path)
    assert report["xnnpack_loads"] is False and "DENSIFY" in report["op_counts"]
    assert "CONV_2D" in report["undelegated_compute_ops"] and report["int8_mac_share"] == 1.0
    assert tfc.litert.inspect(dense.path)["xnnpack_loads"] is True
    with pytest.raises(ValueError, match="only with the XNNPACK delegate switched off"):
        tfc.litert.LiteRTModel(sparse.path, xnnpack=True)
    assert tfc.litert.verify(sparse.path, pruned, x_test, y_test)["top1_agreement"] > 0.97
    timed = tfc.litert.benchmark(sparse.path, threads=1, warmup=1, runs=5)["latency"]
    assert "switched off" in timed[0]["error"] and timed[0]["median_ms"] is None
    assert timed[1]["xnnpack"] is False and timed[1]["median_ms"] > 0


def test_sparse_is_refused_where_the_converter_has_no_sparse_encoding(trained_cnn, tmp_path):
    with pytest.raises(ValueError, match=r"`sparse=True` works in modes .* not 'float16'"):
        tfc.export.to_tflite(trained_cnn, tmp_path / "m.tflite", mode="float16", sparse=True)
    assert not (tmp_path / "m.tflite").exists()


def test_signature_keeps_the_model_names_through_qat_and_int8(tmp_path, seeded):
    inputs = keras.Input((8, 8, 1), name="pixels")
    outputs = keras.layers.Dense(10, name="scores")(keras.layers.Flatten()(inputs))
    qat = tfc.quantize.qat(keras.Model(inputs, outputs))
    result = tfc.export.to_tflite(qat, tmp_path / "m.tflite")
    interpreter = Interpreter(model_path=result.path)
    assert interpreter.get_signature_list() == {"serving_default": {"inputs": ["pixels"], "outputs": ["scores"]}}
    runner = interpreter.get_signature_runner()
    assert runner(pixels=np.zeros((1, 8, 8, 1), np.uint8))["scores"].dtype == np.uint8


def test_batch_is_dynamic_by_default_and_fixed_on_request(trained_cnn, digits, tmp_path):
    _, (x_test, _) = digits
    dynamic = Interpreter(model_path=tfc.export.to_tflite(trained_cnn, tmp_path / "d.tflite", mode="float32").path)
    assert list(dynamic.get_input_details()[0]["shape_signature"]) == [-1, 8, 8, 1]
    dynamic.resize_tensor_input(0, [5, 8, 8, 1])
    dynamic.allocate_tensors()
    dynamic.set_tensor(dynamic.get_input_details()[0]["index"], x_test[:5])
    dynamic.invoke()
    logits = dynamic.get_tensor(dynamic.get_output_details()[0]["index"])
    np.testing.assert_allclose(logits, trained_cnn.predict(x_test[:5], verbose=0), atol=1e-4)

    fixed = tfc.export.to_tflite(trained_cnn, tmp_path / "f.tflite", mode="float32", batch_size=4)
    assert list(Interpreter(model_path=fixed.path).get_input_details()[0]["shape_signature"]) == [4, 8, 8, 1]


@pytest.mark.parametrize("batch_size", [0, 2.0, "1"])
def test_bad_batch_size(batch_size, tmp_path):
    with pytest.raises(ValueError, match="`batch_size` must be None"):
        tfc.export.to_tflite(small_cnn(), tmp_path / "m.tflite", mode="float32", batch_size=batch_size)
