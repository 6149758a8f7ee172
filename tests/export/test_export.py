"""Export to .tflite and verification in the LiteRT interpreter, on real files."""

import gc
import os
import sys
import warnings

import numpy as np
import pytest
import tensorflow as tf
from ai_edge_litert.interpreter import Interpreter

import tfcompress as tfc
from tests.conftest import small_cnn
from tfcompress import keras


def _tensor_dtypes(path):
    interpreter = Interpreter(model_path=str(path))
    boundary = {d["index"] for d in interpreter.get_input_details() + interpreter.get_output_details()}
    inside = {np.dtype(d["dtype"]).name for d in interpreter.get_tensor_details() if d["index"] not in boundary}
    return inside, interpreter.get_input_details()[0]["dtype"], interpreter.get_output_details()[0]["dtype"]


def test_float32_export_matches_keras(engine, digits, tmp_path, monkeypatch):
    _, (x_test, y_test) = digits
    trained_cnn = engine.trained_cnn
    # A full collection right before converting: what the converter reads must be held by more than a reference
    # cycle (the static copy of a Keras 3 model once was not, and its variables were gone when one came in between).
    convert = tf.lite.TFLiteConverter.convert
    monkeypatch.setattr(tf.lite.TFLiteConverter, "convert", lambda self: (gc.collect(), convert(self))[1])
    result = tfc.export.to_tflite(trained_cnn, tmp_path / "model.tflite", mode="float32")
    assert result.path == str(tmp_path / "model.tflite") and result.bytes == os.path.getsize(result.path)
    assert result.input_dtype == result.output_dtype == "float32" and 0 < result.gzip_bytes < result.bytes
    check = tfc.litert.verify(result.path, trained_cnn, x_test, y_test)
    assert check["top1_agreement"] == 1.0 and check["max_abs_error"] < 1e-4
    assert check["tflite_accuracy"] == check["keras_accuracy"] > 0.9


@pytest.mark.parametrize("io_dtype", ["uint8", "int8", "float32"])
def test_int8_export_is_integer_inside_with_the_chosen_io(trained_cnn, digits, tmp_path, io_dtype):
    (x_train, _), (x_test, y_test) = digits
    path = tmp_path / "model.tflite"
    result = tfc.export.to_tflite(trained_cnn, path, representative_data=x_train[:200], io_dtype=io_dtype)
    inside, input_dtype, output_dtype = _tensor_dtypes(path)
    assert inside <= {"int8", "int32"}, inside
    assert np.dtype(input_dtype).name == np.dtype(output_dtype).name == io_dtype == result.input_dtype
    check = tfc.litert.verify(path, trained_cnn, x_test, y_test)
    assert check["top1_agreement"] >= 0.97


def test_default_io_is_uint8_for_android_image_classifiers(trained_cnn, digits, tmp_path):
    (x_train, _), _ = digits
    dataset = tf.data.Dataset.from_tensor_slices(x_train[:128]).batch(32)
    result = tfc.export.to_tflite(trained_cnn, tmp_path / "model.tflite", representative_data=dataset)
    assert (result.mode, result.input_dtype, result.output_dtype) == ("int8", "uint8", "uint8")


def test_int8_file_is_a_quarter_of_float32_for_a_100k_parameter_model(digits, tmp_path):
    (x_train, _), _ = digits
    model = small_cnn(filters=16, units=400)
    assert model.count_params() >= 100_000
    float32 = tfc.export.to_tflite(model, tmp_path / "float32.tflite", mode="float32")
    int8 = tfc.export.to_tflite(model, tmp_path / "int8.tflite", representative_data=x_train[:100])
    assert int8.bytes <= 0.27 * float32.bytes


