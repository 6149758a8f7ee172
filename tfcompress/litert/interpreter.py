"""Running a `.tflite` file in the LiteRT interpreter, float in and float out."""

import mmap
import os
import struct

import numpy as np
from ai_edge_litert import schema_py_generated as schema
from ai_edge_litert.interpreter import Interpreter, OpResolverType

from tfcompress import _errors
from tfcompress.data.arrays import InputSpec


def broken_scales(content) -> list:
    """Names of the tensors whose quantization scale is NaN, infinite or not positive."""
    if len(content) < 8 or not schema.Model.ModelBufferHasIdentifier(content, 0):
        return []
    try:
        return _broken_scales(schema.Model.GetRootAs(content, 0))
    except (struct.error, IndexError):  # a truncated file: LiteRT's own error says so
        return []


def _broken_scales(model) -> list:
    broken = []
    for index in range(model.SubgraphsLength()):
        graph = model.Subgraphs(index)
        for position in range(graph.TensorsLength()):
            tensor = graph.Tensors(position)
            quantization = tensor.Quantization()
            if quantization is None or quantization.ScaleLength() == 0:
                continue
            scale = quantization.ScaleAsNumpy()
            if not np.all(np.isfinite(scale) & (scale > 0)):
                broken.append(tensor.Name().decode("utf-8", "replace"))
    return broken


class XNNPackRefusedError(ValueError):
    """LiteRT loads the model only with its default XNNPACK delegate switched off.

    A phone app that keeps LiteRT's defaults cannot load such a file at all. The
    converter's sparse int8 encoding does this (XNNPACK fails to prepare its DENSIFY'd
    layers).
    """


def load_interpreter(source, num_threads: int = None, *, xnnpack: bool = True):
    """An allocated LiteRT interpreter, or a clear error."""
    if isinstance(source, bytes):
        where, name = {"model_content": source}, "The model"
        broken = broken_scales(source)
    else:
        name = os.fspath(source)
        if not os.path.isfile(name):
            raise FileNotFoundError(f"No .tflite file at {name}.")
        where = {"model_path": name}
        broken = _broken_scales_of_file(name)
    if broken:
        raise ValueError(
            f"{name} has quantization scales that are NaN, infinite or not positive, on "
            f"{_errors.first_few(map(repr, broken), 3)}: LiteRT would crash the process on it instead of "
            "refusing it. Such a file comes from a quantization-aware model whose ranges went NaN (outputs that "
            "are all zero, or training that diverged): check that the model's outputs are finite, train it "
            "further or from a trained float model, and export again."
        )
    resolver = OpResolverType.AUTO if xnnpack else OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
    try:
        interpreter = Interpreter(num_threads=num_threads, experimental_op_resolver_type=resolver, **where)
        interpreter.allocate_tensors()
    except (ValueError, RuntimeError) as error:
        if xnnpack and _loads_without_xnnpack(where):
            raise XNNPackRefusedError(
                f"{name} loads in LiteRT only with the XNNPACK delegate switched off ({error}). An app that "
                "keeps LiteRT's defaults cannot load it; export without sparse encoding, or create the app's "
                "interpreter with default delegates disabled and accept reference-kernel speed."
            ) from error
        raise ValueError(
            f"{name} could not be loaded by the LiteRT interpreter ({error}). "
            "It may be truncated or not a TFLite model; export it again."
        ) from error
    return interpreter


def _broken_scales_of_file(path) -> list:
    with open(path, "rb") as file:
        try:
            content = mmap.mmap(file.fileno(), 0, access=mmap.ACCESS_READ)
        except ValueError:  # an empty file: LiteRT's own error says so
            return []
        try:
            return broken_scales(content)
        finally:
            content.close()


def _loads_without_xnnpack(where) -> bool:
    try:
        Interpreter(
            experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES, **where
        ).allocate_tensors()
    except (ValueError, RuntimeError):
        return False
    return True


