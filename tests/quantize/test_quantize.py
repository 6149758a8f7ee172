"""Quantization-aware training in both engines (TF-MOT for tf_keras, fake quantization for Keras 3), keeping a pruned
model's zeros, and exporting integer-only int8 files that agree with their model."""

import numpy as np
import pytest

import tfcompress as tfc
from tests import zoo
from tests.conftest import ENGINES, compile_classifier, weights_of
from tfcompress import keras
from tfcompress._keras3 import keras_of


def _zero_masks(model):
    return [np.asarray(weight) == 0 for weight in model.trainable_weights if "kernel" in weight.name]


@pytest.fixture(scope="module", params=ENGINES)
def sparse_model(request):
    """The trained CNN with 80% of each kernel's smallest weights set to zero, once per engine."""
    trained_cnn = request.getfixturevalue("trained_cnn" if request.param == "keras2" else "trained_cnn3")
    model = keras_of(trained_cnn).models.clone_model(trained_cnn)
    weights = []
    for weight in trained_cnn.get_weights():
        if weight.ndim > 1:
            weight = np.where(np.abs(weight) <= np.quantile(np.abs(weight), 0.8), 0.0, weight)
        weights.append(weight.astype(np.float32))
    model.set_weights(weights)
    return model


@pytest.mark.parametrize("preserve_sparsity, keeps_zeros", [(None, True), (False, False)])
def test_pruned_zeros_survive_training_only_with_the_prune_preserving_scheme(
    sparse_model, digits, preserve_sparsity, keeps_zeros
):
    (x_train, y_train), _ = digits
    before = weights_of(sparse_model)
    keras_of(sparse_model).utils.set_random_seed(0)
    quantization_aware = tfc.quantize.qat(sparse_model, preserve_sparsity=preserve_sparsity)
    masks = _zero_masks(quantization_aware)
    assert [mask.mean() for mask in masks] == pytest.approx([0.8] * 3, abs=0.01)
    compile_classifier(quantization_aware, learning_rate=1e-3)
    quantization_aware.fit(x_train, y_train, batch_size=64, epochs=1, verbose=0)
    zeros_kept = all(np.all(after[mask]) for mask, after in zip(masks, _zero_masks(quantization_aware)))
    assert zeros_kept == keeps_zeros
    if not keeps_zeros:  # Plain QAT fills the zeros back in: why the default checks for them.
        assert tfc.prune.sparsity(quantization_aware)["sparsity"] < 0.4
    for kept, now in zip(before, weights_of(sparse_model)):
        np.testing.assert_array_equal(kept, now)


def test_dense_model_gets_plain_qat_and_stays_accurate(engine, digits):
    trained_cnn = engine.trained_cnn
    (x_train, y_train), (x_test, y_test) = digits
    quantization_aware = compile_classifier(tfc.quantize.qat(trained_cnn), learning_rate=1e-4)
    assert tfc.quantize.is_quantization_aware(quantization_aware)
    assert not tfc.quantize.is_quantization_aware(trained_cnn)
    quantization_aware.fit(x_train, y_train, batch_size=64, epochs=1, verbose=0)
    assert quantization_aware.evaluate(x_test, y_test, verbose=0)[1] > 0.85


def test_pruning_wrappers_must_be_stripped_first(engine):
    with pytest.raises(ValueError, match=r"Strip them first: tfc\.quantize\.qat\(tfc\.prune\.strip\(model\)\)"):
        tfc.quantize.qat(tfc.prune.magnitude(engine.trained_cnn, 0.5, end_step=10))


def test_already_quantization_aware(engine):
    with pytest.raises(ValueError, match=r"already quantization-aware"):
        tfc.quantize.qat(tfc.quantize.qat(engine.trained_cnn))


@pytest.mark.slow
def test_average_pooling_keeps_its_inputs_quantization_so_int8_export_works(digits, tmp_path, seeded):
    # TF-MOT leaves a pooled tensor that a Concatenate reads on the concatenation's range (DenseNet's transitions);
    # TFLite's int8 AVERAGE_POOL_2D needs its input's, and the converter refused the file.
    (x_train, y_train), _ = digits
    inputs = keras.Input((8, 8, 1))
    pooled = keras.layers.AveragePooling2D()(keras.layers.Conv2D(8, 3, padding="same")(inputs))
    joined = keras.layers.Concatenate()([pooled, keras.layers.Conv2D(8, 3, padding="same")(pooled)])
    model = keras.Model(inputs, keras.layers.Dense(10)(keras.layers.GlobalAveragePooling2D()(joined)))
    qat = compile_classifier(tfc.quantize.qat(model))
    qat.fit(x_train, y_train, epochs=1, batch_size=64, verbose=0)
    result = tfc.export.to_tflite(qat, tmp_path / "pool.tflite")
    assert tfc.litert.verify(result.path, qat, x_train[:200])["top1_agreement"] >= 0.9