# What the file holds inside, besides int32 shapes and indices, in each mode.
_MODE_TENSORS = {
    "float16": {"float16", "float32"},
    "dynamic": {"int8", "float32"},
    "int16x8": {"int16", "int8"},
    # The LiteRT quantizer's modes; the interpreter lists int4 tensors as int8.
    "weights_int8": {"int8", "float32"},
    "weights_int4": {"int8", "float32"},
    "dynamic_int4": {"int8", "float32"},
}
# Measured: XNNPACK leaves these modes' convolutions (int16x8: every op) to reference kernels.
_OFF_THE_FAST_PATH = {"int16x8", "weights_int4", "dynamic_int4"}


# The LiteRT quantizer's modes (an optional extra) and int16x8 take seconds each: the slow step runs them.
_SLOW_MODES = {"weights_int8", "weights_int4", "dynamic_int4", "int16x8"}


@pytest.mark.parametrize(
    "mode",
    [pytest.param(m, marks=pytest.mark.slow) if m in _SLOW_MODES else m for m in sorted(_MODE_TENSORS)],
)
def test_every_mode_loads_and_runs_in_litert(trained_cnn, digits, tmp_path, mode):
    (x_train, _), (x_test, y_test) = digits
    calibration = {"representative_data": x_train[:200]} if mode == "int16x8" else {}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        float32 = tfc.export.to_tflite(trained_cnn, tmp_path / "float32.tflite", mode="float32")
        result = tfc.export.to_tflite(trained_cnn, tmp_path / f"{mode}.tflite", mode=mode, **calibration)
    inside, input_dtype, output_dtype = _tensor_dtypes(result.path)
    assert _MODE_TENSORS[mode] <= inside, inside
    assert np.dtype(input_dtype).name == np.dtype(output_dtype).name == "float32" == result.input_dtype
    assert result.mode == mode and result.bytes < (0.2 if "int4" in mode else 0.6) * float32.bytes
    assert tfc.litert.verify(result.path, trained_cnn, x_test, y_test)["top1_agreement"] >= 0.98
    slow_path_warnings = [w for w in caught if "not delegated to XNNPACK" in str(w.message)]
    assert len(slow_path_warnings) == (1 if mode in _OFF_THE_FAST_PATH else 0)
    report = tfc.litert.inspect(result.path)
    assert report["bytes"] == result.bytes and report["inputs"][0]["dtype"] == "float32"
    assert bool(report["undelegated_compute_ops"]) == (mode in _OFF_THE_FAST_PATH)
    assert report["int8_mac_share"] == 0.0  # no static int8 activations in these modes


def test_int16x8_with_int16_io(trained_cnn, digits, tmp_path):
    (x_train, _), (x_test, y_test) = digits
    with pytest.warns(UserWarning, match="not delegated to XNNPACK"):
        result = tfc.export.to_tflite(
            trained_cnn, tmp_path / "model.tflite", mode="int16x8", io_dtype="int16", representative_data=x_train[:100]
        )
    assert (result.input_dtype, result.output_dtype) == ("int16", "int16")
    assert tfc.litert.verify(result.path, trained_cnn, x_test, y_test)["top1_agreement"] >= 0.99


@pytest.mark.parametrize(
    "make_data",
    [
        lambda x: (example for example in x),  # a generator of single examples
        lambda x: lambda: ([x[i : i + 10]] for i in range(0, len(x), 10)),  # the converter's own convention
        lambda x: iter(list(x.reshape(-1, 10, 8, 8, 1))),  # an iterator of batches
    ],
    ids=["examples", "converter_style_function", "batches"],
)
@pytest.mark.slow
def test_representative_data_from_a_generator(trained_cnn, digits, tmp_path, make_data):
    (x_train, _), _ = digits
    from_array = tfc.export.to_tflite(trained_cnn, tmp_path / "array.tflite", representative_data=x_train[:100])
    from_generator = tfc.export.to_tflite(
        trained_cnn, tmp_path / "generator.tflite", representative_data=make_data(x_train[:100])
    )
    assert open(from_generator.path, "rb").read() == open(from_array.path, "rb").read()


