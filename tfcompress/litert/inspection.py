"""What is inside a `.tflite` file: ops and their dtypes, int8 coverage, I/O, and XNNPACK delegation."""

import collections
import os

import numpy as np
from ai_edge_litert import schema_py_generated as schema

from tfcompress.litert.interpreter import XNNPackRefusedError, load_interpreter

# Ops that only convert between float and integer at the model's edges.
_CONVERSION_OPS = ("QUANTIZE", "DEQUANTIZE")
# Ops that only move values, no arithmetic: in float between a DEQUANTIZE and a QUANTIZE they
# cost a copy, not float compute (the converter sometimes leaves an unrolled GRU's SPLIT so).
_DATA_MOVEMENT_OPS = (
    "SPLIT",
    "SPLIT_V",
    "RESHAPE",
    "SQUEEZE",
    "EXPAND_DIMS",
    "CONCATENATION",
    "PACK",
    "UNPACK",
    "SLICE",
    "STRIDED_SLICE",
    "GATHER",
    "TRANSPOSE",
)


def integer_weights_of(content: bytes, layers) -> list:
    """Of the Keras layers named `layers`, those whose weights the file stores as integers."""
    model = schema.Model.GetRootAs(content, 0)
    graph = model.Subgraphs(0)
    found = set()
    for position in range(graph.OperatorsLength()):
        inputs = graph.Operators(position).InputsAsNumpy()
        if len(inputs) < 2 or inputs[1] < 0:
            continue
        weights = graph.Tensors(int(inputs[1]))
        if weights.Type() in (schema.TensorType.FLOAT32, schema.TensorType.FLOAT16):
            continue
        name = weights.Name().decode("utf-8", "replace")
        found |= {layer for layer in layers if f"/{layer}/" in name or f"/quant_{layer}/" in name}
    return [layer for layer in layers if layer in found]


def inspect_tflite(path) -> dict:
    """Reads a `.tflite` file and reports what runs where.

    Multiply-accumulates (MACs) are counted for CONV_2D, DEPTHWISE_CONV_2D and
    FULLY_CONNECTED at batch 1; an op counts as int8 when its input activations are int8
    or uint8. Delegation is what LiteRT's default XNNPACK delegate takes on this machine:
    ops it leaves to the reference kernels run many times slower on a phone's CPU.

    Args:
      path: the `.tflite` file.

    Returns:
      A dict with `path`, `bytes`, `inputs` and `outputs` (name, shape, dtype, scale,
      zero_point each), `ops` (one dict per op: index, op, input and output dtypes, macs,
      delegated), `op_counts`, `macs`, `int8_mac_share`, `float_ops` (ops other than
      QUANTIZE/DEQUANTIZE that compute on float tensors), `delegated_ops` and
      `undelegated_ops` (op names, in order), and `undelegated_compute_ops` (the
      undelegated ones other than QUANTIZE/DEQUANTIZE: the ones that cost speed), and
      `xnnpack_loads` (False when LiteRT loads the file only with XNNPACK switched off,
      as with the converter's sparse encoding: then no op is delegated).

    Raises:
      FileNotFoundError: `path` does not exist.
      ValueError: the file cannot be loaded by LiteRT.

    Examples:
      >>> report = tfc.litert.inspect("model.tflite")
      >>> report["int8_mac_share"], report["undelegated_ops"]
      (1.0, [])
    """
    path = os.fspath(path)
    try:
        interpreter, xnnpack_loads = load_interpreter(path), True
    except XNNPackRefusedError:
        interpreter, xnnpack_loads = load_interpreter(path, xnnpack=False), False
    ops = operators(interpreter)
    macs = sum(op["macs"] for op in ops)
    int8_macs = sum(op["macs"] for op in ops if op["input_dtypes"] and op["input_dtypes"][0] in ("int8", "uint8"))
    return {
        "path": os.path.abspath(path),
        "bytes": os.path.getsize(path),
        "inputs": [describe_tensor(detail) for detail in interpreter.get_input_details()],
        "outputs": [describe_tensor(detail) for detail in interpreter.get_output_details()],
        "ops": ops,
        "op_counts": dict(collections.Counter(op["op"] for op in ops)),
        "macs": macs,
        "int8_mac_share": int8_macs / macs if macs else None,
        "float_ops": [
            op["op"]
            for op in ops
            if op["op"] not in _CONVERSION_OPS and "float32" in op["input_dtypes"] + op["output_dtypes"]
        ],
        "delegated_ops": [op["op"] for op in ops if op["delegated"]],
        "undelegated_ops": [op["op"] for op in ops if not op["delegated"]],
        "undelegated_compute_ops": _undelegated_compute(ops),
        "xnnpack_loads": xnnpack_loads,
    }


