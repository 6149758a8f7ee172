"""Distiller, in both engines: the loss matches a hand computation, the teacher stays frozen, bad input is named."""

import numpy as np
import pytest

import tfcompress as tfc
from tests.conftest import weights_of
from tfcompress._keras import tf

ALPHA, TEMPERATURE = 0.3, 4.0


def _numpy_log_softmax(logits):
    shifted = logits - logits.max(axis=-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))


def _hand_computed_loss(teacher, student, x, y, alpha=ALPHA, temperature=TEMPERATURE):
    """alpha * CE(y, student) + (1 - alpha) * KL(softmax(t/T) || softmax(s/T)) * T², in numpy float64."""
    teacher_logits = teacher.predict(x, verbose=0).astype(np.float64)
    student_logits = student.predict(x, verbose=0).astype(np.float64)
    cross_entropy = -_numpy_log_softmax(student_logits)[np.arange(len(y)), y].mean()
    log_p = _numpy_log_softmax(teacher_logits / temperature)
    log_q = _numpy_log_softmax(student_logits / temperature)
    kl = (np.exp(log_p) * (log_p - log_q)).sum(axis=-1).mean() * temperature**2
    return cross_entropy, kl, alpha * cross_entropy + (1 - alpha) * kl


def _distiller(engine, distillation_loss_fn=None, seed=0):
    keras = engine.keras
    keras.utils.set_random_seed(seed)
    distiller = tfc.Distiller(student=engine.small_cnn(filters=4, units=16), teacher=engine.trained_cnn)
    distiller.compile(
        optimizer=keras.optimizers.Adam(1e-2),
        metrics=[keras.metrics.SparseCategoricalAccuracy()],
        student_loss_fn=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        distillation_loss_fn=distillation_loss_fn or keras.losses.KLDivergence(),
        alpha=ALPHA,
        temperature=TEMPERATURE,
    )
    return distiller


def test_loss_equals_hand_computation(engine, digits):
    (x, y), _ = digits
    x, y = x[:64], y[:64]
    distiller = _distiller(engine)
    expected_student, expected_kl, expected_loss = _hand_computed_loss(engine.trained_cnn, distiller.student, x, y)
    evaluated = distiller.evaluate(x, y, batch_size=64, verbose=0, return_dict=True)
    # One full-batch step reports the loss computed before its update.
    trained = distiller.fit(x, y, batch_size=64, epochs=1, shuffle=False, verbose=0).history
    for logs in (evaluated, {key: values[0] for key, values in trained.items()}):
        assert logs["student_loss"] == pytest.approx(expected_student, rel=1e-4)
        assert logs["distillation_loss"] == pytest.approx(expected_kl, rel=1e-4)
        assert logs["loss"] == pytest.approx(expected_loss, rel=1e-4)


def test_any_other_distillation_loss_gets_softened_probabilities_times_t_squared(engine, digits):
    (x, y), _ = digits
    x, y = x[:64], y[:64]

    def kl_on_probabilities(p, q):
        return tf.reduce_sum(p * tf.math.log(p / q), axis=-1)

    custom = _distiller(engine, distillation_loss_fn=kl_on_probabilities)
    _, expected_kl, _ = _hand_computed_loss(engine.trained_cnn, custom.student, x, y)
    logs = custom.evaluate(x, y, batch_size=64, verbose=0, return_dict=True)
    assert logs["distillation_loss"] == pytest.approx(expected_kl, rel=1e-4)


