"""Augmentation and preprocessing layers inside the model, as TensorFlow's image tutorials put them.

A small version of the "Transfer learning and fine-tuning" tutorial's model: random flips,
rotations and the rest in a nested Sequential, `preprocess_input`'s arithmetic, a base
called with training=False, one logit. Trained on real digits (is it odd?), it goes through
channel pruning, QAT and int8 export, post-training int8, and Keras 3.
"""

import numpy as np
import pytest

import tfcompress as tfc
from tests.conftest import with_removed_channels_zeroed
from tfcompress import keras
from tfcompress._graph import flat_copy
from tfcompress.prune.channel_pruning import plan_channels

AUGMENTATION = ("random_flip", "random_rotation", "random_zoom", "random_translation", "random_contrast",
                "random_brightness")  # fmt: skip


def _tutorial_like(k, image=(16, 16, 3)):
    augmentation = k.Sequential(
        # Named: Keras numbers unnamed layers per session, and other tests build augmentation layers too.
        [k.layers.RandomFlip("horizontal", name="random_flip"), k.layers.RandomRotation(0.1, name="random_rotation"),
         k.layers.RandomZoom(0.1, name="random_zoom"), k.layers.RandomTranslation(0.1, 0.1, name="random_translation"),
         k.layers.RandomContrast(0.1, name="random_contrast"),
         k.layers.RandomBrightness(0.1, name="random_brightness")],
        name="augmentation",
    )  # fmt: skip
    base = k.Sequential(
        [k.Input((12, 12, 3)), k.layers.Conv2D(16, 3, activation="relu"), k.layers.Conv2D(16, 3, activation="relu")],
        name="base",
    )
    inputs = k.Input(image)
    x = augmentation(inputs)
    x = k.layers.CenterCrop(14, 14)(x)
    x = k.layers.Resizing(12, 12)(x)
    x = k.applications.mobilenet_v2.preprocess_input(x)
    x = base(x, training=False)
    x = k.layers.GlobalAveragePooling2D()(x)
    x = k.layers.Dropout(0.2)(x)
    return k.Model(inputs, k.layers.Dense(1)(x), name="tutorial_like")


def _pixels(images):
    """Digits as 16x16 RGB pixels in 0..255, as the tutorial's images come."""
    return np.repeat(images.repeat(2, axis=1).repeat(2, axis=2), 3, axis=-1) * 255.0


@pytest.fixture(scope="module")
def tutorial(digits):
    (x_train, y_train), (x_test, y_test) = digits
    keras.utils.set_random_seed(0)
    model = _tutorial_like(keras)
    model.compile(optimizer=keras.optimizers.Adam(2e-3), loss=keras.losses.BinaryCrossentropy(from_logits=True))
    model.fit(_pixels(x_train), (y_train % 2).astype(np.float32), epochs=10, batch_size=32, verbose=0)
    return model, _pixels(x_train), _pixels(x_test), (y_train % 2).astype(np.float32), (y_test % 2).astype(np.float32)


def test_channel_pruning_passes_through_augmentation_and_resizing(tutorial):
    model, _, x_test, _, _ = tutorial
    flat = flat_copy(model)
    plan = plan_channels(flat, 0.5)
    smaller = tfc.prune.rebuild(flat, plan)
    assert smaller.count_params() < 0.6 * model.count_params()
    assert {name for name in AUGMENTATION} <= {layer.name for layer in smaller.layers}
    expected = with_removed_channels_zeroed(flat, plan).predict(x_test, verbose=0)
    np.testing.assert_allclose(smaller.predict(x_test, verbose=0), expected, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("route", ["post-training", "qat"])
def test_int8_files_leave_augmentation_out_and_compute_in_integers(route, tutorial, tmp_path):
    model, x_train, x_test, y_train, y_test = tutorial
    if route == "qat":
        model = tfc.quantize.qat(model, representative_data=x_train[:256])
        assert not model.float_layers  # augmentation is quantization-aware too: it passes the input's scale on
        model.compile(optimizer=keras.optimizers.Adam(1e-4), loss=keras.losses.BinaryCrossentropy(from_logits=True))
        model.fit(x_train[:256], y_train[:256], epochs=1, batch_size=64, verbose=0)  # augmenting as it trains
    result = tfc.export.to_tflite(model, tmp_path / "m.tflite",
                                  representative_data=x_train[:256] if route != "qat" else None)  # fmt: skip
    assert any("augmentation layers ['random_flip', 'random_rotation'" in note for note in result.notes)
    report = tfc.litert.inspect(result.path)
    assert not report["float_ops"] and result.input_dtype == "uint8"
    assert not {"RandomFlip", "ImageProjectiveTransformV3"} & {op["op"] for op in report["ops"]}
    check = tfc.litert.verify(result.path, model, x_test, y_test)
    assert check["task"] == "binary" and check["agreement"] >= 0.97 and check["keras_accuracy"] > 0.8


def test_the_keras3_tutorial_model_converts_with_its_augmentation(tmp_path):
    import keras as keras3

    keras3.utils.set_random_seed(0)
    model = _tutorial_like(keras3)
    model.compile(optimizer="adam", loss=keras3.losses.BinaryCrossentropy(from_logits=True))
    model.save(tmp_path / "tutorial.keras")
    from tfcompress import _model_files

    rebuilt = _model_files.load(tmp_path / "tutorial.keras")
    assert isinstance(rebuilt, keras3.Model)  # loaded by the Keras that saved it
    assert set(AUGMENTATION) <= {layer.name for layer in rebuilt.get_layer("augmentation").layers}
    x = np.random.default_rng(0).uniform(0, 255, (8, 16, 16, 3)).astype(np.float32)
    np.testing.assert_allclose(rebuilt.predict(x, verbose=0), model.predict(x, verbose=0), atol=1e-4)
    assert tfc._tasks.infer(rebuilt).kind == "binary"  # the file's compiled loss says so
