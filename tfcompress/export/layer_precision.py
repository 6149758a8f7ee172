"""Integer files whose chosen layers get int16 activations or int4 weights, through the LiteRT quantizer.

The converter gives every activation of a file one type. The LiteRT quantizer
(`litert-quantizer`) quantizes a float32 file op by op, matching each op by its output
tensor's name, and inserts the QUANTIZE ops that carry values between an int16 layer and
its int8 neighbours, so the file stays integer-only. Ops are matched to Keras layers by
the names the converter gives them (`quantization_errors.layer_name`). The quantizer
calibrates once (its own min-max ranges); every file is then quantized from those ranges.
The file's inputs and outputs stay float32, as accuracy control's files do.
"""

import contextlib
import io
import re

from tfcompress._keras import keras
from tfcompress.export import graph_edit
from tfcompress.export.quantization_errors import layer_name
from tfcompress.export.range_search import schema_name
from tfcompress.litert.interpreter import load_interpreter
from tfcompress.quantize.learned_rounding import has_channel_kernel

# The ops whose int4 weights LiteRT runs with int8 activations (the quantizer's static_wi4_ai8 policy).
INT4_OPS = {"FULLY_CONNECTED", "CONV_2D"}
# Ops that pass a tensor's values on unchanged in kind: an int16 tensor stays int16 through them to its reader.
_PASSING_OPS = {"RESHAPE", "MAX_POOL_2D", "AVERAGE_POOL_2D", "PAD", "SQUEEZE", "EXPAND_DIMS"}


class LayerChoiceError(ValueError):
    """`int16_layers` or `int4_layers` names a layer that is not in the file, or cannot take the precision."""


def available() -> bool:
    """Whether the LiteRT quantizer (the `quantizer` extra) is installed."""
    try:
        import litert_quantizer  # noqa: F401
    except ImportError:
        return False
    return True


def check_available() -> None:
    """A clear ImportError when the LiteRT quantizer is not installed."""
    if not available():
        raise ImportError(
            '`int16_layers` and `int4_layers` use the LiteRT quantizer, an optional extra: pip install '
            '"tfcompress[quantizer]"'
        )


class LayerPrecision:
    """A float32 file calibrated once by the LiteRT quantizer, and integer files from it with per-layer precision.

    Args:
      model: the Keras model the file was converted from (its layers name the ops).
      float_content: the model's float32 `.tflite` bytes, from the converter.
      samples: calibration inputs, one array per model input, in the order of `model.input_names`.

    Attributes:
      ops: per Keras layer, the `(op type, scope)` of each op converted from it.
      readers: per Keras layer, the layers that read its output (through reshapes and pooling).

    Example:
      >>> precision = LayerPrecision(model, float_bytes, [x_train[:500]])
      >>> mixed = precision.convert(int16_layers=precision.with_readers(["dense_1"]))
    """

    def __init__(self, model, float_content: bytes, samples):
        from litert_quantizer import quantizer, recipe

        self._float = float_content
        self.ops, self.readers = _layer_ops(model, float_content)
        signature, names = _signature_inputs(float_content)
        if set(names) != set(model.input_names):  # a file whose inputs are not named after the model's: by position
            named = dict(zip(names, samples))
        else:
            named = dict(zip(model.input_names, samples))
        data = [{name: array[index : index + 1] for name, array in named.items()} for index in range(len(samples[0]))]
        engine = quantizer.Quantizer(float_content)
        engine.load_quantization_recipe(recipe.static_wi8_ai8())
        with contextlib.redirect_stderr(io.StringIO()):  # its progress bar
            self._ranges = engine.calibrate({signature: data})

    def convert(self, int16_layers=(), int4_layers=()) -> bytes:
        """The integer file with int16 activations in the ops of `int16_layers`, int4 weights in `int4_layers`."""
        from litert_quantizer import quantizer, recipe
        from litert_quantizer.algorithm_manager import AlgorithmName
        from litert_quantizer.qtyping import TFLOperationName

        engine = quantizer.Quantizer(self._float)
        engine.load_quantization_recipe(recipe.static_wi8_ai8())
        for layer in dict.fromkeys(list(int16_layers) + list(int4_layers)):
            for op_type, scope in self.ops.get(layer, []):
                int4 = layer in int4_layers and op_type in INT4_OPS
                if layer not in int16_layers and not int4:
                    continue
                # By op type, not for every op of the scope: the graph's output shares its producer's scope.
                engine.add_static_config(f"^{re.escape(scope)}$", TFLOperationName(op_type),
                                         16 if layer in int16_layers else 8, 4 if int4 else 8)  # fmt: skip
        for io_op in (TFLOperationName.INPUT, TFLOperationName.OUTPUT):
            engine.update_quantization_recipe(".*", io_op, algorithm_key=AlgorithmName.NO_QUANTIZE)
        with contextlib.redirect_stderr(io.StringIO()):
            result = engine.quantize(self._ranges, enable_progress_bar=False, enable_progress_report=False)
        return bytes(result.quantized_model)

    def check_in_file(self, names) -> None:
        """A clear error for a named layer that left no op of its own in the file (folded into another)."""
        missing = [name for name in names if name not in self.ops]
        if missing:
            raise LayerChoiceError(
                f"{missing} left no op of their own in the converted file (the converter folds a BatchNormalization, "
                "an activation or a rescaling into a neighbouring layer): name the layer they were folded into. "
                f"Layers with ops: {list(self.ops)}."
            )

    def with_readers(self, names) -> list:
        """`names` and the layers that read their outputs: an int16 tensor stays int16 only where its readers are."""
        found = list(dict.fromkeys(names))
        for name in names:
            found += [reader for reader in self.readers.get(name, []) if reader not in found]
        return found

    def int4_layers(self) -> list:
        """The layers with an op whose weights can be int4 (Conv2D, Dense)."""
        return [layer for layer, ops in self.ops.items() if any(op_type in INT4_OPS for op_type, _ in ops)]