def test_few_calibration_examples_warn(trained_cnn, digits, tmp_path):
    (x_train, _), _ = digits
    with pytest.warns(UserWarning, match=r"Calibrating on 8 examples.*Pass a few hundred"):
        tfc.export.to_tflite(trained_cnn, tmp_path / "model.tflite", representative_data=x_train[:8])


def test_existing_file_is_never_replaced(trained_cnn, tmp_path):
    path = tmp_path / "model.tflite"
    path.write_bytes(b"the user's file")
    with pytest.raises(FileExistsError, match=r"already exists and was left as it is\. Pass overwrite=True"):
        tfc.export.to_tflite(trained_cnn, path, mode="float32")
    assert path.read_bytes() == b"the user's file"
    tfc.export.to_tflite(trained_cnn, path, mode="float32", overwrite=True)
    assert path.read_bytes()[4:8] == b"TFL3"


def test_failed_conversion_leaves_no_file(tmp_path):
    # lgamma has no int8 kernel, so a full-integer model cannot be made. TensorFlow 2.21's
    # converter leaves float ops (caught after conversion); 2.20's fails outright.
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3), keras.layers.Lambda(tf.math.lgamma)])
    path = tmp_path / "model.tflite"
    with pytest.raises(RuntimeError, match=r"(would still compute in float|could not convert).* Nothing was written"):
        tfc.export.to_tflite(model, path, representative_data=np.random.rand(64, 4))
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize(
    "arguments, error, message",
    [
        ({"mode": "int4"}, ValueError, r"`mode` must be one of \('float32', .*'dynamic_int4'\)\. Received: mode='int4"),
        ({"mode": "float32", "io_dtype": "uint8"}, ValueError, r"In mode 'float32', `io_dtype` must be one of"),
        ({"io_dtype": "int16"}, ValueError, r"`io_dtype` must be one of \('uint8', 'float32', 'int8'\)"),
        ({}, ValueError, r"int8 export needs `representative_data`"),
        (
            {"representative_data": np.zeros((10, 28, 28, 1))},
            ValueError,
            r"`representative_data` has examples of shape \(28, 28, 1\), but the model takes .* \(8, 8, 1\)",
        ),
        ({"representative_data": np.full((10, 8, 8, 1), np.nan)}, ValueError, r"holds NaN or infinite values"),
        ({"representative_data": np.zeros((0, 8, 8, 1))}, ValueError, r"`representative_data` is empty"),
        (
            {"mode": "float32", "representative_data": np.zeros((4, 8, 8, 1))},
            ValueError,
            r"which float32 mode does not have\. Remove it, or pass one of the calibrated modes",
        ),
        ({"mode": "float16", "representative_data": np.zeros((4, 8, 8, 1))}, ValueError, "float16 mode does not"),
        ({"mode": "int16x8"}, ValueError, r"int16x8 export needs `representative_data`"),
        ({"mode": "int16x8", "io_dtype": "uint8"}, ValueError, r"`io_dtype` must be one of \('float32', 'int16'\)"),
        (
            {"representative_data": lambda: iter([np.zeros((8, 8, 1)), np.zeros((4, 4, 1))])},
            ValueError,
            r"yielded items of different shapes",
        ),
        ({"representative_data": np.array([["a"] * 64] * 4).reshape(4, 8, 8, 1)}, ValueError, r"must be numeric"),
    ],
)
def test_bad_export_arguments(trained_cnn, tmp_path, arguments, error, message):
    with pytest.raises(error, match=message):
        tfc.export.to_tflite(trained_cnn, tmp_path / "model.tflite", **arguments)
    assert os.listdir(tmp_path) == []


def test_bad_output_paths(trained_cnn, tmp_path):
    with pytest.raises(FileNotFoundError, match=r"does not exist\. Create it first"):
        tfc.export.to_tflite(trained_cnn, tmp_path / "missing" / "model.tflite", mode="float32")
    with pytest.raises(IsADirectoryError, match=r"is a directory"):
        tfc.export.to_tflite(trained_cnn, tmp_path, mode="float32")


