"""The cached teacher, in both engines: runs the teacher once, trains as a live teacher does, refuses what it cannot."""

import os

import numpy as np
import pytest

import tfcompress as tfc
from tests.conftest import small_cnn, weights_of
from tfcompress._keras import tf
from tfcompress._keras3 import keras_of

# Outside any layer, so it is not one of the teacher's weights (which the disk cache fingerprints).
_EXAMPLES_SEEN = tf.Variable(0.0, trainable=False)


def _call_counter(keras):
    """A layer of `keras` that passes its input through and counts the examples it has seen in `_EXAMPLES_SEEN`."""

    class CallCounter(keras.layers.Layer):
        def call(self, inputs):
            _EXAMPLES_SEEN.assign_add(tf.cast(tf.shape(inputs)[0], tf.float32))
            return inputs

    return CallCounter(name="counter")


def _counting_teacher(trained_cnn):
    """The trained teacher behind a layer that counts the examples it runs on."""
    keras = keras_of(trained_cnn)
    _EXAMPLES_SEEN.assign(0.0)
    inputs = keras.Input((8, 8, 1))
    teacher = keras.Model(inputs, trained_cnn(_call_counter(keras)(inputs)), name="counting_teacher")
    return teacher


def _distiller(teacher, seed=0, **compile_kwargs):
    keras = keras_of(teacher)
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((8, 8, 1))
    features = keras.layers.Conv2D(4, 3, padding="same", activation="relu", name="student_conv")(inputs)
    logits = keras.layers.Dense(10)(keras.layers.Flatten()(keras.layers.MaxPooling2D()(features)))
    distiller = tfc.Distiller(student=keras.Model(inputs, logits), teacher=teacher)
    distiller.compile(optimizer=keras.optimizers.Adam(1e-2), alpha=0.3, temperature=4.0, **compile_kwargs)
    return distiller


def test_cached_teacher_trains_exactly_as_the_live_teacher_without_running_it(engine, digits):
    trained_cnn = engine.trained_cnn
    (x, y), _ = digits
    x, y = x[:256], y[:256]
    teacher = _counting_teacher(trained_cnn)
    teacher_before = weights_of(trained_cnn)

    live = _distiller(teacher)
    live_history = live.fit(x, y, batch_size=32, epochs=2, shuffle=False, verbose=0).history
    assert _EXAMPLES_SEEN.numpy() == 2 * 256

    cached = _distiller(teacher)
    dataset = cached.cache_teacher(x, y, batch_size=32, shuffle=False)
    assert _EXAMPLES_SEEN.numpy() == 3 * 256  # one pass to fill the cache
    cached_history = cached.fit(dataset, epochs=2, verbose=0).history
    assert _EXAMPLES_SEEN.numpy() == 3 * 256  # and none while training

    for a, b in zip(weights_of(live.student), weights_of(cached.student)):
        np.testing.assert_allclose(a, b, atol=1e-5)
    np.testing.assert_allclose(live_history["loss"], cached_history["loss"], rtol=1e-5)
    for a, b in zip(teacher_before, weights_of(trained_cnn)):
        np.testing.assert_array_equal(a, b)


def test_cache_holds_hinted_teacher_features(engine, digits):
    trained_cnn = engine.trained_cnn
    (x, y), _ = digits
    x, y = x[:128], y[:128]
    hint = tfc.distill.Hint("student_conv", trained_cnn.layers[0].name)
    live = _distiller(trained_cnn, feature_losses=[hint])
    live_logs = live.evaluate(x, y, batch_size=128, verbose=0, return_dict=True)
    dataset = live.cache_teacher(x, y, batch_size=128, shuffle=False)
    cached_logs = live.evaluate(dataset, verbose=0, return_dict=True)
    assert cached_logs["student_conv_hint"] == pytest.approx(live_logs["student_conv_hint"], rel=1e-5)
    assert cached_logs["loss"] == pytest.approx(live_logs["loss"], rel=1e-5)


def test_cache_made_before_the_feature_losses_is_refused(engine, digits):
    trained_cnn = engine.trained_cnn
    (x, y), _ = digits
    distiller = _distiller(trained_cnn)
    dataset = distiller.cache_teacher(x[:64], y[:64], batch_size=32)
    distiller.compile(optimizer="adam", feature_losses=[tfc.distill.Hint("student_conv", trained_cnn.layers[0].name)])
    with pytest.raises(ValueError, match=r"after compile\(feature_losses=...\)"):
        distiller.fit(dataset, epochs=1, verbose=0)