class LiteRTModel:
    """A `.tflite` model loaded in LiteRT that takes and returns float arrays (and integer ids as they are).

    Quantized inputs and outputs are converted with the file's scales and zero points; token ids stay integers.
    Inputs and outputs are matched by the names of the file's "serving_default" signature.

    Args:
      path: the `.tflite` file, or its bytes.
      num_threads: interpreter threads; None lets LiteRT choose.
      xnnpack: apply LiteRT's default XNNPACK delegate; None applies it when the file loads with it.

    Attributes:
      input_names: the inputs' names, in the order `predict` takes a list.
      output_names: the outputs' names, the keys of `predict`'s dict for several outputs.

    Raises:
      FileNotFoundError: `path` does not exist.
      ValueError: the file is not a valid TFLite model.

    Examples:
      >>> logits = LiteRTModel("model.tflite").predict(x_test)
      >>> outputs = LiteRTModel("detector.tflite").predict({"image": images, "features": features})
    """

    def __init__(self, path, num_threads: int = None, xnnpack: bool = None):
        path = path if isinstance(path, bytes) else os.fspath(path)
        try:
            self._interpreter = load_interpreter(path, num_threads, xnnpack=xnnpack is not False)
        except XNNPackRefusedError:
            if xnnpack:
                raise
            self._interpreter = load_interpreter(path, num_threads, xnnpack=False)
        self._inputs, self._outputs = named_io(self._interpreter)
        self.input_names, self.output_names = list(self._inputs), list(self._outputs)

    @property
    def input_shape(self) -> tuple:
        """The shape of one example of the first input, batch left out."""
        return self.input_specs[0].shape

    @property
    def input_specs(self) -> list:
        """Each input as an `InputSpec`: quantized inputs take floats, integer inputs their integers."""
        return [
            InputSpec(name, tuple(int(size) for size in detail["shape"][1:]), _value_dtype(detail))
            for name, detail in self._inputs.items()
        ]

    def predict(self, x):
        """Runs the model on each example in turn (batch 1, as on a phone).

        Args:
          x: for one input, an array of shape `(n,) + input_shape`; for several, a dict
            by input name or a list in `input_names` order.

        Returns:
          For one output, a float32 array of shape `(n,) + output shape`, dequantized if the
          file's output is an integer type; for several, a dict of them by output name.

        Examples:
          >>> LiteRTModel("model.tflite").predict(x_test[:10]).shape
          (10, 10)
        """
        arrays = x if isinstance(x, dict) else dict(zip(self.input_names, x if isinstance(x, (list, tuple)) else [x]))
        self._check(arrays)
        count = len(next(iter(arrays.values())))
        results = {name: [] for name in self.output_names}
        for index in range(count):
            # A fused LSTM keeps its state in variable tensors across invocations; each example starts afresh.
            self._interpreter.reset_all_variables()
            for name, detail in self._inputs.items():
                example = np.asarray(arrays[name][index : index + 1])
                self._interpreter.set_tensor(detail["index"], _quantize(example, detail))
            self._interpreter.invoke()
            for name, detail in self._outputs.items():
                results[name].append(_dequantize(self._interpreter.get_tensor(detail["index"]), detail))
        joined = {name: np.concatenate(values) for name, values in results.items()}
        return joined[self.output_names[0]] if len(joined) == 1 else joined


    def _check(self, arrays):
        """A clear error for inputs the file does not take, before the interpreter's own."""
        missing = [name for name in self.input_names if name not in arrays]
        if missing or len(arrays) != len(self.input_names):
            raise ValueError(
                f"The model takes the inputs {self.input_names}; received {sorted(arrays)}. Pass one array per "
                "input, as a dict by name (or a list in that order)."
            )
        for spec in self.input_specs:
            got = tuple(np.shape(arrays[spec.name])[1:])
            if got != spec.shape:
                raise ValueError(
                    f"Input {spec.name!r} takes examples of shape {spec.shape} (batch left out); received {got}. "
                    "Check that the file is the one exported from this model, and reshape the data."
                )


def named_io(interpreter):
    """The input and output details by name: the signature's names, else the tensors' own."""
    inputs, outputs = interpreter.get_input_details(), interpreter.get_output_details()
    signatures = interpreter.get_signature_list()
    if signatures:
        # The signature names the tensors; the tensors' own order is the Keras model's (its call arguments).
        runner = interpreter.get_signature_runner(next(iter(signatures)))
        named = []
        for details, side in ((inputs, runner.get_input_details()), (outputs, runner.get_output_details())):
            name_of = {item["index"]: name for name, item in side.items()}
            named.append({name_of[detail["index"]]: detail for detail in details})
        return named[0], named[1]
    return (
        {detail["name"]: detail for detail in interpreter.get_input_details()},
        {detail["name"]: detail for detail in interpreter.get_output_details()},
    )


def _value_dtype(detail) -> str:
    """The dtype of the values an input takes: float32 for a quantized input, else its own."""
    dtype = np.dtype(detail["dtype"])
    scale, _ = detail["quantization"]
    return "float32" if np.issubdtype(dtype, np.floating) or scale else dtype.name


def _quantize(values, details):
    dtype = details["dtype"]
    scale, zero_point = details["quantization"]
    if not np.issubdtype(dtype, np.integer) or not scale:
        return values.astype(dtype)
    limits = np.iinfo(dtype)
    return np.clip(np.round(values / scale + zero_point), limits.min, limits.max).astype(dtype)


def _dequantize(values, details):
    scale, zero_point = details["quantization"]
    if not np.issubdtype(details["dtype"], np.integer) or not scale:
        return values.astype(np.float32)
    return ((values.astype(np.float32) - zero_point) * scale).astype(np.float32)