def undelegated_compute_ops(interpreter) -> list:
    """The ops, other than QUANTIZE/DEQUANTIZE, that XNNPACK leaves on LiteRT's reference kernels."""
    return _undelegated_compute(operators(interpreter))


def float_compute_ops(interpreter) -> list:
    """The ops that compute in float32 on activations (QUANTIZE, DEQUANTIZE and ops that only move values aside)."""
    details = [op for op in interpreter._get_ops_details() if op["op_name"] != "DELEGATE"]
    # Activations: the inputs, and whatever an op computes from one. The rest is constants
    # rearranged at run time (weights dequantized and split for a GRU), not activations.
    activations = {detail["index"] for detail in interpreter.get_input_details()}
    found = []
    for op, detail in zip(operators(interpreter), details):
        if not any(index in activations for index in detail["inputs"] if index >= 0):
            continue
        activations.update(detail["outputs"])
        moves_data = op["op"] in _CONVERSION_OPS + _DATA_MOVEMENT_OPS
        if not moves_data and "float32" in op["input_dtypes"] + op["output_dtypes"]:
            found.append((op["op"], op["output"]))
    return found


def costly_undelegated_ops(interpreter) -> list:
    """The undelegated compute ops worth a warning: all but a final op without multiply-accumulates."""
    ops = operators(interpreter)
    outputs = {detail["name"] for detail in interpreter.get_output_details()}
    last_compute = max((op["index"] for op in ops if op["op"] not in _CONVERSION_OPS), default=None)
    return [
        op["op"]
        for op in ops
        if not op["delegated"]
        and op["op"] not in _CONVERSION_OPS
        and not (op["macs"] == 0 and (op["output"] in outputs or op["index"] == last_compute))
    ]


def _undelegated_compute(ops):
    return [op["op"] for op in ops if not op["delegated"] and op["op"] not in _CONVERSION_OPS]


def operators(interpreter) -> list:
    """One dict per op of the model, DELEGATE nodes left out (they list the ops they replaced)."""
    delegated = _delegated_op_indices(interpreter)
    tensors = {detail["index"]: detail for detail in interpreter.get_tensor_details()}
    ops = []
    for op in interpreter._get_ops_details():
        if op["op_name"] == "DELEGATE":
            continue
        inputs = [tensors[index] for index in op["inputs"] if index >= 0]
        outputs = [tensors[index] for index in op["outputs"] if index >= 0]
        ops.append(
            {
                "index": op["index"],
                "op": op["op_name"],
                "input_dtypes": [_dtype(tensor) for tensor in inputs],
                "output_dtypes": [_dtype(tensor) for tensor in outputs],
                "macs": _macs(op["op_name"], inputs, outputs),
                "delegated": op["index"] in delegated,
                "output": outputs[0]["name"] if outputs else None,
            }
        )
    return ops


def _delegated_op_indices(interpreter) -> set:
    """The ops a delegate took over: everything between a DELEGATE node's inputs and outputs."""
    ops = interpreter._get_ops_details()
    producers = {tensor: op["index"] for op in ops if op["op_name"] != "DELEGATE" for tensor in op["outputs"]}
    inputs_of = {op["index"]: op["inputs"] for op in ops}
    delegated = set()
    for node in (op for op in ops if op["op_name"] == "DELEGATE"):
        boundary = set(node["inputs"])
        pending = list(node["outputs"])
        while pending:
            tensor = pending.pop()
            producer = producers.get(tensor)
            if tensor in boundary or producer is None or producer in delegated:
                continue
            delegated.add(producer)
            pending.extend(index for index in inputs_of[producer] if index >= 0)
    return delegated


def _dtype(tensor) -> str:
    return np.dtype(tensor["dtype"]).name


def describe_tensor(detail) -> dict:
    """An input or output tensor as `inspect_tflite` and the Android bundle describe it."""
    scale, zero_point = detail["quantization"]
    return {
        "name": detail["name"],
        "shape": [int(size) for size in detail["shape"]],
        "dtype": _dtype(detail),
        "scale": float(scale),
        "zero_point": int(zero_point),
    }


def _macs(op_name, inputs, outputs) -> int:
    if op_name not in ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED") or len(inputs) < 2:
        return 0
    output_elements = int(np.prod(outputs[0]["shape"]))
    kernel = inputs[1]["shape"]
    if op_name == "CONV_2D":  # kernel (out, kh, kw, in)
        return output_elements * int(np.prod(kernel[1:]))
    if op_name == "DEPTHWISE_CONV_2D":  # kernel (1, kh, kw, channels)
        return output_elements * int(kernel[1] * kernel[2])
    return output_elements * int(kernel[-1])  # FULLY_CONNECTED: kernel (out, in)