def check_names(model, int16_layers, int4_layers) -> tuple:
    """`(int16, int4)`: the names as lists, or a clear error for a name that is not a layer that can take them."""
    checked = []
    for argument, value in (("int16_layers", int16_layers), ("int4_layers", int4_layers)):
        names = [value] if isinstance(value, str) else list(value or [])
        known = [layer.name for layer in model.layers if not isinstance(layer, keras.layers.InputLayer)]
        if value is not None and not names:
            raise LayerChoiceError(f"`{argument}` is empty: name at least one layer, or leave it out.")
        unknown = [name for name in names if name not in known]
        if unknown:
            raise LayerChoiceError(
                f"`{argument}` names {unknown}, which are not layers of {model.name!r}. Its layers are: "
                f"{known}."
            )
        checked.append(names)
    int16, int4 = checked
    refused = [name for name in int4 if not takes_int4(model.get_layer(name))]
    if refused:
        raise LayerChoiceError(
            f"`int4_layers` names {refused}: LiteRT runs int4 weights with int8 activations in Dense, Conv1D and "
            "Conv2D layers only. Name those layers, or leave the others int8."
        )
    return int16, int4


def takes_int4(layer) -> bool:
    """Whether LiteRT runs the layer with int4 weights and int8 activations: Dense, Conv1D, Conv2D."""
    return has_channel_kernel(layer) and not isinstance(layer, keras.layers.DepthwiseConv2D)


def int16_ops(content: bytes) -> int:
    """How many ops of the file compute on int16 activations."""
    interpreter = load_interpreter(content, xnnpack=False)
    details = interpreter.get_tensor_details()
    return sum(1 for op in interpreter._get_ops_details()
               if op["op_name"] != "QUANTIZE" and any(details[i]["dtype"].__name__ == "int16"
                                                      for i in op["outputs"] if i >= 0))  # fmt: skip


def _layer_ops(model, float_content):
    """Per Keras layer, its ops' `(type, scope)`; and the layers reading each layer's outputs."""
    parsed = graph_edit.load(float_content)
    graph = parsed.subgraphs[0]
    outputs = set(int(index) for index in graph.outputs)
    ops, layer_of, kind_of = {}, {}, {}
    for op in graph.operators:
        names = [graph.tensors[index].name.decode() for index in op.outputs if index >= 0]
        if not names:
            continue
        last = len(outputs) == 1 and int(op.outputs[0]) in outputs
        layer = layer_name(model, names[0], last=last)
        kind = schema_name(parsed, op)
        ops.setdefault(layer, []).append((kind, ";".join(names) + ";"))
        for index in op.outputs:
            layer_of[int(index)], kind_of[int(index)] = layer, kind
    readers = {}
    for op in graph.operators:
        names = [graph.tensors[index].name.decode() for index in op.outputs if index >= 0]
        if not names:
            continue
        reader = layer_of[int(op.outputs[0])]
        for index in op.inputs:
            writer = layer_of.get(int(index))
            if writer is not None and writer != reader:
                readers.setdefault(writer, []).append(reader)
    passing = {layer for layer, kinds in ops.items() if all(kind in _PASSING_OPS for kind, _ in kinds)}
    for layer in ops:  # through reshapes and pooling, to the layers that compute on the values
        pending, seen = list(readers.get(layer, [])), []
        while pending:
            reader = pending.pop(0)
            if reader not in seen:
                seen.append(reader)
                pending += readers.get(reader, []) if reader in passing else []
        readers[layer] = seen
    return ops, readers


def _signature_inputs(content):
    interpreter = load_interpreter(content)
    signature = next(iter(interpreter.get_signature_list()))
    return signature, list(interpreter.get_signature_runner(signature).get_input_details())
