"""int16 activations and int4 weights in chosen layers: one integer file from the LiteRT quantizer."""

import os

import numpy as np
import pytest
from ai_edge_litert import schema_py_generated as schema

import tfcompress as tfc
from tfcompress._keras import keras
from tfcompress.export import graph_edit, layer_precision


def _weight_types(path):
    model = graph_edit.load(open(path, "rb").read())
    graph = model.subgraphs[0]
    names = {value: name for name, value in vars(schema.TensorType).items() if not name.startswith("_")}
    return [names[tensor.type] for tensor in graph.tensors if model.buffers[tensor.buffer].data is not None]


def test_int16_and_int4_layers_make_one_integer_file_that_says_which_layers_got_what(trained_cnn, digits, tmp_path):
    (x_train, _), (x_test, _) = digits
    result = tfc.export.to_tflite(trained_cnn, tmp_path / "m.tflite", representative_data=x_train[:300],
                                  int16_layers=["dense"], int4_layers="conv2d")  # fmt: skip
    # The layer reading dense's output computes in int16 too, so the tensor between them stays int16.
    assert ("Layer precision: int16 activations in ['dense', 'dense_1'] (['dense_1'] read the named layers); "
            "int4 weights in ['conv2d']; every other layer int8.") in result.notes
    content = open(result.path, "rb").read()
    assert layer_precision.int16_ops(content) == 2
    assert _weight_types(result.path).count("INT4") == 1  # the convolution's kernel
    inspected = tfc.litert.inspect(result.path)
    assert not inspected["float_ops"] and result.input_dtype == result.output_dtype == "float32"
    assert any("off XNNPACK" in note for note in result.notes)
    keras_top1 = trained_cnn.predict(x_test, verbose=0).argmax(-1)
    assert np.mean(tfc.litert.LiteRTModel(result.path).predict(x_test).argmax(-1) == keras_top1) >= 0.97
    # int4 weights alone: smaller than the int8 file by about half the kernel's bytes, all on XNNPACK for Dense.
    plain = tfc.export.to_tflite(trained_cnn, tmp_path / "p.tflite", representative_data=x_train[:300],
                                 io_dtype="float32")  # fmt: skip
    small = tfc.export.to_tflite(trained_cnn, tmp_path / "s.tflite", representative_data=x_train[:300],
                                 int4_layers=["dense"])  # fmt: skip
    kernel = trained_cnn.get_layer("dense").kernel.shape.num_elements()
    assert plain.bytes - small.bytes > 0.4 * kernel
    assert all(op["delegated"] for op in tfc.litert.inspect(small.path)["ops"] if op["macs"])


def test_a_layer_folded_into_another_is_named_in_the_error_and_nothing_is_written(digits, tmp_path):
    (x_train, _), _ = digits
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Conv2D(8, 3, name="conv"),
                              keras.layers.BatchNormalization(name="norm"), keras.layers.Flatten(name="flat"),
                              keras.layers.Dense(10, name="logits")])  # fmt: skip
    with pytest.raises(ValueError, match=r"\['norm'\] left no op of their own .* name the layer they were folded"):
        tfc.export.to_tflite(model, tmp_path / "m.tflite", representative_data=x_train[:100], int16_layers=["norm"])
    assert not os.path.exists(tmp_path / "m.tflite")


def test_an_op_the_quantizer_leaves_in_float_is_refused_in_words_that_name_it(digits, tmp_path):
    (x_train, _), _ = digits
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Reshape((64, 1)), keras.layers.Conv1D(8, 3),
                              keras.layers.GlobalMaxPooling1D(), keras.layers.Dense(10, name="logits")])  # fmt: skip
    tfc.export.to_tflite(model, tmp_path / "plain.tflite", representative_data=x_train[:100])  # REDUCE_MAX in int8
    with pytest.raises(RuntimeError, match=r"REDUCE_MAX.*The LiteRT quantizer, .* has no int8 recipe for them"):
        tfc.export.to_tflite(model, tmp_path / "m.tflite", representative_data=x_train[:100], int16_layers=["logits"])
    assert not os.path.exists(tmp_path / "m.tflite")
