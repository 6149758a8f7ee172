"""Distillation methods beyond Hinton's, in both engines: DKD, several teachers, hints, attention transfer and hooks.

Each loss is checked against a numpy hand computation on a fixed batch, and each fit against
a frozen teacher.
"""

import numpy as np
import pytest

import tfcompress as tfc
from tests.conftest import small_cnn, weights_of
from tfcompress._keras import tf
from tfcompress._keras3 import keras_of

ALPHA, TEMPERATURE = 0.3, 4.0


def _log_softmax(logits):
    shifted = logits - logits.max(axis=-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))


def _softmax(logits):
    return np.exp(_log_softmax(logits))


def _kl(p, q):
    return (p * (np.log(p) - np.log(q))).sum(axis=-1)


def _predict(model, x):
    return model.predict(x, verbose=0).astype(np.float64)


def _fixed_batch(digits, size=64):
    (x, y), _ = digits
    return x[:size], y[:size]


def _compiled(student, teacher, teacher_weights=None, **compile_kwargs):
    keras = keras_of(student)
    distiller = tfc.Distiller(student=student, teacher=teacher, teacher_weights=teacher_weights)
    distiller.compile(
        optimizer=keras.optimizers.Adam(1e-2),
        metrics=compile_kwargs.pop("metrics", [keras.metrics.SparseCategoricalAccuracy()]),
        alpha=compile_kwargs.pop("alpha", ALPHA),
        temperature=compile_kwargs.pop("temperature", TEMPERATURE),
        **compile_kwargs,
    )
    return distiller


def _evaluate(distiller, x, y):
    return distiller.evaluate(x, y, batch_size=len(x), verbose=0, return_dict=True)


def _student(keras, seed=0, filters=4):
    keras.utils.set_random_seed(seed)
    return small_cnn(filters=filters, units=16, k=keras)


