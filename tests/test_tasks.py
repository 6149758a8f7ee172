"""Every task users train: each output's task told apart, its labels read as users hold them, its own measures.

The models are small CNNs trained on scikit-learn's real digits for a binary question (is
it odd?), three yes/no labels, and a regression (the digit's value over 9). Every figure
`verify` and accuracy control report is checked against one computed here from the raw
outputs of LiteRT and Keras.
"""

import numpy as np
import pytest

import tfcompress as tfc
from tfcompress import _model_files, _tasks, keras


def _labels(y):
    return {
        "binary": (y % 2).astype(np.float32),
        "multilabel": np.stack([y % 2, y >= 5, np.isin(y, (0, 6, 8, 9))], -1).astype(np.float32),
        "regression": (y / 9.0).astype(np.float32),
    }


def _cnn(units, activation=None):
    return keras.Sequential(
        [
            keras.Input((8, 8, 1)),
            keras.layers.Conv2D(8, 3, padding="same", activation="relu"),
            keras.layers.Flatten(),
            keras.layers.Dense(32, activation="relu"),
            keras.layers.Dense(units, activation=activation, name="head"),
        ]
    )


_HEADS = {  # task -> (units, activation, loss)
    "binary": (1, None, keras.losses.BinaryCrossentropy(from_logits=True)),
    "binary_sigmoid": (1, "sigmoid", keras.losses.BinaryCrossentropy()),
    "multilabel": (3, None, keras.losses.BinaryCrossentropy(from_logits=True)),
    "regression": (1, None, keras.losses.MeanSquaredError()),
}


@pytest.fixture(scope="module")
def trained(digits):
    """Each head trained 5 epochs on the digits, compiled as its user compiled it."""
    (x_train, y_train), _ = digits
    models = {}
    for name, (units, activation, loss) in _HEADS.items():
        keras.utils.set_random_seed(0)
        model = _cnn(units, activation)
        model.compile(optimizer=keras.optimizers.Adam(2e-3), loss=loss)
        model.fit(x_train, _labels(y_train)[name.split("_")[0]], epochs=5, batch_size=32, verbose=0)
        models[name] = model
    return models


def _sigmoid(values):
    return 1 / (1 + np.exp(-values))


@pytest.mark.parametrize(
    "units, activation, loss, labels, kind, logits",
    [
        (10, None, None, None, "multiclass", True),
        (10, "softmax", None, None, "multiclass", False),
        (1, "sigmoid", None, None, "binary", False),
        (4, "sigmoid", None, None, "multilabel", False),
        (1, None, keras.losses.BinaryCrossentropy(from_logits=True), None, "binary", True),
        (3, None, "binary_crossentropy", None, "multilabel", True),
        (1, None, "mse", None, "regression", False),
        (1, "relu", None, None, "regression", False),
        (1, None, None, [0.0, 1.0, 1.0], "binary", True),
        (1, None, None, [0.25, 1.0, 3.0], "regression", False),
        (3, None, None, [[0, 1, 1], [1, 0, 0]], "multilabel", True),
        (3, None, None, [[0, 1, 0], [1, 0, 0]], "multiclass", True),
        (3, None, None, [[0.5, 2.0, 1.0], [1.0, 0.0, 0.0]], "regression", False),
    ],
)
def test_the_task_is_told_by_the_loss_the_head_or_the_labels(units, activation, loss, labels, kind, logits):
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(units, activation=activation)])
    if loss is not None:
        model.compile(optimizer="adam", loss=loss)
    task = _tasks.infer(model, labels=None if labels is None else np.array(labels))
    assert (task.kind, task.logits) == (kind, logits)


def test_a_keras3_file_keeps_the_loss_it_was_compiled_with_for_its_task(tmp_path):
    import keras as keras3

    model = keras3.Sequential([keras3.Input((4,)), keras3.layers.Dense(1)])
    model.compile(optimizer="adam", loss=keras3.losses.BinaryCrossentropy(from_logits=True))
    model.save(tmp_path / "tutorial.keras")
    loaded = _model_files.load(tmp_path / "tutorial.keras")  # by Keras 3, uncompiled: the file says the loss
    assert isinstance(loaded, keras3.Model) and loaded.loss is None and _tasks.infer(loaded).kind == "binary"
    assert _tasks.infer(tfc.from_keras3(model)).kind == "binary"  # an object too


