"""Accuracy-controlled int8 export and the cross-layer equalization it tries first."""

import os

import numpy as np
import pytest
from conftest import weights_of

import tfcompress as tfc
from tfcompress._keras import keras
from tfcompress.export import accuracy_control, layer_precision, tflite


def _with_outliers(model, hidden, following, units=4, factor=100.0):
    """The same function, but `units` hidden units are `factor` times larger and read `factor` times weaker."""
    copy = keras.models.clone_model(model)
    copy.set_weights(model.get_weights())
    kernel, bias = copy.get_layer(hidden).get_weights()
    kernel[:, :units] *= factor
    bias[:units] *= factor
    copy.get_layer(hidden).set_weights([kernel, bias])
    weights = copy.get_layer(following).get_weights()
    weights[0][:units] /= factor
    copy.get_layer(following).set_weights(weights)
    return copy


@pytest.fixture(scope="module")
def outlier_cnn(trained_cnn):
    """trained_cnn with four outlier units in its hidden Dense: one per-tensor int8 range no longer fits."""
    dense, logits = [layer.name for layer in trained_cnn.layers if isinstance(layer, keras.layers.Dense)]
    return _with_outliers(trained_cnn, dense, logits)


def _agreement(path, model, x):
    return float(np.mean(tfc.litert.LiteRTModel(path).predict(x).argmax(-1) == model.predict(x, verbose=0).argmax(-1)))


def test_equalize_keeps_the_function_and_balances_the_ranges(outlier_cnn, digits):
    (x_train, _), _ = digits
    before = weights_of(outlier_cnn)
    equalized, pairs = tfc.quantize.equalize(outlier_cnn)
    conv, _, _, hidden, logits = (layer.name for layer in outlier_cnn.layers)
    assert pairs == [(conv, hidden), (hidden, logits)]  # the first through pooling and Flatten
    np.testing.assert_allclose(equalized.predict(x_train, verbose=0), outlier_cnn.predict(x_train, verbose=0),
                               rtol=1e-4, atol=1e-4)  # fmt: skip
    hidden = equalized.layers[-2].get_weights()[0]
    ranges = np.abs(hidden).max(axis=0)
    assert ranges.max() / np.median(ranges) < 10  # the outliers' factor of 100 is gone
    assert all(np.array_equal(a, b) for a, b in zip(before, weights_of(outlier_cnn)))  # the user's model unchanged


def test_bias_correction_cancels_the_mean_error_of_int8_weights(trained_cnn, digits):
    (x_train, _), _ = digits
    corrected, layers = tfc.quantize.correct_bias(trained_cnn, x_train)
    assert layers == [layer.name for layer in trained_cnn.layers if layer.weights]
    # The last layer's shift is exactly (int8-rounded kernel - kernel) applied to its mean input.
    logits = trained_cnn.layers[-1]
    kernel, bias = logits.get_weights()
    steps = np.abs(kernel).max(axis=0) / 127
    rounded = np.round(kernel / steps) * steps
    hidden = keras.Model(trained_cnn.inputs, logits.input).predict(x_train[:512], verbose=0)
    expected = hidden.mean(axis=0) @ (rounded - kernel)
    shift = bias - corrected.layers[-1].get_weights()[1]
    assert np.abs(expected).max() > 0
    np.testing.assert_allclose(shift, expected, rtol=1e-3, atol=1e-7)
    for original, copy in zip(trained_cnn.layers, corrected.layers):  # kernels untouched
        assert all(np.array_equal(a, b) for a, b in zip(original.get_weights()[:1], copy.get_weights()[:1]))