def test_representative_data_sets_the_ranges_qat_starts_from(trained_cnn, digits):
    (x_train, _), (x_test, _) = digits
    scale = 20.0  # pixels 0..20: activations well past 6, where TF-MOT's starting ranges clip them
    x, held_out = x_train[:256] * scale, x_test[:200] * scale
    expected = np.argmax(trained_cnn.predict(held_out, verbose=0), axis=-1)
    plain = tfc.quantize.qat(trained_cnn)
    measured = tfc.quantize.qat(trained_cnn, representative_data=x)

    def agreement(model):
        return float(np.mean(np.argmax(model.predict(held_out, verbose=0), axis=-1) == expected))

    assert agreement(measured) >= 0.97 and agreement(plain) < 0.8, (agreement(measured), agreement(plain))
    quantize_input = measured.layers[1]
    assert type(quantize_input).__name__ == "QuantizeLayer", [w.name for w in quantize_input.weights]
    low, high = (float(quantize_input.quantizer_vars[end]) for end in ("min_var", "max_var"))
    assert low == 0.0 and high == pytest.approx(float(x.max()), rel=1e-3)
    for kept, weight in zip(plain.weights, measured.weights):  # only ranges moved: weights and steps as they were
        if not weight.name.endswith(("_min:0", "_max:0")):
            np.testing.assert_array_equal(kept.numpy(), weight.numpy())


def test_representative_data_must_fit_the_model(engine):
    with pytest.raises(ValueError, match=r"representative_data"):
        tfc.quantize.qat(engine.trained_cnn, representative_data=np.zeros((4, 28, 28, 1), np.float32))


def test_float_layers_stay_float_in_training_and_in_the_int8_file(trained_cnn, digits, tmp_path):
    (x_train, _), (x_test, _) = digits
    first = trained_cnn.layers[0].name
    quantization_aware = tfc.quantize.qat(trained_cnn, representative_data=x_train[:256], float_layers=["first"])
    assert quantization_aware.float_layers == {first: "kept in float as asked (float_layers)"}
    # Its kernel is not fake-quantized; only its output is, where the int8 part begins.
    fake_quantized = [weight.name.split("/")[0] for weight in quantization_aware.weights if "kernel_min" in weight.name]
    assert len(fake_quantized) == 2 and f"quant_{first}" not in fake_quantized, fake_quantized  # the two Dense

    result = tfc.export.to_tflite(quantization_aware, tmp_path / "m.tflite")
    ops = tfc.litert.inspect(result.path)["ops"]
    computing = [(op["op"], op["input_dtypes"][0]) for op in ops if op["macs"]]
    assert computing == [("CONV_2D", "float32"), ("FULLY_CONNECTED", "int8"), ("FULLY_CONNECTED", "int8")]
    assert (result.input_dtype, result.output_dtype) == ("float32", "float32")
    assert any(first in note for note in result.notes)
    report = tfc.litert.verify(result.path, quantization_aware, x_test[:200])
    assert report["top1_agreement"] >= 0.97, report


def test_a_batchnorm_after_a_float_layer_stays_float_with_it():
    model = keras.Sequential(
        [
            keras.Input((8, 8, 1)),
            keras.layers.Conv2D(4, 3, name="stem"),
            keras.layers.BatchNormalization(name="stem_bn"),
            keras.layers.ReLU(),
            keras.layers.Flatten(),
            keras.layers.Dense(10),
        ]
    )
    kept = tfc.quantize.qat(model, float_layers=["stem"]).float_layers
    assert sorted(kept) == ["stem", "stem_bn"]
    assert sorted(tfc.quantize.qat(model, float_layers=["last"]).float_layers) == [model.layers[-1].name]


