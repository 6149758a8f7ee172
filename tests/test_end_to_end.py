"""The whole path on tiny models, in both engines: distill, prune, QAT, export int8, run it in LiteRT.

In Keras 3 (README's four steps as a Keras 3 user writes them), every model that comes back is a
Keras 3 model that `keras.models.load_model` gives back with the same outputs.
"""

import math

import numpy as np

import tfcompress as tfc
from tests.conftest import compile_classifier


def test_distill_prune_qat_export_and_run_in_litert(engine, digits, tmp_path):
    keras = engine.keras
    (x_train, y_train), (x_test, y_test) = digits
    keras.utils.set_random_seed(0)
    student = engine.small_cnn(filters=8, units=32, name="student")
    distiller = tfc.Distiller(student=student, teacher=engine.trained_cnn)
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
    assert result.input_dtype == "uint8" and not tfc.litert.inspect(result.path)["float_ops"]
    assert np.mean(tflite_predictions == keras_predictions) >= 0.98
    assert np.mean(tflite_predictions == y_test) > 0.85
    assert tfc.prune.sparsity(quantization_aware)["sparsity"] > 0.45  # the zeros held through QAT
    assert _int8_kernel_sparsity(result.path) > 0.45  # and through the export
    if engine.name == "keras3":
        for model in (distiller, student, pruning, pruned, quantization_aware):
            assert isinstance(model, keras.Model)
            model.save(tmp_path / "model.keras")
            reloaded = keras.models.load_model(tmp_path / "model.keras")
            np.testing.assert_allclose(reloaded.predict(x_test[:32], verbose=0), model.predict(x_test[:32],
                                                                                              verbose=0), atol=1e-5)


def _int8_kernel_sparsity(path):
    """The share of zeros among the int8 kernels (constant tensors of rank 2 and more) the `.tflite` file stores."""
    from ai_edge_litert import schema_py_generated as schema

    flat = schema.ModelT.InitFromObj(schema.Model.GetRootAs(open(path, "rb").read(), 0))
    kernels = [np.frombuffer(bytes(flat.buffers[tensor.buffer].data), np.int8) for tensor in flat.subgraphs[0].tensors
               if tensor.type == schema.TensorType.INT8 and len(tensor.shape) >= 2
               and flat.buffers[tensor.buffer].data is not None]  # fmt: skip
    return float(np.mean(np.concatenate(kernels) == 0))