def test_equalize_passes_through_batchnorm_and_depthwise_and_stops_at_relu6(seeded, digits):
    (x_train, _), _ = digits
    inputs = keras.Input((8, 8, 1))
    x = keras.layers.Conv2D(8, 3, name="a")(inputs)
    x = keras.layers.BatchNormalization(name="bn")(x)
    x = keras.layers.ReLU(name="relu")(x)
    x = keras.layers.DepthwiseConv2D(3, activation="relu6", name="b")(x)
    x = keras.layers.DepthwiseConv2D(3, depth_multiplier=2, name="c")(x)
    outputs = keras.layers.Dense(10, name="d")(keras.layers.GlobalAveragePooling2D()(x))
    model = keras.Model(inputs, outputs)
    model.get_layer("bn").set_weights([np.linspace(0.5, 3, 8), np.linspace(-1, 1, 8), np.zeros(8), np.ones(8) * 2])
    equalized, pairs = tfc.quantize.equalize(model)
    assert pairs == [("a", "b"), ("c", "d")]  # b's ReLU6 clips at 6, so b -> c cannot be rescaled exactly
    np.testing.assert_allclose(equalized.predict(x_train, verbose=0), model.predict(x_train, verbose=0), atol=1e-4)
    corrected, layers = tfc.quantize.correct_bias(model, x_train)  # depthwise kernels, one bias per output channel
    assert layers == ["a", "b", "c", "d"]
    assert corrected.get_layer("c").get_weights()[1].shape == (16,)


def test_equalization_is_chosen_when_it_meets_the_target(outlier_cnn, digits, tmp_path, capsys):
    (x_train, _), (x_test, y_test) = digits
    plain = tfc.export.to_tflite(outlier_cnn, tmp_path / "plain.tflite", representative_data=x_train[:300],
                                 io_dtype="float32")  # fmt: skip
    result = tfc.export.with_accuracy_control(
        outlier_cnn, tmp_path / "controlled.tflite", representative_data=x_train[:300],
        validation_data=(x_test[:180], y_test[:180]), max_accuracy_drop=0.005, verbose=True,
    )  # fmt: skip
    control = result.accuracy_control
    assert not control.plain["met"] and control.chosen["met"] and control.chosen["equalized"]
    assert control.chosen["candidate"] in ("equalized int8", "bias-corrected equalized int8")
    assert control.float_layers == [] and control.int8_mac_share == 1.0
    # Held-out examples the control never saw: the equalized file agrees more often than the plain one.
    held_out = x_test[180:]
    assert _agreement(result.path, outlier_cnn, held_out) > _agreement(plain.path, outlier_cnn, held_out) + 0.02
    printed = capsys.readouterr().out
    assert f"chosen: {control['chosen']['candidate']}; layers in float: none" in printed


def _outliers_behind_batchnorm(trained_cnn):
    """trained_cnn's function, with a BatchNorm after the hidden ReLU that undoes four 100x outlier units.

    Equalization cannot pass a BatchNorm after a ReLU, so int8 needs float layers here.
    """
    inputs = keras.Input((8, 8, 1))
    x = inputs
    for layer in trained_cnn.layers[:-1]:
        x = layer.__class__.from_config(layer.get_config())(x)
    x = keras.layers.BatchNormalization(epsilon=1e-3, name="after_relu")(x)
    model = keras.Model(inputs, keras.layers.Dense(10, name="logits")(x))
    for source, copy in zip(trained_cnn.layers[:-1], model.layers[1:]):
        copy.set_weights(source.get_weights())
    model.get_layer("logits").set_weights(trained_cnn.layers[-1].get_weights())
    hidden = trained_cnn.layers[-2].name
    kernel, bias = model.get_layer(hidden).get_weights()
    kernel[:, :4] *= 100
    bias[:4] *= 100
    model.get_layer(hidden).set_weights([kernel, bias])
    units = len(bias)
    scale = np.ones(units)
    scale[:4] = 100
    # (x - 0) / sqrt(variance + epsilon) = x / scale: an identity on the unchanged units, 1/100 on the others.
    model.get_layer("after_relu").set_weights([np.ones(units), np.zeros(units), np.zeros(units), scale**2 - 1e-3])
    return model