def test_fit_trains_only_the_student_and_reports_running_means(engine, digits):
    (x_train, y_train), (x_test, y_test) = digits
    teacher_before = weights_of(engine.trained_cnn)
    distiller = _distiller(engine)
    student_before = weights_of(distiller.student)
    history = distiller.fit(x_train, y_train, batch_size=64, epochs=2, verbose=0).history
    logs = distiller.evaluate(x_test, y_test, verbose=0, return_dict=True)

    for before, after in zip(teacher_before, weights_of(engine.trained_cnn)):
        np.testing.assert_array_equal(before, after)
    assert engine.trained_cnn.trainable
    assert any(not np.array_equal(b, a) for b, a in zip(student_before, weights_of(distiller.student)))
    expected_keys = {"loss", "student_loss", "distillation_loss", "sparse_categorical_accuracy"}
    assert set(history) == expected_keys and set(logs) == expected_keys
    # Running means are linear, so the epoch means keep the loss's definition.
    for epoch in range(2):
        combined = ALPHA * history["student_loss"][epoch] + (1 - ALPHA) * history["distillation_loss"][epoch]
        assert history["loss"][epoch] == pytest.approx(combined, rel=1e-5)
    assert history["loss"][1] < history["loss"][0]
    assert logs["sparse_categorical_accuracy"] > 0.5
    assert isinstance(distiller, engine.keras.Model) and isinstance(distiller, tfc.Distiller)  # in the student's Keras
    assert [weight.name for weight in distiller.trainable_weights] == [
        weight.name for weight in distiller.student.trainable_weights
    ]


def test_student_saves_and_reloads_without_the_teacher(engine, digits, tmp_path):
    keras = engine.keras
    (x_train, y_train), (x_test, _) = digits
    distiller = _distiller(engine)
    distiller.fit(x_train[:128], y_train[:128], epochs=1, verbose=0)
    distiller.student.save(tmp_path / "student.keras")
    reloaded = keras.models.load_model(tmp_path / "student.keras")
    np.testing.assert_allclose(reloaded.predict(x_test, verbose=0), distiller.predict(x_test, verbose=0), atol=1e-6)
    assert reloaded.count_params() == distiller.student.count_params()


@pytest.mark.parametrize("temperature", [0, -1.0, "hot", None])
def test_temperature_must_be_positive(engine, temperature):
    distiller = tfc.Distiller(student=engine.small_cnn(), teacher=engine.trained_cnn)
    with pytest.raises(ValueError, match=r"`temperature` must be a number > 0\. Received: temperature="):
        distiller.compile(temperature=temperature)


@pytest.mark.parametrize("alpha", [-0.1, 1.5, True])
def test_alpha_must_be_in_unit_interval(engine, alpha):
    distiller = tfc.Distiller(student=engine.small_cnn(), teacher=engine.trained_cnn)
    with pytest.raises(ValueError, match=r"`alpha` must be a number in \[0, 1\]\. Received: alpha="):
        distiller.compile(alpha=alpha)


def test_loss_argument_is_rejected(engine):
    distiller = tfc.Distiller(student=engine.small_cnn(), teacher=engine.trained_cnn)
    with pytest.raises(ValueError, match=r"takes `student_loss_fn` and `distillation_loss_fn`, not `loss`"):
        distiller.compile(loss="mse")


def test_mismatched_outputs(engine):
    keras = engine.keras
    student = keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Flatten(), keras.layers.Dense(5)])
    with pytest.raises(ValueError, match=r"teacher's outputs have shape \(10,\) but the student's have shape \(5,\)"):
        tfc.Distiller(student=student, teacher=engine.trained_cnn)


def test_mismatched_outputs_of_an_unbuilt_student_are_caught_at_the_first_step(engine, digits):
    keras = engine.keras
    (x, y), _ = digits
    unbuilt_student = keras.Sequential([keras.layers.Flatten(), keras.layers.Dense(3)])
    distiller = tfc.Distiller(student=unbuilt_student, teacher=engine.trained_cnn)
    distiller.compile()
    with pytest.raises(ValueError, match=r"teacher outputs 10 values per example but the student outputs 3"):
        distiller.fit(x[:32], y[:32], verbose=0)


def test_unbuilt_teacher(engine):
    keras = engine.keras
    teacher = keras.Sequential([keras.layers.Dense(10)])
    with pytest.raises(ValueError, match=r"`teacher` is not built"):
        tfc.Distiller(student=engine.small_cnn(), teacher=teacher)


def test_same_model_twice(engine):
    with pytest.raises(ValueError, match=r"are the same model"):
        tfc.Distiller(student=engine.trained_cnn, teacher=engine.trained_cnn)


