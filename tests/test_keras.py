"""tfcompress beside the user's Keras: `tf.keras` stays what it was; Keras 3 models are rebuilt, said once."""

import os
import subprocess
import sys
import warnings

import numpy as np
import pytest

import tfcompress as tfc
from tests.conftest import keras3_model, small_cnn
from tfcompress import _keras, keras


def _python(code, **environment):
    # A fresh interpreter, as a user's notebook starts.
    environment = {**{key: value for key, value in os.environ.items() if key != "TF_USE_LEGACY_KERAS"}, **environment}
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, env=environment)


def test_the_keras2_engine_names_tf_keras_and_leaves_tf_keras_to_the_user():
    import tensorflow as tf

    assert keras.__name__ == "tf_keras"
    assert tf.keras.version().startswith("3.") and "TF_USE_LEGACY_KERAS" not in os.environ


# A notebook's cells in three orders: tf.keras used before tfcompress, after it, and with Keras 2 asked for.
# TF-MOT's import is where tf.keras could switch: pruning loads it, and the export converts the tf_keras model.
_PRUNE_AND_EXPORT = (
    "import os, tensorflow as tf, tfcompress as tfc; from tfcompress import keras;"
    "m = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)]);"
    "p = tfc.prune.magnitude(m, 0.5, end_step=2);"
    "tfc.export.to_tflite(tfc.prune.strip(p), os.path.join({folder!r}, 'm.tflite'), mode='float32');"
    "print(tf.keras.__name__, os.environ.get('TF_USE_LEGACY_KERAS'))"
)


@pytest.mark.slow
@pytest.mark.parametrize(
    "first, environment, expected",
    [
        ("import tensorflow as tf; tf.keras.layers.Dense(1);", {}, "keras."),
        ("import tfcompress;", {}, "keras."),
        ("", {"TF_USE_LEGACY_KERAS": "1"}, "tf_keras."),
    ],
    ids=["tf.keras used first", "tfcompress imported first", "Keras 2 asked for"],
)
def test_any_import_order_works_and_tf_keras_stays_as_it_was(first, environment, expected, tmp_path):
    result = _python(first + _PRUNE_AND_EXPORT.format(folder=str(tmp_path)), **environment)
    assert result.returncode == 0, result.stderr[-2000:]
    module, variable = result.stdout.split()[-2:]
    assert module.startswith(expected) and variable == environment.get("TF_USE_LEGACY_KERAS", "None")
    assert (tmp_path / "m.tflite").stat().st_size > 0


# The models a Keras 3 user trains (a QAT model, a pruning model, a Distiller), loaded in a new notebook.
_LOAD_AND_COMPARE = (
    "import numpy as np, os; os.chdir({folder!r}); x = np.load('x.npy');"
    "print(max(float(np.max(np.abs(load(f'{{name}}.keras').predict(x, verbose=0) - np.load(f'{{name}}.npy'))))"
    "          for name in ('qat', 'pruned', 'distiller')))"
)


@pytest.mark.slow
@pytest.mark.parametrize(
    "first",
    [
        "import keras, tfcompress; load = keras.models.load_model;",
        "import tfcompress as tfc, keras; tfc.quantize.quantize_scope().__enter__(); load = keras.models.load_model;",
    ],
    ids=["Keras imported first", "tfcompress imported first, in quantize_scope"],
)
def test_keras3_models_in_training_load_in_a_new_process_to_the_same_outputs(first, tmp_path):
    x = np.random.default_rng(0).random((16, 8, 8, 1)).astype("float32")
    np.save(tmp_path / "x.npy", x)
    models = {
        "qat": tfc.quantize.qat(keras3_model(), representative_data=x),
        "pruned": tfc.prune.magnitude(keras3_model(), 0.5, end_step=2),
        "distiller": tfc.Distiller(student=keras3_model(), teacher=keras3_model()),
    }
    for name, model in models.items():
        model.save(tmp_path / f"{name}.keras")
        np.save(tmp_path / f"{name}.npy", model.predict(x, verbose=0))
    result = _python(first + _LOAD_AND_COMPARE.format(folder=str(tmp_path)))
    assert result.returncode == 0, result.stderr[-2000:]
    assert float(result.stdout.split()[-1]) < 1e-6


@pytest.mark.parametrize(
    "tensorflow_version, tf_keras_version, message",
    [
        ("2.21.0", "2.20.1", r"pip install 'tf-keras~=2\.21\.0'"),
        ("2.19.0", "2.21.0", r"pip install 'tf-keras~=2\.19\.0'"),
        ("2.15.1", "2.15.0", r"needs TensorFlow >= 2\.16"),
    ],
)
def test_version_mismatch_names_the_fix(tensorflow_version, tf_keras_version, message):
    with pytest.raises(ImportError, match=message):
        _keras.check_versions(tensorflow_version, tf_keras_version)


