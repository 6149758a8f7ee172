"""Running a `.tflite` file in the LiteRT interpreter, float in and float out."""

import os

import numpy as np
from ai_edge_litert.interpreter import Interpreter, OpResolverType


class XNNPackRefusedError(ValueError):
    """LiteRT loads the model only with its default XNNPACK delegate switched off.

    A phone app that keeps LiteRT's defaults cannot load such a file at all. The
    converter's sparse int8 encoding does this (XNNPACK fails to prepare its DENSIFY'd
    layers).
    """


def load_interpreter(source, num_threads: int = None, *, xnnpack: bool = True):
    """An allocated LiteRT interpreter, or a clear error.

    Args:
      source: the path of a `.tflite` file, or the model's bytes.
      num_threads: interpreter threads; None lets LiteRT choose.
      xnnpack: apply LiteRT's default delegate, XNNPACK, as a phone app does by default.
        False runs every op on LiteRT's built-in kernels.

    Returns:
      An `ai_edge_litert.interpreter.Interpreter` with its tensors allocated.

    Raises:
      FileNotFoundError: `source` is a path and no file is there.
      XNNPackRefusedError: the model loads, but only with `xnnpack=False`.
      ValueError: LiteRT cannot load the model.

    Example:
      >>> interpreter = load_interpreter("model.tflite")
    """
    if isinstance(source, bytes):
        where, name = {"model_content": source}, "The model"
    else:
        name = os.fspath(source)
        if not os.path.isfile(name):
            raise FileNotFoundError(f"No .tflite file at {name}.")
        where = {"model_path": name}
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


def _loads_without_xnnpack(where) -> bool:
    try:
        Interpreter(
            experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES, **where
        ).allocate_tensors()
    except (ValueError, RuntimeError):
        return False
    return True


class LiteRTModel:
    """A `.tflite` model loaded in LiteRT that takes and returns float arrays.

    Quantized inputs and outputs (int8 or uint8) are converted with the scale and zero
    point stored in the file, so callers never handle raw integers.

    Args:
      path: the `.tflite` file, or its bytes.
      num_threads: interpreter threads; None lets LiteRT choose.
      xnnpack: apply LiteRT's default XNNPACK delegate. None (the default) applies it
        when the model loads with it, and otherwise runs on the built-in kernels (a
        sparse-encoded model), so such a file can still be verified.

    Raises:
      FileNotFoundError: `path` does not exist.
      ValueError: the file is not a valid TFLite model, or it has more than one input.

    Example:
      >>> logits = LiteRTModel("model.tflite").predict(x_test)
    """

    def __init__(self, path, num_threads: int = None, xnnpack: bool = None):
        path = path if isinstance(path, bytes) else os.fspath(path)
        try:
            self._interpreter = load_interpreter(path, num_threads, xnnpack=xnnpack is not False)
        except XNNPackRefusedError:
            if xnnpack:
                raise
            self._interpreter = load_interpreter(path, num_threads, xnnpack=False)
        inputs = self._interpreter.get_input_details()
        if len(inputs) != 1:
            name = "The model" if isinstance(path, bytes) else path
            raise ValueError(f"{name} has {len(inputs)} inputs; only single-input models are supported so far.")
        self.input = inputs[0]
        self.output = self._interpreter.get_output_details()[0]

    @property
    def input_shape(self) -> tuple:
        """The shape of one input, batch left out."""
        return tuple(int(size) for size in self.input["shape"][1:])

    def predict(self, x: np.ndarray) -> np.ndarray:
        """Runs the model on each example in turn (batch 1, as on a phone).

        Args:
          x: float inputs of shape `(n,) + input_shape`.

        Returns:
          float32 outputs of shape `(n,) + output shape`, dequantized if the file's
          output is an integer type.

        Example:
          >>> LiteRTModel("model.tflite").predict(x_test[:10]).shape
          (10, 10)
        """
        outputs = []
        for example in x:
            self._interpreter.set_tensor(self.input["index"], _quantize(example[np.newaxis], self.input))
            self._interpreter.invoke()
            outputs.append(_dequantize(self._interpreter.get_tensor(self.output["index"]), self.output))
        return np.concatenate(outputs)


def _quantize(values, details):
    dtype = details["dtype"]
    if not np.issubdtype(dtype, np.integer):
        return values.astype(dtype)
    scale, zero_point = details["quantization"]
    limits = np.iinfo(dtype)
    return np.clip(np.round(values / scale + zero_point), limits.min, limits.max).astype(dtype)


def _dequantize(values, details):
    if not np.issubdtype(details["dtype"], np.integer):
        return values.astype(np.float32)
    scale, zero_point = details["quantization"]
    return ((values.astype(np.float32) - zero_point) * scale).astype(np.float32)