def test_a_float_layer_between_int8_layers_is_said_to_be_quantized_anyway(trained_cnn, digits, tmp_path):
    (x_train, _), _ = digits
    middle = [layer for layer in trained_cnn.layers if layer.weights][1].name  # the hidden Dense: int8 on both sides
    quantization_aware = tfc.quantize.qat(trained_cnn, representative_data=x_train[:64], float_layers=[middle])
    with pytest.warns(UserWarning, match=rf"stored \['{middle}'\] .* in int8 although tfc.quantize.qat kept them"):
        result = tfc.export.to_tflite(quantization_aware, tmp_path / "m.tflite")
    assert not any(middle in note for note in result.notes)


def test_float_layers_must_be_a_list_of_names(trained_cnn):
    with pytest.raises(ValueError, match=r"must be a list of layer names"):
        tfc.quantize.qat(trained_cnn, float_layers=trained_cnn.layers[0].name)


@pytest.mark.slow
def test_ranges_that_come_out_nan_on_an_untrained_mobilenet_are_refused(seeded):
    # keras.applications' MobileNetV2 with random weights: its activations shrink block by block (1e-6 wide by
    # block 7 at 64x64), TF-MOT's fake quantization gives NaN there, and the int8 file of such a model made LiteRT
    # crash the process (a segmentation fault in allocate_tensors). qat must say so instead.
    model = keras.applications.MobileNetV2(
        input_shape=(64, 64, 3), alpha=0.35, weights=None, classes=5, classifier_activation=None
    )
    images = np.random.default_rng(0).random((16, 64, 64, 3)).astype(np.float32)
    with pytest.raises(ValueError, match=r"gave NaN at 'block_\d+_\w+'.*An untrained model does this"):
        tfc.quantize.qat(model, representative_data=images)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["mobilenet_v2", "transfer_tutorial"])
def test_mobilenet_v2_with_its_stem_in_float_exports_and_runs(name, tmp_path):
    model = zoo.build(name)  # its BatchNorm statistics set from inputs, so its activations do not vanish
    images = zoo.inputs_for(name, model, 32)
    quantization_aware = tfc.quantize.qat(model, representative_data=images, float_layers=["first"])
    assert {"Conv1", "bn_Conv1"} <= set(quantization_aware.float_layers)
    result = tfc.export.to_tflite(quantization_aware, tmp_path / "m.tflite")
    computing = [(op["op"], op["input_dtypes"][0]) for op in tfc.litert.inspect(result.path)["ops"] if op["macs"]]
    assert computing[0] == ("CONV_2D", "float32") and computing[1][1] == "int8", computing[:2]
    assert np.all(np.isfinite(tfc.litert.LiteRTModel(result.path).predict(images)))


def _first_layer_model(kind, keras):
    """A small image model whose first layer is `kind`: keras.applications' preprocessing, or a residual."""
    inputs = keras.Input((16, 16, 3))
    if kind == "rescaling with an offset":  # MobileNetV3's include_preprocessing, x / 127.5 - 1
        x = keras.layers.Rescaling(1 / 127.5, offset=-1)(inputs)
    elif kind == "normalization":  # EfficientNet's, per channel
        x = keras.layers.Normalization(mean=[120.0, 110.0, 100.0], variance=[900.0, 800.0, 700.0])(inputs)
    else:  # a BatchNormalization after Conv2D(activation="relu"), whose output also feeds a residual Add
        x = keras.layers.Conv2D(8, 3, padding="same", activation="relu")(keras.layers.Rescaling(1 / 255)(inputs))
        batchnorm = keras.layers.BatchNormalization()
        branch = keras.layers.Conv2D(8, 3, padding="same")(batchnorm(x))
        x = keras.layers.ReLU()(keras.layers.Add()([x, branch]))
    x = keras.layers.Conv2D(8, 3, activation="relu")(x)
    model = keras.Model(inputs, keras.layers.Dense(3)(keras.layers.Flatten()(x)))
    if kind == "residual batchnorm":  # statistics of a trained model: an identity the converter would drop
        batchnorm.set_weights([np.linspace(0.5, 2.0, 8), np.linspace(-0.5, 0.5, 8), np.linspace(0.1, 1.0, 8),
                               np.linspace(0.5, 3.0, 8)])  # fmt: skip
    return model


