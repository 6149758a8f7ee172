"""Per-layer int8 error (the converter's QuantizationDebugger) and layers kept in float."""

import numpy as np
import pytest
from ai_edge_litert.interpreter import Interpreter

import tfcompress as tfc


@pytest.fixture(scope="module")
def errors(trained_cnn, digits):
    (x_train, _), _ = digits
    return tfc.export.layer_errors(trained_cnn, x_train[:200])


def _fully_connected_input_dtypes(path):
    interpreter = Interpreter(model_path=path)
    tensors = interpreter.get_tensor_details()
    return [
        np.dtype(tensors[op["inputs"][0]]["dtype"]).name
        for op in interpreter._get_ops_details()
        if op["op_name"] == "FULLY_CONNECTED"
    ]


def test_layer_errors_cover_every_quantized_layer(errors):
    layers = [row["layer"] for row in errors["layers"]]
    assert layers[0] == "conv2d" and layers[-2:] == ["dense", "dense_1"]
    assert sorted(errors["worst"]) == sorted(set(layers))
    for row in errors["layers"]:
        assert row["rmse_per_scale"] >= 0 and row["scale"] > 0 and row["op"]
    by_name = {row["layer"]: row["rmse_per_scale"] for row in errors["layers"]}
    assert [by_name[name] for name in errors["worst"]] == sorted(by_name.values(), reverse=True)


def test_named_layer_stays_float_and_the_cost_is_reported(trained_cnn, digits, tmp_path):
    (x_train, _), (x_test, y_test) = digits
    result = tfc.export.to_tflite(
        trained_cnn, tmp_path / "m.tflite", representative_data=x_train[:200], float_layers=["dense_1"]
    )
    assert _fully_connected_input_dtypes(result.path) == ["int8", "float32"]
    assert result.input_dtype == result.output_dtype == "float32"
    cost = result.fallback
    assert cost.float_layers == ["dense_1"] and cost.bytes == result.bytes
    # dense_1's 640 weights go from 1 byte to 4, less its int8 scales and zero points.
    assert 640 * 2 <= cost.bytes - cost.all_int8_bytes <= 640 * 4
    assert cost.agreement >= 0.95 and cost.all_int8_agreement >= 0.95
    assert tfc.litert.verify(result.path, trained_cnn, x_test, y_test)["top1_agreement"] >= 0.95


@pytest.mark.slow
def test_count_and_threshold_choose_from_the_measured_errors(trained_cnn, digits, errors, tmp_path):
    (x_train, _), _ = digits
    with pytest.deprecated_call(match="float_layers takes layer names"):
        worst = tfc.export.to_tflite(trained_cnn, tmp_path / "w.tflite", representative_data=x_train[:200],
                                     float_layers=1)  # fmt: skip
    assert worst.fallback.float_layers == errors["worst"][:1]
    with pytest.deprecated_call(match="float_layers takes layer names"):
        none = tfc.export.to_tflite(trained_cnn, tmp_path / "n.tflite", representative_data=x_train[:200],
                                    float_layers=1e6)  # fmt: skip
    assert none.fallback.float_layers == [] and _fully_connected_input_dtypes(none.path) == ["int8", "int8"]


@pytest.mark.parametrize(
    "arguments, message",
    [
        ({"mode": "float32"}, "`float_layers` works in int8 mode with `representative_data`"),
        ({"representative_data": None}, "`float_layers` works in int8 mode"),
        ({"io_dtype": "uint8"}, "leave `io_dtype`, `batch_size` and `sparse` at their defaults"),
        ({"float_layers": ["nope"]}, r"names \['nope'\], which are not quantized layers"),
        ({"float_layers": 0}, r"as a count must be in \[1, "),
        ({"float_layers": -0.5}, "threshold must be positive"),
        ({"float_layers": True}, "not a bool"),
    ],
)
def test_bad_fallback_requests(trained_cnn, digits, tmp_path, arguments, message):
    (x_train, _), _ = digits
    settings = {"representative_data": x_train[:100], "float_layers": ["dense_1"], **arguments}
    with pytest.raises(ValueError, match=message):
        tfc.export.to_tflite(trained_cnn, tmp_path / "m.tflite", **settings)
    assert not (tmp_path / "m.tflite").exists()
