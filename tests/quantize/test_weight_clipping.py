"""Weight ranges of least squared error: each kernel channel clipped before the converter picks its int8 grid."""

import numpy as np
from conftest import weights_of

import tfcompress as tfc
from tfcompress._keras import keras
from tfcompress.export import graph_edit


def _dense_weights_in_file(path):
    """The dequantized int8 kernel of the file's FULLY_CONNECTED op, as (in, out)."""
    model = graph_edit.load(open(path, "rb").read())
    graph = model.subgraphs[0]
    (op,) = [op for op in graph.operators if len(op.inputs) > 1 and graph.tensors[op.inputs[1]].type == 9]
    tensor = graph.tensors[op.inputs[1]]
    values = np.frombuffer(bytes(model.buffers[tensor.buffer].data), np.int8).reshape(tensor.shape)
    return (values * np.asarray(tensor.quantization.scale)[:, None]).T


def test_a_wide_channel_with_one_far_weight_gets_a_finer_grid_and_a_smaller_error_in_the_file(tmp_path):
    # With thousands of inputs per channel, one weight 40x the others makes the step coarse for all of them.
    rng = np.random.default_rng(0)
    model = keras.Sequential([keras.Input((4096,)), keras.layers.Dense(6, name="wide")])
    kernel = rng.normal(0, 0.02, (4096, 6)).astype(np.float32)
    kernel[7, :3] = 0.8
    model.get_layer("wide").set_weights([kernel, np.zeros(6, np.float32)])
    before = weights_of(model)
    clipped, layers = tfc.quantize.clip_weights(model)
    assert layers == ["wide"] and all(np.array_equal(a, b) for a, b in zip(before, weights_of(model)))
    x = rng.normal(0, 1, (200, 4096)).astype(np.float32)
    files = {}
    for method in ("minmax", "mse"):
        result = tfc.export.to_tflite(model, tmp_path / f"{method}.tflite", representative_data=x,
                                      weight_calibration=method)  # fmt: skip
        files[method] = _dense_weights_in_file(result.path)
    # The file holds the clipped kernel on the converter's grid: a finer step where one weight was far out.
    stored = clipped.get_layer("wide").get_weights()[0]
    step = np.abs(stored).max(axis=0) / 127
    np.testing.assert_allclose(files["mse"], np.round(stored / step) * step, rtol=1e-5, atol=1e-6)
    assert np.all(step[:3] < 0.8 / 127)
    error = {method: np.square(files[method] - kernel).sum(axis=0) for method in files}
    assert np.all(error["mse"] <= error["minmax"]) and np.all(error["mse"][:3] < 0.99 * error["minmax"][:3])