@pytest.mark.parametrize("kind", ["rescaling with an offset", "normalization", "residual batchnorm"])
def test_two_step_preprocessing_and_unfoldable_batchnorm_train_and_export_integer_only(kind, engine, tmp_path):
    engine.keras.utils.set_random_seed(0)
    model = _first_layer_model(kind, engine.keras)
    pixels = np.random.default_rng(0).uniform(0, 255, (128, 16, 16, 3)).astype(np.float32)
    quantization_aware = tfc.quantize.qat(model, representative_data=pixels)
    assert not quantization_aware.float_layers
    expected, actual = model.predict(pixels, verbose=0), quantization_aware.predict(pixels, verbose=0)
    assert np.max(np.abs(actual - expected)) < 0.05 * np.ptp(expected)  # the same function, at int8 resolution
    result = tfc.export.to_tflite(quantization_aware, tmp_path / "m.tflite")  # no calibration: QAT's ranges alone
    assert not tfc.litert.inspect(result.path)["float_ops"]
    outputs = tfc.litert.LiteRTModel(result.path).predict(pixels)
    assert np.max(np.abs(outputs - actual)) < 0.05 * np.ptp(actual)


def test_a_keras3_qat_model_trains_saves_and_exports_an_integer_only_file_that_agrees_with_it(
    trained_cnn3, digits, tmp_path
):
    import keras as keras3

    (x_train, y_train), (x_test, y_test) = digits
    quantization_aware = tfc.quantize.qat(trained_cnn3, representative_data=x_train[:256])
    assert isinstance(quantization_aware, keras3.Model) and tfc.quantize.is_quantization_aware(quantization_aware)
    compile_classifier(quantization_aware, learning_rate=1e-4)
    quantization_aware.fit(x_train, y_train, batch_size=64, epochs=1, verbose=0)
    quantization_aware.save(tmp_path / "qat.keras")
    reloaded = keras3.models.load_model(tmp_path / "qat.keras")
    np.testing.assert_allclose(reloaded.predict(x_test, verbose=0), quantization_aware.predict(x_test, verbose=0))
    result = tfc.export.to_tflite(quantization_aware, tmp_path / "qat.tflite")  # the ranges it learned: no data
    report = tfc.litert.inspect(result.path)
    assert not report["float_ops"] and result.input_dtype == "uint8" and "FULLY_CONNECTED" in report["op_counts"]
    check = tfc.litert.verify(result.path, quantization_aware, x_test, y_test)
    assert check["top1_agreement"] >= 0.99 and check["tflite_accuracy"] > 0.85


def test_keras3_qat_folds_each_batchnorm_into_its_convolution_and_starts_where_the_float_model_is(digits):
    import keras as keras3

    (x_train, y_train), (x_test, _) = digits
    keras3.utils.set_random_seed(0)
    inputs = keras3.Input((8, 8, 1))
    x = keras3.layers.ReLU()(keras3.layers.BatchNormalization()(keras3.layers.Conv2D(8, 3, use_bias=False)(inputs)))
    x = keras3.layers.DepthwiseConv2D(3, padding="same")(x)
    x = keras3.layers.Activation("hard_silu")(keras3.layers.BatchNormalization()(x))
    model = keras3.Model(inputs, keras3.layers.Dense(10)(keras3.layers.GlobalAveragePooling2D()(x)))
    compile_classifier(model).fit(x_train, y_train, epochs=3, verbose=0)
    quantization_aware = tfc.quantize.qat(model, representative_data=x_train[:256])
    names = [type(layer).__name__ for layer in quantization_aware.layers]
    assert "BatchNormalization" not in names and "BatchNormalization" not in str(quantization_aware.get_config())
    float_answers = model.predict(x_test, verbose=0).argmax(-1)
    assert np.mean(quantization_aware.predict(x_test, verbose=0).argmax(-1) == float_answers) > 0.95


def test_keras3_qat_refuses_in_words_what_it_cannot_quantize_and_the_tf_keras_only_options(trained_cnn3):
    import keras as keras3

    inputs = keras3.Input((5, 4))
    recurrent = keras3.Model(inputs, keras3.layers.Dense(2)(keras3.layers.LSTM(3, name="memory")(inputs)))
    with pytest.raises(ValueError, match=r"no int8 form for 1 layers .*'memory' \(LSTM\).*tfc\.from_keras3"):
        tfc.quantize.qat(recurrent)
    with pytest.raises(ValueError, match=r"\['float_layers'\] work in TF-MOT.*tfc\.from_keras3\(model\)"):
        tfc.quantize.qat(trained_cnn3, float_layers=["first"])