def test_verify_bad_files_and_inputs(trained_cnn, digits, tmp_path):
    _, (x_test, _) = digits
    with pytest.raises(FileNotFoundError, match=r"No \.tflite file at"):
        tfc.litert.verify(tmp_path / "missing.tflite", trained_cnn, x_test)
    good = tfc.export.to_tflite(trained_cnn, tmp_path / "model.tflite", mode="float32")
    truncated = tmp_path / "truncated.tflite"
    truncated.write_bytes(open(good.path, "rb").read()[:1000])
    with pytest.raises(ValueError, match=r"could not be loaded by the LiteRT interpreter .* export it again"):
        tfc.litert.verify(truncated, trained_cnn, x_test)
    with pytest.raises(ValueError, match=r"`x` has examples of shape \(64,\), but the model takes .*\(8, 8, 1\)"):
        tfc.litert.verify(good.path, trained_cnn, x_test.reshape(-1, 64))


def test_verify_without_labels(trained_cnn, digits, tmp_path):
    _, (x_test, _) = digits
    result = tfc.export.to_tflite(trained_cnn, tmp_path / "model.tflite", mode="float32")
    check = tfc.litert.verify(result.path, trained_cnn, x_test, limit=50)
    assert check["samples"] == 50 and check["keras_accuracy"] is None and check["tflite_accuracy"] is None


def test_integer_only_guard_rejects_a_model_computing_in_float(trained_cnn, tmp_path):
    from tfcompress.export import tflite

    result = tfc.export.to_tflite(trained_cnn, tmp_path / "float.tflite", mode="float32")
    with pytest.raises(RuntimeError, match=r"would still compute in float in \d+ ops .* Nothing was written"):
        tflite._check_integer_only(Interpreter(model_path=result.path), "float", calibrated=True)


def test_inspect_int8_counts_macs_and_finds_everything_integer_and_delegated(trained_cnn, digits, tmp_path):
    (x_train, _), _ = digits
    result = tfc.export.to_tflite(trained_cnn, tmp_path / "model.tflite", representative_data=x_train[:100])
    report = tfc.litert.inspect(result.path)
    # By hand: conv 8*8*16 outputs x 3*3*1; dense 256 -> 64; dense 64 -> 10.
    assert report["macs"] == 8 * 8 * 16 * 9 + 256 * 64 + 64 * 10
    assert report["int8_mac_share"] == 1.0 and report["float_ops"] == []
    assert report["op_counts"]["CONV_2D"] == 1 and report["op_counts"]["FULLY_CONNECTED"] == 2
    assert set(report["undelegated_ops"]) <= {"QUANTIZE", "DEQUANTIZE"}  # only the uint8 edges
    (model_input,) = report["inputs"]
    assert model_input["dtype"] == "uint8" and model_input["shape"] == [1, 8, 8, 1]
    assert model_input["scale"] == pytest.approx(1 / 255, rel=0.05) and report["bytes"] == result.bytes


@pytest.mark.slow
def test_inspect_float32_and_int16x8(trained_cnn, digits, tmp_path):
    (x_train, _), _ = digits
    float32 = tfc.litert.inspect(tfc.export.to_tflite(trained_cnn, tmp_path / "f.tflite", mode="float32").path)
    assert float32["int8_mac_share"] == 0.0 and "CONV_2D" in float32["float_ops"]
    assert float32["undelegated_ops"] == []
    with pytest.warns(UserWarning, match="not delegated"):
        int16 = tfc.export.to_tflite(trained_cnn, tmp_path / "i.tflite", mode="int16x8", representative_data=x_train)
    assert "CONV_2D" in tfc.litert.inspect(int16.path)["undelegated_ops"]