def test_matching_versions_pass():
    _keras.check_versions("2.21.0", "2.21.0")
    _keras.check_versions("2.19.1", "2.19.0")


@pytest.fixture(scope="module")
def keras2_model():
    return small_cnn()


ENTRY_POINTS = {
    "Distiller(student=)": lambda model, other: tfc.Distiller(student=model, teacher=other),
    "Distiller(teacher=)": lambda model, other: tfc.Distiller(student=other, teacher=model),
    "prune.magnitude": lambda model, other: tfc.prune.magnitude(model, 0.5, end_step=10),
    "prune.strip": lambda model, other: tfc.prune.strip(model),
    "prune.sparsity": lambda model, other: tfc.prune.sparsity(model),
    "quantize.qat": lambda model, other: tfc.quantize.qat(model),
    "export.to_tflite": lambda model, other: tfc.export.to_tflite(model, "unused.tflite", mode="float32"),
    "export.verify": lambda model, other: tfc.litert.verify("unused.tflite", model, np.zeros((1, 8, 8, 1))),
}


# The entry points that work in tf_keras alone (TF-MOT's clustering): each returns a model that holds the Keras 3
# model's weights, now in Keras 2.
KERAS3_REBUILT = {
    "quantize.cluster": lambda model, tmp: tfc.quantize.strip_clustering(tfc.quantize.cluster(model, 4)),
}


@pytest.mark.parametrize("entry_point", sorted(KERAS3_REBUILT))
def test_a_keras3_model_is_rebuilt_by_the_tf_keras_entry_points_said_once_and_kept(entry_point, tmp_path):
    model = keras3_model()
    weights = [np.array(weight) for weight in model.get_weights()]
    with pytest.warns(UserWarning, match=r"is a Keras 3 model; .* rebuilt with tfc\.from_keras3"):
        result = KERAS3_REBUILT[entry_point](model, tmp_path)
    assert isinstance(result, keras.Model)
    assert result.count_params() == model.count_params() and result.output_shape == model.output_shape
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # said once: the same model again passes quietly
        KERAS3_REBUILT[entry_point](model, tmp_path)
    for before, after in zip(weights, model.get_weights()):
        np.testing.assert_array_equal(before, np.array(after))


# The entry points of the Keras 3 engine: each returns what it made from the model, in Keras 3 or as a file.
KERAS3_NATIVE = {
    "Distiller": lambda model, tmp: tfc.Distiller(student=model, teacher=keras3_model()),
    "prune.magnitude": lambda model, tmp: tfc.prune.magnitude(model, 0.5, end_step=10),
    "prune.strip": lambda model, tmp: tfc.prune.strip(tfc.prune.magnitude(model, 0.5, end_step=10)),
    "prune.sparsity": lambda model, tmp: tfc.prune.sparsity(model),
    "prune.channels": lambda model, tmp: tfc.prune.channels(model, 0.0),
    "prune.cost": lambda model, tmp: tfc.prune.cost(model),
    "prune.sensitivity": lambda model, tmp: tfc.prune.sensitivity(
        model, (np.random.default_rng(0).random((20, 8, 8, 1)), np.arange(20) % 10), ratios=(0.5,)
    ),
    "quantize.qat": lambda model, tmp: tfc.quantize.qat(model),
    "export.to_tflite": lambda model, tmp: tfc.export.to_tflite(model, tmp / "m.tflite", mode="float32"),
    "export.verify": lambda model, tmp: tfc.litert.verify(
        tfc.export.to_tflite(model, tmp / "m.tflite", mode="float32").path, model,
        np.random.default_rng(0).random((20, 8, 8, 1)),
    ),
}


@pytest.mark.parametrize("entry_point", sorted(KERAS3_NATIVE))
def test_a_keras3_model_stays_keras3_through_the_keras3_engine_and_is_kept(entry_point, tmp_path):
    import keras as keras3

    model = keras3_model()
    weights = [np.array(weight) for weight in model.get_weights()]
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)  # nothing rebuilt, nothing to say
        result = KERAS3_NATIVE[entry_point](model, tmp_path)
    if hasattr(result, "layers"):
        assert isinstance(result, keras3.Model)
    elif isinstance(result, dict) and "agreement" in result:
        assert result["agreement"] == 1.0 and result["max_abs_error"] < 1e-5
    for before, after in zip(weights, model.get_weights()):
        np.testing.assert_array_equal(before, np.array(after))


@pytest.mark.parametrize("entry_point", sorted(ENTRY_POINTS))
def test_non_model_is_rejected_by_every_entry_point(entry_point, keras2_model):
    with pytest.raises(TypeError, match=r"must be a Keras model .*Received: .* of type str"):
        ENTRY_POINTS[entry_point]("model.h5", keras2_model)
