"""The whole path on tiny models: distill, prune, QAT, export int8, run it in LiteRT."""

import math

import numpy as np

import tfcompress as tfc
from tests.conftest import compile_classifier, small_cnn
from tfcompress import keras


def test_distill_prune_qat_export_and_run_in_litert(trained_cnn, digits, tmp_path):
    (x_train, y_train), (x_test, y_test) = digits
    keras.utils.set_random_seed(0)
    student = small_cnn(filters=8, units=32, name="student")
    distiller = tfc.Distiller(student=student, teacher=trained_cnn)
    distiller.compile(optimizer=keras.optimizers.Adam(3e-3), metrics=["accuracy"], alpha=0.1, temperature=4)
    distiller.fit(x_train, y_train, batch_size=32, epochs=5, verbose=0)

    steps = math.ceil(len(x_train) / 32)
    pruning = compile_classifier(tfc.prune.magnitude(student, 0.5, epochs=2, steps_per_epoch=steps))
    pruning.fit(x_train, y_train, batch_size=32, epochs=3, callbacks=tfc.prune.callbacks(), verbose=0)
    pruned = tfc.prune.strip(pruning)

    quantization_aware = compile_classifier(tfc.quantize.qat(pruned), learning_rate=1e-4)
    quantization_aware.fit(x_train, y_train, batch_size=32, epochs=1, verbose=0)
    result = tfc.export.to_tflite(quantization_aware, tmp_path / "student.tflite")

    runner = tfc.litert.LiteRTModel(result.path)
    tflite_predictions = np.argmax(runner.predict(x_test), axis=-1)
    keras_predictions = np.argmax(quantization_aware.predict(x_test, verbose=0), axis=-1)
    assert result.input_dtype == "uint8"
    assert np.mean(tflite_predictions == keras_predictions) >= 0.98
    assert np.mean(tflite_predictions == y_test) > 0.85
    assert tfc.prune.sparsity(quantization_aware)["sparsity"] > 0.45