def test_subclassed_teacher_and_sample_weights(engine, digits):
    keras = engine.keras
    class SubclassedTeacher(keras.Model):
        def __init__(self, wrapped):
            super().__init__()
            self.wrapped = wrapped

        def call(self, inputs):
            return self.wrapped(inputs)

    (x, y), _ = digits
    teacher = SubclassedTeacher(engine.trained_cnn)
    teacher(x[:1])
    distiller = _distiller(engine)
    distiller = tfc.Distiller(student=distiller.student, teacher=teacher)
    distiller.compile(alpha=ALPHA, temperature=TEMPERATURE)
    weights = np.r_[np.ones(32), np.zeros(32)]
    weighted = distiller.evaluate(x[:64], y[:64], sample_weight=weights, batch_size=64, verbose=0, return_dict=True)
    first_half = distiller.evaluate(x[:32], y[:32], batch_size=32, verbose=0, return_dict=True)
    # Keras's convention: weighted sum over the number of examples.
    assert weighted["loss"] == pytest.approx(first_half["loss"] / 2, rel=1e-4)


def test_multi_output_teacher(engine):
    keras = engine.keras
    inputs = keras.Input((8, 8, 1))
    flat = keras.layers.Flatten()(inputs)
    teacher = keras.Model(inputs, [keras.layers.Dense(10)(flat), keras.layers.Dense(10)(flat)])
    with pytest.raises(ValueError, match=r"`teacher` has 2 outputs; Distiller needs one output of logits"):
        tfc.Distiller(student=engine.small_cnn(), teacher=teacher)


def test_schedule_sets_alpha_and_temperature_every_epoch_and_logs_them(engine, digits):
    (x, y), _ = digits
    distiller = _distiller(engine)
    schedule = tfc.distill.DistillationSchedule(
        alpha=tfc.distill.linear(0.1, 0.5, epochs=3), temperature=lambda epoch: 4.0 / (epoch + 1)
    )
    history = distiller.fit(x[:128], y[:128], batch_size=64, epochs=3, callbacks=[schedule], verbose=0).history
    assert history["alpha"] == pytest.approx([0.1, 0.3, 0.5])
    assert history["temperature"] == pytest.approx([4.0, 2.0, 4.0 / 3.0])
    assert (distiller.alpha, distiller.temperature) == pytest.approx((0.5, 4.0 / 3.0))


def test_new_temperature_reaches_the_already_traced_train_step(engine, digits):
    (x, y), _ = digits
    x, y = x[:64], y[:64]
    distiller = _distiller(engine)
    distiller.fit(x, y, batch_size=64, epochs=1, shuffle=False, verbose=0)
    distiller.temperature, distiller.alpha = 1.5, 0.8
    _, expected_kl, expected_loss = _hand_computed_loss(engine.trained_cnn, distiller.student, x, y, 0.8, 1.5)
    logs = distiller.fit(x, y, batch_size=64, epochs=1, shuffle=False, verbose=0).history
    assert logs["distillation_loss"][0] == pytest.approx(expected_kl, rel=1e-4)
    assert logs["loss"][0] == pytest.approx(expected_loss, rel=1e-4)


def test_schedule_bad_values_and_bad_model(engine, digits):
    keras = engine.keras
    (x, y), _ = digits
    with pytest.raises(ValueError, match=r"needs `alpha`, `temperature` or both"):
        tfc.distill.DistillationSchedule()
    distiller = _distiller(engine)
    negative = tfc.distill.DistillationSchedule(temperature=lambda epoch: 2.0 - epoch)
    with pytest.raises(ValueError, match=r"temperature schedule gave a bad value at epoch 2: `temperature` must be"):
        distiller.fit(x[:64], y[:64], epochs=3, callbacks=[negative], verbose=0)
    plain = keras.models.clone_model(engine.trained_cnn)
    plain.compile(loss="mse")
    schedule = tfc.distill.DistillationSchedule(alpha=lambda epoch: 0.5)
    with pytest.raises(TypeError, match=r"the model being fit is a Sequential"):
        plain.fit(x[:8], np.zeros((8, 10)), callbacks=[schedule], verbose=0)
    with pytest.raises(ValueError, match=r"`epochs` must be a positive integer"):
        tfc.distill.linear(0.1, 0.5, epochs=0)