def _second_teacher(digits, keras):
    (x, y), _ = digits
    keras.utils.set_random_seed(1)
    teacher = small_cnn(filters=8, units=32, name="second_teacher", k=keras)
    teacher.compile(optimizer="adam", loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    teacher.fit(x, y, epochs=3, batch_size=64, verbose=0)
    return teacher


def test_decoupled_kd_equals_its_definition(engine, digits):
    keras = engine.keras
    trained_cnn = engine.trained_cnn
    x, y = _fixed_batch(digits)
    dkd = tfc.distill.DecoupledKD(alpha=1.0, beta=8.0)
    distiller = _compiled(_student(keras), trained_cnn, distillation_loss_fn=dkd)
    p_t = _softmax(_predict(trained_cnn, x) / TEMPERATURE)
    p_s = _softmax(_predict(distiller.student, x) / TEMPERATURE)
    rows = np.arange(len(y))
    # TCKD: KL between the binary (target, rest) distributions.
    b_t = np.stack([p_t[rows, y], 1 - p_t[rows, y]], axis=1)
    b_s = np.stack([p_s[rows, y], 1 - p_s[rows, y]], axis=1)
    # NCKD: KL between the distributions over the non-target classes, renormalised.
    mask = np.ones_like(p_t, dtype=bool)
    mask[rows, y] = False
    n_t = p_t[mask].reshape(len(y), -1)
    n_s = p_s[mask].reshape(len(y), -1)
    n_t, n_s = n_t / n_t.sum(1, keepdims=True), n_s / n_s.sum(1, keepdims=True)
    expected = ((1.0 * _kl(b_t, b_s) + 8.0 * _kl(n_t, n_s)) * TEMPERATURE**2).mean()

    logs = _evaluate(distiller, x, y)
    assert logs["distillation_loss"] == pytest.approx(expected, rel=1e-4)


def test_decoupled_kd_drops_the_factor_that_shrinks_classic_kds_non_target_term(engine, digits):
    keras = engine.keras
    trained_cnn = engine.trained_cnn
    # Classic KD = TCKD + (1 - p_target) * NCKD (the paper's Eq. 7); DKD with alpha=beta=1 drops
    # that factor, so it must exceed classic KD when the teacher is confident.
    x, y = _fixed_batch(digits)
    classic = _evaluate(_compiled(_student(keras), trained_cnn), x, y)["distillation_loss"]
    decoupled = _evaluate(
        _compiled(_student(keras), trained_cnn, distillation_loss_fn=tfc.distill.DecoupledKD(1.0, 1.0)), x, y
    )["distillation_loss"]
    assert decoupled > classic


def test_decoupled_kd_reads_one_hot_labels_too(engine, digits):
    keras = engine.keras
    trained_cnn = engine.trained_cnn
    x, y = _fixed_batch(digits)
    dkd = tfc.distill.DecoupledKD()
    sparse = _compiled(_student(keras), trained_cnn, distillation_loss_fn=dkd)
    one_hot = _compiled(
        _student(keras),
        trained_cnn,
        distillation_loss_fn=dkd,
        student_loss_fn=keras.losses.CategoricalCrossentropy(from_logits=True),
        metrics=[keras.metrics.CategoricalAccuracy()],
    )
    sparse_loss = _evaluate(sparse, x, y)["distillation_loss"]
    one_hot_loss = _evaluate(one_hot, x, np.eye(10, dtype=np.float32)[y])["distillation_loss"]
    assert one_hot_loss == pytest.approx(sparse_loss, rel=1e-5)


@pytest.mark.slow
def test_several_teachers_distill_their_weighted_average_soft_targets(engine, digits):
    keras = engine.keras
    trained_cnn = engine.trained_cnn
    x, y = _fixed_batch(digits)
    second = _second_teacher(digits, keras)
    distiller = _compiled(_student(keras), [trained_cnn, second], teacher_weights=[3, 1])
    fused = 0.75 * _softmax(_predict(trained_cnn, x) / TEMPERATURE) + 0.25 * _softmax(_predict(second, x) / TEMPERATURE)
    student = _softmax(_predict(distiller.student, x) / TEMPERATURE)
    expected = (_kl(fused, student) * TEMPERATURE**2).mean()

    assert _evaluate(distiller, x, y)["distillation_loss"] == pytest.approx(expected, rel=1e-4)
    assert distiller.teacher == [trained_cnn, second]

    before = [weights_of(trained_cnn), weights_of(second)]
    distiller.fit(x, y, batch_size=32, epochs=1, verbose=0)
    for teacher, old in zip([trained_cnn, second], before):
        for a, b in zip(old, weights_of(teacher)):
            np.testing.assert_array_equal(a, b)


def _functional_student(keras, seed=0):
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((8, 8, 1))
    features = keras.layers.Conv2D(4, 3, padding="same", activation="relu", name="student_conv")(inputs)
    hidden = keras.layers.Flatten()(keras.layers.MaxPooling2D()(features))
    return keras.Model(inputs, keras.layers.Dense(10, name="student_logits")(hidden), name="student")


def test_hint_loss_equals_hand_computation_through_the_adapter(engine, digits):
    keras = engine.keras
    trained_cnn = engine.trained_cnn
    x, y = _fixed_batch(digits)
    teacher_conv = trained_cnn.layers[0].name
    hint = tfc.distill.Hint("student_conv", teacher_conv, weight=0.5)
    distiller = _compiled(_functional_student(keras), trained_cnn, feature_losses=[hint])
    adapter = distiller._adapters[hint.name]
    kernel, bias = (np.asarray(weight, np.float64) for weight in adapter.get_weights())

    student_feature = keras.Model(distiller.student.inputs, distiller.student.get_layer("student_conv").output)
    teacher_feature = keras.Model(trained_cnn.inputs, trained_cnn.layers[0].output)
    adapted = np.einsum("bhwc,cd->bhwd", _predict(student_feature, x), kernel[0, 0]) + bias
    expected_hint = ((adapted - _predict(teacher_feature, x)) ** 2).mean()

    logs = _evaluate(distiller, x, y)
    assert logs["student_conv_hint"] == pytest.approx(expected_hint, rel=1e-4)
    assert logs["loss"] == pytest.approx(
        ALPHA * logs["student_loss"] + (1 - ALPHA) * logs["distillation_loss"] + 0.5 * expected_hint, rel=1e-4
    )


def test_hint_training_moves_student_and_adapter_and_never_the_teacher(engine, digits):
    keras = engine.keras
    trained_cnn = engine.trained_cnn
    (x, y), _ = digits
    hint = tfc.distill.Hint("student_conv", trained_cnn.layers[0].name)
    distiller = _compiled(_functional_student(keras), trained_cnn, feature_losses=[hint])
    student_params = distiller.student.count_params()
    adapter_before = weights_of(distiller._adapters[hint.name])
    teacher_before = weights_of(trained_cnn)

    history = distiller.fit(x[:512], y[:512], batch_size=64, epochs=3, verbose=0).history

    assert history["student_conv_hint"][-1] < history["student_conv_hint"][0]
    assert any(not np.array_equal(a, b) for a, b in zip(adapter_before, weights_of(distiller._adapters[hint.name])))
    for a, b in zip(teacher_before, weights_of(trained_cnn)):
        np.testing.assert_array_equal(a, b)
    # The adapter helps training only; the student to ship is unchanged in size.
    assert distiller.student.count_params() == student_params


def test_attention_transfer_equals_hand_computation(engine, digits):
    keras = engine.keras
    trained_cnn = engine.trained_cnn
    x, y = _fixed_batch(digits)
    transfer = tfc.distill.AttentionTransfer("student_conv", trained_cnn.layers[0].name, weight=100.0)
    distiller = _compiled(_functional_student(keras), trained_cnn, feature_losses=[transfer])

    def attention(feature):
        energy = (feature**2).mean(axis=-1).reshape(len(feature), -1)
        return energy / np.linalg.norm(energy, axis=-1, keepdims=True)

    student_feature = keras.Model(distiller.student.inputs, distiller.student.get_layer("student_conv").output)
    teacher_feature = keras.Model(trained_cnn.inputs, trained_cnn.layers[0].output)
    expected = ((attention(_predict(student_feature, x)) - attention(_predict(teacher_feature, x))) ** 2).mean()

    logs = _evaluate(distiller, x, y)
    assert logs["student_conv_attention"] == pytest.approx(expected, rel=1e-4)
    assert distiller._adapters == {}


def test_custom_feature_loss_and_extra_loss_hooks_are_added_and_logged(engine, digits):
    keras = engine.keras
    trained_cnn = engine.trained_cnn
    x, y = _fixed_batch(digits)

    def logit_norm(batch):
        return 0.01 * tf.reduce_sum(tf.square(batch.student_logits), axis=-1)

    def mean_gap(student_feature, teacher_feature):
        return tf.abs(tf.reduce_mean(student_feature) - tf.reduce_mean(teacher_feature))

    feature = tfc.distill.FeatureLoss("student_conv", trained_cnn.layers[0].name, fn=mean_gap, weight=2.0, name="gap")
    distiller = _compiled(_functional_student(keras), trained_cnn, feature_losses=[feature], extra_losses=logit_norm)

    student_feature = keras.Model(distiller.student.inputs, distiller.student.get_layer("student_conv").output)
    teacher_feature = keras.Model(trained_cnn.inputs, trained_cnn.layers[0].output)
    expected_gap = abs(_predict(student_feature, x).mean() - _predict(teacher_feature, x).mean())
    expected_norm = 0.01 * (_predict(distiller.student, x) ** 2).sum(axis=-1).mean()

    logs = _evaluate(distiller, x, y)
    assert logs["gap"] == pytest.approx(expected_gap, rel=1e-4)
    assert logs["logit_norm"] == pytest.approx(expected_norm, rel=1e-4)
    assert logs["loss"] == pytest.approx(
        ALPHA * logs["student_loss"] + (1 - ALPHA) * logs["distillation_loss"] + 2.0 * expected_gap + expected_norm,
        rel=1e-4,
    )


def test_extra_loss_hook_sees_the_fused_teacher_and_the_temperature(engine, digits):
    keras = engine.keras
    trained_cnn = engine.trained_cnn
    x, y = _fixed_batch(digits)
    seen = {}

    def spy(batch):
        seen["temperature"] = batch.temperature
        return tf.reduce_mean(batch.teacher_logits) * 0.0

    distiller = _compiled(_student(keras), trained_cnn, extra_losses={"spy": spy})
    assert _evaluate(distiller, x, y)["spy"] == 0.0
    assert "temperature" in seen


@pytest.mark.parametrize(
    "make_loss, message",
    [
        (lambda t: tfc.distill.Hint("no_such_layer", t), "student has no layer named 'no_such_layer'"),
        (lambda t: tfc.distill.Hint("student_conv", "nope"), "teacher has no layer named 'nope'"),
        # The teacher's flattened features are not a feature map of the same resolution.
        (lambda t: tfc.distill.AttentionTransfer("student_conv", "flat"), "same H and W"),
        (lambda t: tfc.distill.Hint("student_conv", "flat"), "pick layers at the same resolution"),
    ],
)
def test_feature_losses_on_wrong_layers_are_named(engine, digits, make_loss, message):
    keras = engine.keras
    keras.utils.set_random_seed(0)
    inputs = keras.Input((8, 8, 1))
    hidden = keras.layers.Conv2D(8, 3, padding="same", name="teacher_conv")(inputs)
    teacher = keras.Model(inputs, keras.layers.Dense(10)(keras.layers.Flatten(name="flat")(hidden)))
    distiller = tfc.Distiller(student=_functional_student(keras), teacher=teacher)
    with pytest.raises(ValueError, match=message):
        distiller.compile(optimizer="adam", feature_losses=[make_loss("teacher_conv")])


def test_bad_method_arguments_are_named(engine, digits):
    keras = engine.keras
    trained_cnn = engine.trained_cnn
    second = _second_teacher(digits, keras)
    with pytest.raises(ValueError, match="2 entries for 3 teachers"):
        tfc.Distiller(student=_student(keras), teacher=[trained_cnn, second, trained_cnn], teacher_weights=[1, 2])
    with pytest.raises(ValueError, match="must not all be zero"):
        tfc.Distiller(student=_student(keras), teacher=[trained_cnn, second], teacher_weights=[0, 0])
    with pytest.raises(ValueError, match="need one teacher"):
        tfc.Distiller(student=_functional_student(keras), teacher=[trained_cnn, second]).compile(
            feature_losses=[tfc.distill.Hint("student_conv", "x")]
        )
    distiller = tfc.Distiller(student=_functional_student(keras), teacher=trained_cnn)
    with pytest.raises(TypeError, match="FeatureLoss"):
        distiller.compile(alpha=0.9, feature_losses=["student_conv"])
    assert distiller.alpha == pytest.approx(0.1)  # a rejected compile changes nothing
    with pytest.raises(TypeError, match="extra_losses"):
        distiller.compile(extra_losses=[lambda batch: 0.0])
    with pytest.raises(ValueError, match="logged twice"):
        distiller.compile(extra_losses={"student_loss": lambda batch: 0.0})
    with pytest.raises(ValueError, match="beta"):
        tfc.distill.DecoupledKD(beta=-1)
    with pytest.raises(ValueError, match="adapter"):
        tfc.distill.Hint("a", "b", adapter="yes")
    subclassed = tfc.Distiller(student=_subclassed_student(keras), teacher=trained_cnn)
    with pytest.raises(ValueError, match="functional or Sequential"):
        subclassed.compile(feature_losses=[tfc.distill.Hint("dense", trained_cnn.layers[0].name)])


def _subclassed_student(keras):
    class Student(keras.Model):
        def __init__(self):
            super().__init__()
            self.flatten = keras.layers.Flatten()
            self.dense = keras.layers.Dense(10, name="dense")

        def call(self, inputs):
            return self.dense(self.flatten(inputs))

    return Student()