def test_cache_keeps_sample_weights_and_shuffles_each_epoch(engine, digits):
    trained_cnn = engine.trained_cnn
    (x, y), _ = digits
    x, y = x[:64], y[:64]
    weights = np.linspace(0.0, 2.0, len(x)).astype(np.float32)
    distiller = _distiller(trained_cnn)
    weighted = distiller.evaluate(x, y, sample_weight=weights, batch_size=64, verbose=0, return_dict=True)
    dataset = distiller.cache_teacher(x, y, sample_weight=weights, batch_size=64, shuffle=False)
    assert distiller.evaluate(dataset, verbose=0, return_dict=True)["loss"] == pytest.approx(weighted["loss"], rel=1e-5)

    shuffled = distiller.cache_teacher(x, y, batch_size=8, seed=0)
    first, second = ([batch[1].numpy() for batch in shuffled] for _ in range(2))
    assert not all(np.array_equal(a, b) for a, b in zip(first, second))
    np.testing.assert_array_equal(np.sort(np.concatenate(first)), np.sort(y))


def test_cache_on_disk_is_reused_and_checked_against_the_teacher(engine, digits, tmp_path):
    keras, trained_cnn = engine.keras, engine.trained_cnn
    (x, y), _ = digits
    x, y = x[:64], y[:64]
    teacher = _counting_teacher(trained_cnn)
    distiller = _distiller(teacher)
    path = str(tmp_path / "teacher_cache")

    distiller.cache_teacher(x, y, batch_size=32, path=path)
    assert _EXAMPLES_SEEN.numpy() == 64 and os.path.isdir(path)
    reused = distiller.cache_teacher(x, y, batch_size=32, shuffle=False, path=path)
    assert _EXAMPLES_SEEN.numpy() == 64  # read back, not recomputed
    live = distiller.evaluate(x, y, batch_size=32, verbose=0, return_dict=True)
    assert distiller.evaluate(reused, verbose=0, return_dict=True)["loss"] == pytest.approx(live["loss"], rel=1e-5)

    other_teacher = keras.models.clone_model(trained_cnn)  # fresh weights: a different teacher
    with pytest.raises(ValueError, match="other teacher's weights"):
        _distiller(other_teacher).cache_teacher(x, y, path=path)
    with pytest.raises(ValueError, match="other data"):
        distiller.cache_teacher(x[:32], y[:32], path=path)
    not_a_cache = tmp_path / "photos"
    not_a_cache.mkdir()
    with pytest.raises(ValueError, match="not a teacher cache"):
        distiller.cache_teacher(x, y, path=str(not_a_cache))
    assert sorted(os.listdir(tmp_path)) == ["photos", "teacher_cache"]  # no staging directory left behind


def test_cache_refuses_random_augmentation(engine, digits):
    keras, trained_cnn = engine.keras, engine.trained_cnn
    (x, y), _ = digits
    x, y = x[:64], y[:64]
    distiller = _distiller(trained_cnn)
    plain = tf.data.Dataset.from_tensor_slices((x, y)).batch(16)
    assert sum(1 for _ in distiller.cache_teacher(plain, batch_size=16)) == 4

    # A random Generator, as TensorFlow recommends for augmentation, draws new noise every pass.
    generator = tf.random.Generator.from_seed(1)
    augmented = plain.map(lambda images, labels: (images + generator.uniform(tf.shape(images), 0, 0.1), labels))
    with pytest.raises(ValueError, match="shuffles or augments at random"):
        distiller.cache_teacher(augmented)
    with pytest.raises(ValueError, match="shuffles or augments at random"):
        distiller.cache_teacher(tf.data.Dataset.from_tensor_slices((x, y)).shuffle(64).batch(16))

    keras.utils.set_random_seed(0)
    augmenting_student = keras.Sequential(
        [keras.Input((8, 8, 1)), keras.layers.RandomFlip("horizontal"), *small_cnn(filters=4, units=16, k=keras).layers]
    )
    augmenting = tfc.Distiller(student=augmenting_student, teacher=trained_cnn)
    augmenting.compile(optimizer="adam")
    with pytest.raises(ValueError, match=r"augments its inputs at random.*random_flip"):
        augmenting.cache_teacher(x, y)


def test_cache_bad_inputs_are_named(engine, digits):
    trained_cnn = engine.trained_cnn
    (x, y), _ = digits
    distiller = _distiller(trained_cnn)
    with pytest.raises(ValueError, match="needs labels"):
        distiller.cache_teacher(x[:8])
    with pytest.raises(ValueError, match="one entry per example"):
        distiller.cache_teacher(x[:8], y[:7])
    with pytest.raises(ValueError, match="must be None when `x` is a tf.data.Dataset"):
        distiller.cache_teacher(tf.data.Dataset.from_tensor_slices((x[:8], y[:8])).batch(4), y[:8])
    with pytest.raises(ValueError, match="batch_size"):
        distiller.cache_teacher(x[:8], y[:8], batch_size=0)