def test_an_integer_only_file_meets_the_target_where_equalization_cannot_help(trained_cnn, digits, tmp_path):
    (x_train, _), (x_test, y_test) = digits
    model = _outliers_behind_batchnorm(trained_cnn)
    np.testing.assert_allclose(model.predict(x_test, verbose=0), trained_cnn.predict(x_test, verbose=0), atol=1e-3)
    result = tfc.export.with_accuracy_control(
        model, tmp_path / "m.tflite", representative_data=x_train[:300],
        validation_data=(x_test[:180], y_test[:180]), max_accuracy_drop=0.01,
    )  # fmt: skip
    control = result.accuracy_control
    assert not control.plain["met"] and not control.equalized["met"]
    assert control.chosen["met"] and control.float_layers == [] and control.integer_only and control.on_xnnpack
    assert control.calibration != "minmax" and f"{control.calibration} ranges" in control.chosen["candidate"]
    assert set(control.op_types) <= {"QUANTIZE", "CONV_2D", "MAX_POOL_2D", "RESHAPE", "FULLY_CONNECTED", "DEQUANTIZE"}
    assert [row["candidate"] for row in control.frontier][:2] == ["plain int8", "int8, percentile ranges"]
    # Held-out examples the control never saw: within a point of the float model's accuracy.
    held_out = x_test[180:], y_test[180:]
    float_accuracy = np.mean(model.predict(held_out[0], verbose=0).argmax(-1) == held_out[1])
    int8_accuracy = np.mean(tfc.litert.LiteRTModel(result.path).predict(held_out[0]).argmax(-1) == held_out[1])
    assert int8_accuracy >= float_accuracy - 0.01


@pytest.mark.slow
def test_float_layers_only_when_allowed_and_no_integer_file_meets_the_target(trained_cnn, digits, tmp_path):
    (x_train, _), (x_test, y_test) = digits
    model = _outliers_behind_batchnorm(trained_cnn)
    request = dict(representative_data=x_train[:300], validation_data=(x_test[:180], y_test[:180]),
                   min_agreement=0.995)  # fmt: skip
    with pytest.raises(tfc.export.AccuracyTargetError, match=r"allow_float=True lets layers stay in float"):
        tfc.export.with_accuracy_control(model, tmp_path / "integer.tflite", **request)
    assert not os.path.exists(tmp_path / "integer.tflite")
    result = tfc.export.with_accuracy_control(model, tmp_path / "m.tflite", allow_float=True, **request)
    control = result.accuracy_control
    assert control.float_layers and control.chosen["agreement"] >= 0.995 and not control.integer_only
    assert 0 < control.int8_mac_share < 1
    tried = {row["candidate"]: row for row in control.frontier}
    int16 = tried["int16 activations (int16x8)"]
    assert int16["integer_only"] and not int16["on_xnnpack"] and not int16["met"]
    assert int16["latency_ratio"] > 2  # off XNNPACK: reference kernels
    # int16 in a few layers was tried first, one integer file, slower than int8 only where it is int16.
    per_layer = next(row for row in control.frontier if row["candidate"].startswith("int16 activations in "))
    assert per_layer["integer_only"] and per_layer["int16_layers"] and not per_layer["on_xnnpack"]
    assert 1 < per_layer["latency_ratio"] < int16["latency_ratio"]
    assert _agreement(result.path, model, x_test[180:]) >= 0.97


def test_a_target_no_file_meets_is_an_error_and_writes_nothing(trained_cnn, digits, tmp_path):
    (x_train, _), (x_test, y_test) = digits
    target, task = accuracy_control.Target(max_accuracy_drop=-0.5), tfc._tasks.Task("multiclass")
    judge = accuracy_control._Judge(trained_cnn, [x_test], y_test, target, task)
    expected = r"No int8 file meets the target \(accuracy drop <= -50.00%\)\. The closest, with \d+ of the \d+"
    with pytest.raises(tfc.export.AccuracyTargetError, match=expected):
        accuracy_control._fallback_search(trained_cnn, [x_train[:100]], judge, equalized=False, method="minmax")
    # Through to_tflite, the error leaves no file.
    path = tmp_path / "never.tflite"
    with pytest.raises(ValueError):
        tfc.export.with_accuracy_control(trained_cnn, path, representative_data=x_train[:100],
                             validation_data=(x_test, y_test), max_accuracy_drop=1.5)  # fmt: skip
    assert not os.path.exists(path)


