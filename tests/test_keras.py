"""Keras 2 is selected once, and Keras 3 models or sessions get errors that say so."""

import os
import subprocess
import sys

import numpy as np
import pytest

import tfcompress as tfc
from tests.conftest import keras3_model, small_cnn
from tfcompress import _keras, keras


def _python(code):
    # A fresh interpreter, as a user's notebook starts: without the variable tfcompress set here.
    environment = {key: value for key, value in os.environ.items() if key != "TF_USE_LEGACY_KERAS"}
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, env=environment)


def test_keras_is_tf_keras_and_tensorflow_agrees():
    import tensorflow as tf

    assert keras.__name__ == "tf_keras"
    assert tf.keras.__name__.startswith("tf_keras")


@pytest.mark.slow
def test_tensorflow_imported_first_without_touching_keras_still_works():
    result = _python("import tensorflow as tf; import tfcompress; print(tf.keras.__name__)")
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip().startswith("tf_keras")


@pytest.mark.slow
def test_tensorflow_already_on_keras3_is_a_clear_error():
    result = _python("import tensorflow as tf; tf.keras.layers; import tfcompress")
    assert result.returncode != 0
    assert "imported with Keras 3 active before tfcompress" in result.stderr
    assert "TF_USE_LEGACY_KERAS" in result.stderr


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
    "export.verify": lambda model, other: tfc.export.verify("unused.tflite", model, np.zeros((1, 8, 8, 1))),
}


@pytest.mark.parametrize("entry_point", sorted(ENTRY_POINTS))
def test_keras3_model_is_named_as_such_by_every_entry_point(entry_point, keras2_model):
    with pytest.raises(TypeError, match=r"is a Keras 3 model .*need Keras 2 \(tf_keras\)"):
        ENTRY_POINTS[entry_point](keras3_model(), keras2_model)


@pytest.mark.parametrize("entry_point", sorted(ENTRY_POINTS))
def test_non_model_is_rejected_by_every_entry_point(entry_point, keras2_model):
    with pytest.raises(TypeError, match=r"must be a Keras model .*Received: .* of type str"):
        ENTRY_POINTS[entry_point]("model.h5", keras2_model)
