"""Editing a `.tflite` file's graph: its tensors, constants and operators, through LiteRT's own schema.

What the Android bundle adds inside a converted file (an RGB front, a head of scores) is
a few operators; these are the pieces each edit is made of.
"""

import flatbuffers
import numpy as np
from ai_edge_litert import schema_py_generated as schema


def load(content: bytes):
    """The file's object tree (`schema.ModelT`), to edit and `save`."""
    return schema.ModelT.InitFromObj(schema.Model.GetRootAs(content, 0))


def save(model) -> bytes:
    """The `.tflite` bytes of an edited object tree."""
    builder = flatbuffers.Builder(1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def producer(graph, index):
    """The operator that writes tensor `index`, or None for an input or a constant."""
    return next((op for op in graph.operators if index in list(op.outputs)), None)


def builtin(model, operator) -> int:
    """The builtin operator code (`schema.BuiltinOperator`) of an operator."""
    code = model.operatorCodes[operator.opcodeIndex]
    return max(code.builtinCode, code.deprecatedBuiltinCode)


def tensor(model, graph, name, dtype, shape, *, signature=None, scale=None, zero_point=None) -> int:
    """A new activation tensor in `graph`; returns its index."""
    added = schema.TensorT()
    added.shape = np.array(shape, dtype=np.int32)
    added.shapeSignature = None if signature is None else np.array(signature, dtype=np.int32)
    added.type = dtype
    added.name = name if isinstance(name, bytes) else name.encode()
    added.buffer = buffer(model, None)
    if scale is not None:
        added.quantization = quantization(scale, zero_point)
    graph.tensors.append(added)
    return len(graph.tensors) - 1


def constant(model, graph, name, values, dtype, shape, scale=None) -> int:
    """A new constant tensor holding `values` (zero point 0 when quantized); returns its index."""
    added = schema.TensorT()
    added.shape = np.array(shape, dtype=np.int32)
    added.type = dtype
    added.name = name.encode()
    added.buffer = buffer(model, np.asarray(values).reshape(shape))
    if scale is not None:
        added.quantization = quantization(scale, 0)
    graph.tensors.append(added)
    return len(graph.tensors) - 1


def quantization(scale, zero_point):
    """Per-tensor quantization parameters."""
    parameters = schema.QuantizationParametersT()
    parameters.scale = np.array([scale], dtype=np.float32)
    parameters.zeroPoint = np.array([zero_point], dtype=np.int64)
    return parameters


def buffer(model, values) -> int:
    """A new buffer holding `values` (None for an activation's empty buffer); returns its index."""
    added = schema.BufferT()
    if values is not None:
        added.data = np.frombuffer(np.ascontiguousarray(values).tobytes(), dtype=np.uint8)
    model.buffers.append(added)
    return len(model.buffers) - 1


def code(model, builtin_code, version=1) -> int:
    """The index of an operator code in the model's table, added if it is not there yet."""
    for index, existing in enumerate(model.operatorCodes):
        if max(existing.builtinCode, existing.deprecatedBuiltinCode) == builtin_code:
            existing.version = max(existing.version, version)
            return index
    added = schema.OperatorCodeT()
    added.builtinCode, added.deprecatedBuiltinCode, added.version = builtin_code, min(builtin_code, 127), version
    model.operatorCodes.append(added)
    return len(model.operatorCodes) - 1


def operator(code_index, inputs, outputs, options_type=None, options=None):
    """A new operator (not yet placed in a graph's list)."""
    added = schema.OperatorT()
    added.opcodeIndex = code_index
    added.inputs = np.array(inputs, dtype=np.int32)
    added.outputs = np.array(outputs, dtype=np.int32)
    if options is not None:
        added.builtinOptionsType = options_type
        added.builtinOptions = options
    return added


def retarget_output(model, graph, old, new) -> None:
    """Makes tensor `new` the graph's output in place of `old`, in the graph and in every signature."""
    graph.outputs = np.array([new if index == old else index for index in graph.outputs], dtype=np.int32)
    for signature in model.signatureDefs or []:
        for entry in signature.outputs:
            if entry.tensorIndex == old:
                entry.tensorIndex = new