@pytest.mark.parametrize(
    "arguments, message",
    [
        ({"max_accuracy_drop": 0.0}, r"`max_accuracy_drop` must be a number in \(0, 1\)"),
        ({"min_agreement": 1.0}, r"`min_agreement` must be a number in \(0, 1\)"),
        ({"max_accuracy_drop": 0.01, "validation_data": None}, "pass validation_data=\\(x_val, y_val\\)"),
        ({"max_accuracy_drop": 0.01, "validation_data": "x only"}, "needs labels"),
        ({"max_accuracy_drop": 0.01, "validation_data": "wrong shape"}, "validation_data"),
        ({"max_accuracy_drop": 0.01, "validation_data": "class 12"}, r"does not hold labels of a multi-class"),
        ({"validation_data": "given"}, "pass a target with it"),
        ({"max_accuracy_drop": 0.01, "float_layers": 1}, "not both"),
        ({"max_accuracy_drop": 0.01, "mode": "float16"}, "works in int8 mode"),
        ({"max_accuracy_drop": 0.01, "io_dtype": "uint8"}, "float32 I/O"),
    ],
)
def test_bad_requests_are_clear_errors(trained_cnn, digits, tmp_path, arguments, message):
    (x_train, _), (x_test, y_test) = digits
    forms = {
        "x only": x_test,
        "wrong shape": (x_test[:, :4], y_test),
        "class 12": (x_test, np.full(len(x_test), 12)),
        "given": (x_test, y_test),
    }
    arguments = dict(arguments)
    arguments.setdefault("validation_data", (x_test, y_test))
    if isinstance(arguments["validation_data"], str):
        arguments["validation_data"] = forms[arguments["validation_data"]]
    if arguments.get("mode") != "float16":
        arguments["representative_data"] = x_train[:100]
    # Combinations with to_tflite's own options reach accuracy control only by its deprecated keywords.
    targets = {"max_accuracy_drop", "min_agreement"} & set(arguments)
    legacy = {"mode", "io_dtype", "float_layers"} & set(arguments) or not targets
    export = tfc.export.to_tflite if legacy else tfc.export.with_accuracy_control
    with pytest.raises(ValueError, match=message):
        export(trained_cnn, tmp_path / "m.tflite", **arguments)
    assert not os.path.exists(tmp_path / "m.tflite")


def test_accuracy_control_needs_a_target_and_to_tflite_s_old_keywords_still_reach_it(trained_cnn, digits, tmp_path):
    (x_train, _), (x_test, y_test) = digits
    with pytest.raises(ValueError, match="needs a target: max_accuracy_drop=0.005"):
        tfc.export.with_accuracy_control(trained_cnn, tmp_path / "m.tflite", representative_data=x_train[:100],
                                         validation_data=(x_test, y_test))  # fmt: skip
    with pytest.deprecated_call(match="use tfc.export.with_accuracy_control"):
        result = tfc.export.to_tflite(trained_cnn, tmp_path / "m.tflite", representative_data=x_train[:100],
                                      validation_data=(x_test[:180], y_test[:180]), min_agreement=0.9)  # fmt: skip
    assert result.accuracy_control.chosen["met"]
    with pytest.raises(TypeError, match=r"unexpected keyword arguments \['max_acuracy_drop'\]"):
        tfc.export.to_tflite(trained_cnn, tmp_path / "n.tflite", representative_data=x_train[:100],
                             max_acuracy_drop=0.01)  # fmt: skip
    assert not os.path.exists(tmp_path / "n.tflite")


def test_qat_is_advised_only_when_the_float_layers_cost_speed():
    report = {"float_layers": ["dense"], "int8_mac_share": 0.4, "latency_ms": {"plain int8": 1.0, "chosen": 1.6}}
    advice = accuracy_control._advice(report)
    assert "1.60x slower" in advice and "tfc.quantize.qat(model" in advice and "`qat` stage" in advice
    report["latency_ms"]["chosen"] = 1.2  # within QAT_ADVICE_SLOWDOWN
    assert accuracy_control._advice(report) is None
    report.update(float_layers=[], latency_ms={"plain int8": 1.0, "chosen": 2.0})  # nothing in float: nothing to fix
    assert accuracy_control._advice(report) is None


