"""Scores Android's classifiers can show for a binary or multi-label output, added inside the `.tflite`.

MediaPipe's ImageClassifier (and the older Task Library) show one score per label, read
from an output of shape [1, labels]. A binary classifier's one logit (or probability)
would be one label, always shown: here it becomes two scores, [1 - p, p], one per label
(the sigmoid of a logit first).
A multi-label model's logits become probabilities. The ops are appended to the file: int8
ops before a uint8 output's QUANTIZE (so the file stays integer-only), float ops after a
float32 output.
"""

import numpy as np
from ai_edge_litert import schema_py_generated as schema

from tfcompress.export import graph_edit as edit

_T = schema.TensorType
_OP = schema.BuiltinOperator
# TFLite's int8 LOGISTIC writes probabilities on this fixed scale and zero point.
_PROBABILITY_SCALE, _PROBABILITY_ZERO_POINT = 1.0 / 256, -128


def ends_in_sigmoid(content: bytes) -> bool:
    """Whether the file's first output is a sigmoid's (LOGISTIC, possibly then re- or de-quantized)."""
    model = edit.load(content)
    graph = model.subgraphs[0]
    writer = edit.producer(graph, int(graph.outputs[0]))
    while writer is not None and edit.builtin(model, writer) in (_OP.QUANTIZE, _OP.DEQUANTIZE):
        writer = edit.producer(graph, int(writer.inputs[0]))
    return writer is not None and edit.builtin(model, writer) == _OP.LOGISTIC


def two_scores(content: bytes, probability: bool) -> bytes:
    """The file with its one binary output turned into two scores, [1 - p, p], of shape [1, 2]."""
    return _append(content, ([] if probability else ["sigmoid"]) + ["two_scores"], width=1)


def sigmoid_scores(content: bytes) -> bytes:
    """The file with the sigmoid of its first output (multi-label logits) appended, as probabilities."""
    return _append(content, ["sigmoid"], width=None)


def _append(content, steps, width):
    """`steps` ("sigmoid", "two_scores") appended after the file's first output, which they then make."""
    model = edit.load(content)
    graph = model.subgraphs[0]
    output = int(graph.outputs[0])
    final = graph.tensors[output]
    shape = list(final.shape)
    if width is not None and shape[-1:] != [width]:
        raise ValueError(f"A binary output has one value a row; this file's first output has shape {shape}.")
    if final.type not in (_T.UINT8, _T.FLOAT32):
        raise ValueError(
            "Scores for Android's classifiers are added to a uint8 or float32 output; export with io_dtype='uint8' "
            "or 'float32'."
        )
    integer = final.type == _T.UINT8
    quantize = edit.producer(graph, output)
    if integer and (quantize is None or edit.builtin(model, quantize) != _OP.QUANTIZE):
        raise ValueError("The uint8 output is not made by one QUANTIZE op; export the model with tfc.export.to_tflite.")
    current = int(quantize.inputs[0]) if integer else output  # int8 ops go before the QUANTIZE to uint8
    added = []
    for step in steps:
        shape = shape[:-1] + [2] if step == "two_scores" else shape
        made = _scores_tensor(model, graph, final, step, shape, integer)
        if step == "sigmoid":
            added.append(edit.operator(edit.code(model, _OP.LOGISTIC, version=2 if integer else 1), [current], [made]))
        else:
            added.append(_one_minus_and_itself(model, graph, final.name.decode(), current, made, integer))
        current = made
    if integer:
        final.shape = np.array(shape, dtype=np.int32)
        final.shapeSignature = graph.tensors[current].shapeSignature
        final.quantization = edit.quantization(_PROBABILITY_SCALE, _PROBABILITY_ZERO_POINT + 128)
        quantize.inputs = np.array([current], dtype=np.int32)
        position = next(index for index, op in enumerate(graph.operators) if op is quantize)
        graph.operators = list(graph.operators[:position]) + added + list(graph.operators[position:])
    else:
        # The output's name goes to the scores, which the app reads by it.
        graph.tensors[current].name, final.name = final.name, final.name + b"/before_scores"
        graph.operators = list(graph.operators) + added
        edit.retarget_output(model, graph, output, current)
    return edit.save(model)


def _scores_tensor(model, graph, like, step, shape, integer):
    """A tensor for a step's scores: int8 on the probability scale, or float32; batch as `like`'s."""
    signature = None if like.shapeSignature is None else list(like.shapeSignature[:-1]) + shape[-1:]
    quantized = {"scale": _PROBABILITY_SCALE, "zero_point": _PROBABILITY_ZERO_POINT} if integer else {}
    dtype = _T.INT8 if integer else _T.FLOAT32
    return edit.tensor(model, graph, like.name + f"/{step}".encode(), dtype, shape, signature=signature, **quantized)


def _one_minus_and_itself(model, graph, name, probability, scores, integer):
    """FULLY_CONNECTED from p to [1 - p, p]: kernel [[-1], [1]], bias [1, 0]."""
    kernel, bias = np.array([[-1.0], [1.0]]), np.array([1.0, 0.0])
    if integer:
        kernel = edit.constant(model, graph, f"{name}/two_scores/weights", (kernel * 127).astype(np.int8), _T.INT8,
                               [2, 1], 1.0 / 127)  # fmt: skip
        steps = np.round(bias / (_PROBABILITY_SCALE / 127)).astype(np.int32)
        bias = edit.constant(model, graph, f"{name}/two_scores/bias", steps, _T.INT32, [2], _PROBABILITY_SCALE / 127)
    else:
        kernel = edit.constant(model, graph, f"{name}/two_scores/weights", np.float32(kernel), _T.FLOAT32, [2, 1])
        bias = edit.constant(model, graph, f"{name}/two_scores/bias", np.float32(bias), _T.FLOAT32, [2])
    code = edit.code(model, _OP.FULLY_CONNECTED, version=4 if integer else 1)
    return edit.operator(code, [probability, kernel, bias], [scores], *_fully_connected_options())


def _fully_connected_options():
    options = schema.FullyConnectedOptionsT()
    options.fusedActivationFunction = schema.ActivationFunctionType.NONE
    options.weightsFormat = schema.FullyConnectedOptionsWeightsFormat.DEFAULT
    options.keepNumDims = False
    return schema.BuiltinOptions.FullyConnectedOptions, options