@pytest.mark.parametrize(
    "task, y, expected",
    [
        ("multiclass", [[0, 0, 1], [1, 0, 0]], [2, 0]),  # one-hot, read by argmax
        ("multiclass", [[2], [0]], [2, 0]),
        ("binary", [True, False], [[1.0], [0.0]]),
        ("binary", [[1], [0]], [[1.0], [0.0]]),
        ("regression", [0.5, -2.0], [[0.5], [-2.0]]),
    ],
)
def test_labels_as_users_hold_them(task, y, expected):
    units = 3 if task == "multiclass" else 1
    np.testing.assert_array_equal(_tasks.Task(task).labels(np.array(y), (units,)), np.array(expected))


def test_each_tasks_measures_are_those_computed_by_hand():
    keras_out = np.array([[0.4], [-1.0], [2.0], [-0.1]])
    tflite_out = np.array([[0.3], [0.2], [1.5], [-0.2]])
    labels = np.array([[1.0], [0.0], [0.0], [1.0]])
    binary = _tasks.Task("binary")
    assert binary.compare(tflite_out, keras_out)["agreement"] == 0.75  # the second changes side
    assert binary.score(keras_out, labels) == {"accuracy": 0.5}  # right on the first and second
    probabilities = _tasks.Task("binary", logits=False)
    assert probabilities.score(np.array([[0.6], [0.4]]), np.array([[1.0], [1.0]])) == {"accuracy": 0.5}
    multilabel = _tasks.Task("multilabel")
    figures = multilabel.compare(np.array([[1.0, -1.0], [1.0, 1.0]]), np.array([[1.0, -1.0], [1.0, -1.0]]))
    assert figures["agreement"] == 0.75 and figures["exact_match_agreement"] == 0.5
    regression = _tasks.Task("regression", logits=False)
    figures = regression.compare(tflite_out, keras_out)
    assert figures["agreement"] is None and figures["top1_agreement"] is None
    difference, magnitude = np.mean(np.abs(tflite_out - keras_out)), np.mean(np.abs(keras_out))
    assert figures["relative_error"] == pytest.approx(difference / magnitude)
    assert regression.score(keras_out, labels) == pytest.approx(
        {"mae": np.mean(np.abs(keras_out - labels)), "rmse": np.sqrt(np.mean((keras_out - labels) ** 2))}
    )
    assert regression.drop(0.10, 0.11) == pytest.approx(0.1) and binary.drop(0.9, 0.88) == pytest.approx(0.02)


@pytest.mark.parametrize("name", sorted(_HEADS))
def test_verify_measures_each_task_as_computed_by_hand(name, trained, digits, tmp_path):
    (x_train, _), (x_test, y_test) = digits
    model, kind = trained[name], name.split("_")[0]
    path = tfc.export.to_tflite(model, tmp_path / "m.tflite", representative_data=x_train[:300]).path
    labels = _labels(y_test)[kind]
    check = tfc.litert.verify(path, model, x_test, labels)
    keras_out = model.predict(x_test, verbose=0)
    tflite_out = tfc.litert.LiteRTModel(path).predict(x_test)
    assert check["task"] == kind and check["top1_agreement"] is None
    if kind == "regression":
        assert check["agreement"] is None and check["keras_accuracy"] is None and check["tflite_accuracy"] is None
        assert check["keras_mae"] == pytest.approx(np.mean(np.abs(keras_out[:, 0] - labels)), rel=1e-5)
        assert check["tflite_mae"] == pytest.approx(np.mean(np.abs(tflite_out[:, 0] - labels)), rel=1e-5)
        assert check["keras_mae"] < 0.1 and check["relative_error"] < 0.05  # learned, and int8 keeps it
        return
    threshold = 0.5 if name == "binary_sigmoid" else 0.0
    keras_yes, tflite_yes = keras_out > threshold, tflite_out > threshold
    truth = (labels >= 0.5).reshape(keras_yes.shape)
    assert check["agreement"] == pytest.approx(np.mean(keras_yes == tflite_yes))
    assert check["keras_accuracy"] == pytest.approx(np.mean(keras_yes == truth))
    assert check["tflite_accuracy"] == pytest.approx(np.mean(tflite_yes == truth))
    assert check["keras_accuracy"] > 0.85 and check["agreement"] >= 0.97
    if kind == "multilabel":
        assert check["keras_exact_match"] == pytest.approx(np.mean(np.all(keras_yes == truth, axis=-1)))


def test_binary_argmax_of_one_logit_is_never_reported(trained, digits, tmp_path):
    # The figure the issue found: argmax of one logit is always 0, an accuracy of the share of zeros.
    (x_train, _), (x_test, y_test) = digits
    model = trained["binary"]
    path = tfc.export.to_tflite(model, tmp_path / "m.tflite", representative_data=x_train[:300]).path
    check = tfc.litert.verify(path, model, x_test, (y_test % 2).astype(np.float32))
    share_of_zeros = float(np.mean(y_test % 2 == 0))
    assert check["keras_accuracy"] != pytest.approx(share_of_zeros) and check["keras_accuracy"] > 0.85


