"""An RGB-to-gray front folded into a one-channel `.tflite`, so it takes camera RGB as Android's classifiers require.

MediaPipe Tasks' ImageClassifier (and the older Task Library) accept only RGB input: a
model of height x width x 1 fails to load ("Only RGB color space is supported for now").
Here the file's input becomes height x width x 3, and a 1x1 convolution with the ITU-R
BT.601 luma weights (the gray conversion image libraries use) turns it into the gray
image the model was trained on, inside the graph: int8 for a uint8 input (after the
input's own QUANTIZE), float for a float32 input. Gray pixels given as R = G = B come out
as they went in (the weights sum to exactly 1).
"""

import numpy as np
from ai_edge_litert import schema_py_generated as schema

from tfcompress.export import graph_edit as edit

# BT.601 luma, as integers over a common scale so the int8 weights sum to exactly 1.
_LUMA_STEPS = np.array([65, 127, 25])
_LUMA_SCALE = 1.0 / int(_LUMA_STEPS.sum())


def add_rgb_front(content: bytes) -> bytes:
    """The `.tflite` bytes of a model with one height x width x 1 input, taking height x width x 3 RGB instead."""
    model = edit.load(content)
    graph = model.subgraphs[0]
    if len(graph.inputs) != 1:
        raise ValueError(f"An RGB front needs a model with one input; this one has {len(graph.inputs)}.")
    gray_index = int(graph.inputs[0])
    gray = graph.tensors[gray_index]
    if list(gray.shape)[-1:] != [1] or len(gray.shape) != 4:
        raise ValueError(f"An RGB front needs a [1, height, width, 1] input; this one is {list(gray.shape)}.")
    if gray.type == schema.TensorType.UINT8:
        rgb_index, operators = _integer_front(model, graph, gray_index)
    elif gray.type == schema.TensorType.FLOAT32:
        rgb_index, operators = _float_front(model, graph, gray_index)
    else:
        raise ValueError("An RGB front needs a uint8 or float32 input; export with io_dtype='uint8' or 'float32'.")
    graph.operators = operators + list(graph.operators)
    graph.inputs = np.array([rgb_index], dtype=np.int32)
    for signature in model.signatureDefs or []:
        for entry in signature.inputs:
            if entry.tensorIndex == gray_index:
                entry.tensorIndex = rgb_index
    return edit.save(model)


def _integer_front(model, graph, gray_index):
    """uint8 RGB -> QUANTIZE to int8 -> 1x1 CONV_2D into the int8 tensor the old input's QUANTIZE made."""
    consumers = [op for op in graph.operators if gray_index in list(op.inputs)]
    quantize = edit.code(model, schema.BuiltinOperator.QUANTIZE)
    if len(consumers) != 1 or consumers[0].opcodeIndex != quantize:
        raise ValueError("The uint8 input does not feed one QUANTIZE op; export the model with tfc.export.to_tflite.")
    (old_quantize,) = consumers
    graph.operators = [op for op in graph.operators if op is not old_quantize]
    gray_int8 = int(old_quantize.outputs[0])
    gray = graph.tensors[gray_index]
    scale, zero_point = float(gray.quantization.scale[0]), int(gray.quantization.zeroPoint[0])
    rgb = _rgb_tensor(model, graph, gray, "rgb", schema.TensorType.UINT8, scale, zero_point)
    rgb_int8 = _rgb_tensor(model, graph, gray, "rgb_int8", schema.TensorType.INT8, scale, zero_point - 128)
    weights = edit.constant(model, graph, "rgb_to_gray/weights", _LUMA_STEPS.astype(np.int8), schema.TensorType.INT8,
                            [1, 1, 1, 3], _LUMA_SCALE)  # fmt: skip
    bias = edit.constant(model, graph, "rgb_to_gray/bias", np.zeros(1, np.int32), schema.TensorType.INT32, [1],
                         scale * _LUMA_SCALE)  # fmt: skip
    convolution = edit.code(model, schema.BuiltinOperator.CONV_2D, version=3)
    operators = [
        edit.operator(quantize, [rgb], [rgb_int8]),
        edit.operator(convolution, [rgb_int8, weights, bias], [gray_int8], *_convolution_options()),
    ]
    return rgb, operators


def _float_front(model, graph, gray_index):
    """float32 RGB -> 1x1 CONV_2D into the old input tensor, which becomes an inner tensor."""
    gray = graph.tensors[gray_index]
    rgb = _rgb_tensor(model, graph, gray, "rgb", schema.TensorType.FLOAT32, None, None)
    weights = edit.constant(model, graph, "rgb_to_gray/weights", (_LUMA_STEPS * _LUMA_SCALE).astype(np.float32),
                            schema.TensorType.FLOAT32, [1, 1, 1, 3])  # fmt: skip
    bias = edit.constant(model, graph, "rgb_to_gray/bias", np.zeros(1, np.float32), schema.TensorType.FLOAT32, [1])
    convolution = edit.code(model, schema.BuiltinOperator.CONV_2D, version=1)
    return rgb, [edit.operator(convolution, [rgb, weights, bias], [gray_index], *_convolution_options())]


def _rgb_tensor(model, graph, gray, suffix, dtype, scale, zero_point):
    """A tensor shaped like the gray input with three channels; "rgb" takes over the input's name."""
    signature = None if gray.shapeSignature is None else list(gray.shapeSignature[:-1]) + [3]
    name = gray.name if suffix == "rgb" else (gray.name or b"input") + f"_{suffix}".encode()
    if suffix == "rgb":  # the gray tensor gives up its name, which the app and signature know the input by
        gray.name = (gray.name or b"input") + b"_gray"
    return edit.tensor(model, graph, name, dtype, list(gray.shape[:-1]) + [3], signature=signature, scale=scale,
                       zero_point=zero_point)  # fmt: skip


def _convolution_options():
    options = schema.Conv2DOptionsT()
    options.padding = schema.Padding.VALID
    options.strideW = options.strideH = options.dilationWFactor = options.dilationHFactor = 1
    options.fusedActivationFunction = schema.ActivationFunctionType.NONE
    return schema.BuiltinOptions.Conv2DOptions, options