def test_a_budget_bounds_bytes_and_latency_and_says_so():
    budget = accuracy_control.Budget.checked({"bytes": 20_000, "latency": 1.5})
    assert budget.allows(20_000, 1.5) and budget.allows(19_000, None)  # an int8 file's latency is timed last
    assert not budget.allows(20_001, 1.0) and not budget.allows(10_000, 1.6)
    assert budget.describe() == "<= 20,000 bytes and <= 1.5x the plain int8 latency"
    assert accuracy_control.Budget.checked(None).to_dict() is None
    assert accuracy_control.Budget.checked({"latency": 2}).to_dict() == {"bytes": None, "latency": 2}
    for bad in ({}, {"bytes": -1}, {"size": 3}, [1000]):
        with pytest.raises(ValueError, match="budget"):
            accuracy_control.Budget.checked(bad)


def _control_parts(model, digits, target):
    """accuracy control's judge, search and layers for `model`, measured on 180 test digits."""
    (x_train, _), (x_test, y_test) = digits
    judge = accuracy_control._Judge(model, [x_test[:180]], y_test[:180], target, tfc._tasks.Task("multiclass"))

    def convert(candidate, method, mode):
        return tflite._convert(candidate, mode, "float32", [x_train[:300]], False, None, method)

    search = accuracy_control._Search(judge, convert, accuracy_control.Budget())
    return judge, search, accuracy_control._Layers(model, [x_train[:300]], convert)


def test_int16_activations_in_the_noisiest_layer_and_its_readers_make_one_integer_file(trained_cnn, digits):
    model = _outliers_behind_batchnorm(trained_cnn)
    judge, search, layers = _control_parts(model, digits, accuracy_control.Target(min_agreement=0.98))
    assert not judge.measure(search.convert(model, "minmax", "int8"), [])["met"]  # the converter's int8 file
    assert layers.precision.readers["dense"] == ["logits"]
    assert layers.precision.readers["conv2d"] == ["max_pooling2d", "flatten", "dense"]  # through pooling, reshape
    accuracy_control._int16_search(search, layers)
    (found,) = search.files.values()
    # The outlier tensor between dense and logits stays int16 from the op that writes it to the op that reads it.
    assert found.measured["met"] and {"dense", "logits"} <= set(found.measured["int16_layers"])
    assert layer_precision.int16_ops(found.content) == len(found.measured["int16_layers"])
    assert found.integer_only and not found.on_xnnpack and set(found.op_types) <= {
        "QUANTIZE", "CONV_2D", "MAX_POOL_2D", "RESHAPE", "FULLY_CONNECTED", "DEQUANTIZE"}  # fmt: skip


def test_a_bytes_budget_below_every_int8_file_is_met_with_int4_weights_in_the_fewest_layers(
    trained_cnn, digits, tmp_path, monkeypatch
):
    (x_train, _), (x_test, y_test) = digits
    model = _outliers_behind_batchnorm(trained_cnn)
    request = dict(representative_data=x_train[:300], validation_data=(x_test[:180], y_test[:180]),
                   max_accuracy_drop=0.02)  # fmt: skip
    result = tfc.export.with_accuracy_control(model, tmp_path / "m.tflite", budget={"bytes": 16_000}, **request)
    control = result.accuracy_control
    assert control.int4_layers == ["dense"] and control.integer_only and control.chosen["met"]
    assert os.path.getsize(result.path) <= 16_000 < min(row["bytes"] for row in control.frontier[:8])
    assert "layers with int4 weights: dense" in control.summary
    # Smaller than int4 weights everywhere: an error that names what was tried, and no file.
    with pytest.raises(tfc.export.AccuracyTargetError, match=r"No file tried fits .* int4 weights in 3 layers"):
        tfc.export.with_accuracy_control(model, tmp_path / "small.tflite", budget={"bytes": 12_000}, **request)
    monkeypatch.setattr(layer_precision, "available", lambda: False)
    with pytest.raises(tfc.export.AccuracyTargetError, match=r'Not tried: int16 .* "tfcompress\[quantizer\]"'):
        tfc.export.with_accuracy_control(model, tmp_path / "none.tflite", budget={"bytes": 16_000}, **request)
    assert not os.path.exists(tmp_path / "small.tflite") and not os.path.exists(tmp_path / "none.tflite")