@pytest.mark.parametrize("name", ["binary", "regression"])
def test_accuracy_control_measures_the_tasks_own_figure(name, trained, digits, tmp_path):
    (x_train, _), (x_test, y_test) = digits
    model, labels = trained[name], _labels(y_test)[name]
    result = tfc.export.with_accuracy_control(
        model, tmp_path / "m.tflite", representative_data=x_train[:300],
        validation_data=(x_test, labels), max_accuracy_drop=0.02,
    )  # fmt: skip
    control = result.accuracy_control
    assert control.task == name and control.measure == ("mae" if name == "regression" else "accuracy")
    chosen = control.chosen
    outputs = tfc.litert.LiteRTModel(result.path).predict(x_test)[:, 0]
    keras_outputs = model.predict(x_test, verbose=0)[:, 0]
    if name == "regression":
        mae, float_mae = np.mean(np.abs(outputs - labels)), np.mean(np.abs(keras_outputs - labels))
        assert chosen["score"] == pytest.approx(mae, rel=1e-5) and control.float_score == pytest.approx(float_mae)
        assert chosen["accuracy_drop"] == pytest.approx((mae - float_mae) / float_mae, rel=1e-4)
        assert chosen["agreement"] is None and control.float_accuracy is None
    else:
        assert chosen["score"] == pytest.approx(np.mean((outputs > 0) == (labels > 0.5)))
        assert chosen["agreement"] == pytest.approx(np.mean((outputs > 0) == (keras_outputs > 0)))
    assert chosen["met"] and chosen["accuracy_drop"] <= 0.02


def test_a_regression_has_no_agreement_to_hold(trained, digits, tmp_path):
    (x_train, _), (x_test, y_test) = digits
    with pytest.raises(ValueError, match=r"`min_agreement` counts decisions .* a regression, which decides nothing"):
        tfc.export.with_accuracy_control(trained["regression"], tmp_path / "m.tflite",
                                         representative_data=x_train[:100],
                                         validation_data=x_test, min_agreement=0.99)  # fmt: skip


@pytest.mark.parametrize("name", ["binary", "binary_sigmoid", "multilabel"])
def test_android_bundle_shows_a_score_per_label_integer_only(name, trained, digits, tmp_path):
    (x_train, _), (x_test, _) = digits
    path = tfc.export.to_tflite(trained[name], tmp_path / "m.tflite", representative_data=x_train[:300]).path
    labels = ["even", "odd"] if name.startswith("binary") else ["odd", "five or more", "has a loop"]
    bundle = tfc.export.android_bundle(path, tmp_path / "android", labels=labels,
                                       task="multilabel" if name == "multilabel" else None)  # fmt: skip
    report = tfc.litert.inspect(bundle["model"])
    assert report["outputs"][0]["shape"] == [1, len(labels)] and report["outputs"][0]["dtype"] == "uint8"
    assert not report["float_ops"] and not report["undelegated_compute_ops"]
    raw = tfc.litert.LiteRTModel(path).predict(x_test)
    scores = tfc.litert.LiteRTModel(bundle["model"]).predict(np.repeat(x_test, 3, axis=-1))  # RGB, R = G = B
    probability = raw if name == "binary_sigmoid" else _sigmoid(raw)
    expected = np.concatenate([1 - probability, probability], -1) if name.startswith("binary") else probability
    np.testing.assert_allclose(scores, expected, atol=2 / 256)  # the sigmoid's int8 step, and its rounding
    packed = tfc.export.read_metadata(bundle["model"])["files"]["labels.txt"]
    assert packed == "".join(f"{label}\n" for label in labels).encode()


def test_a_binary_bundle_needs_two_labels_and_a_regression_none(trained, digits, tmp_path):
    (x_train, _), _ = digits
    path = tfc.export.to_tflite(trained["binary"], tmp_path / "m.tflite", representative_data=x_train[:100]).path
    with pytest.raises(ValueError, match=r"pass two labels, \[negative, positive\]"):
        tfc.export.android_bundle(path, tmp_path / "android", labels=["odd"])
    with pytest.raises(ValueError, match="a regression output has none"):
        tfc.export.android_bundle(path, tmp_path / "android", labels=["value"], task="regression")
    assert not (tmp_path / "android").exists()