def test_export_warns_when_an_op_falls_off_the_fast_path(tmp_path):
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [keras.Input((6,)), keras.layers.Dense(4), keras.layers.Lambda(lambda x: tf.math.cumsum(x, axis=-1)),
         keras.layers.Dense(3)]
    )  # fmt: skip
    with pytest.warns(UserWarning, match=r"1 ops of the float32 export .* not delegated to XNNPACK \(\['CUMSUM'\]\)"):
        result = tfc.export.to_tflite(model, tmp_path / "model.tflite", mode="float32")
    assert tfc.litert.inspect(result.path)["undelegated_ops"] == ["CUMSUM"]


def test_a_classifiers_final_softmax_off_xnnpack_is_not_worth_a_warning(trained_cnn, digits, tmp_path):
    # In int8 XNNPACK leaves SOFTMAX to LiteRT's kernels; at the output it costs 4% of the digits CNN's time.
    (x_train, _), _ = digits
    probabilities = keras.Model(trained_cnn.inputs, keras.layers.Softmax()(trained_cnn.outputs[0]))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        result = tfc.export.to_tflite(probabilities, tmp_path / "model.tflite", representative_data=x_train[:100])
    assert tfc.litert.inspect(result.path)["undelegated_compute_ops"] == ["SOFTMAX"]


def test_inspect_bad_files(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"No \.tflite file at"):
        tfc.litert.inspect(tmp_path / "missing.tflite")
    broken = tmp_path / "broken.tflite"
    broken.write_bytes(b"TFL3" + b"\0" * 100)
    with pytest.raises(ValueError, match=r"could not be loaded by the LiteRT interpreter"):
        tfc.litert.inspect(broken)


def test_quantizer_modes_name_the_extra_when_it_is_missing(trained_cnn, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "litert_quantizer", None)  # as in an install without the extra
    with pytest.raises(ImportError, match=r'pip install "tfcompress\[quantizer\]"'):
        tfc.export.to_tflite(trained_cnn, tmp_path / "m.tflite", mode="weights_int4")
    assert not (tmp_path / "m.tflite").exists()


@pytest.mark.slow
def test_several_inputs_calibrate_from_a_dict_a_list_or_a_dataset_of_tuples(tmp_path, seeded):
    from tests import zoo

    model = zoo.build("multi_io")
    images, features = zoo.inputs_for("multi_io", model, 80, seed=2)
    forms = {
        "dict": {"features": features, "image": images},
        "list": [images, features],
        "dataset": tf.data.Dataset.from_tensor_slices((images, features)).batch(16),
        "generator": lambda: ([images[i : i + 1], features[i : i + 1]] for i in range(80)),
    }
    files = {}
    for form, data in forms.items():
        files[form] = tfc.export.to_tflite(model, tmp_path / f"{form}.tflite", representative_data=data).path
    contents = {form: open(path, "rb").read() for form, path in files.items()}
    assert len(set(contents.values())) == 1  # the same calibration whatever the form
    labelled = tf.data.Dataset.from_tensor_slices(((images, features), np.zeros(80, np.int64))).batch(16)
    check = tfc.litert.verify(files["dict"], model, labelled, task=zoo.TASKS["multi_io"])
    assert check["samples"] == 80 and set(check["outputs"]) == {"scores", "box"}
    box, scores = check["outputs"]["box"], check["outputs"]["scores"]
    assert box["task"] == "regression" and box["top1_agreement"] is None and box["relative_error"] < 0.05
    assert scores["task"] == "multiclass" and scores["top1_agreement"] > 0.9


def test_a_lookup_table_the_variables_do_not_hold_is_named_in_the_error(tmp_path):
    inputs = keras.Input((4,), dtype="int64")
    ids = keras.layers.IntegerLookup(vocabulary=[3, 5, 7])(inputs)
    pooled = keras.layers.GlobalAveragePooling1D()(keras.layers.Embedding(8, 4)(ids))
    model = keras.Model(inputs, keras.layers.Dense(2)(pooled))
    with pytest.raises(RuntimeError, match="HashTableV2"):
        tfc.export.to_tflite(model, tmp_path / "m.tflite", mode="float32")
    assert not (tmp_path / "m.tflite").exists()
