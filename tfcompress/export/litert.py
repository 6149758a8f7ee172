"""Running a `.tflite` file in the LiteRT interpreter, float in and float out."""

import os

import numpy as np
from ai_edge_litert.interpreter import Interpreter


def load_interpreter(source, num_threads: int = None):
    """An allocated LiteRT interpreter, with LiteRT's default delegate (XNNPACK), or a clear error.

    Args:
      source: the path of a `.tflite` file, or the model's bytes.
      num_threads: interpreter threads; None lets LiteRT choose.

    Returns:
      An `ai_edge_litert.interpreter.Interpreter` with its tensors allocated.

    Raises:
      FileNotFoundError: `source` is a path and no file is there.
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
    try:
        interpreter = Interpreter(num_threads=num_threads, **where)
        interpreter.allocate_tensors()
    except (ValueError, RuntimeError) as error:
        raise ValueError(
            f"{name} could not be loaded by the LiteRT interpreter ({error}). "
            "It may be truncated or not a TFLite model; export it again."
        ) from error
    return interpreter


class LiteRTModel:
    """A `.tflite` model loaded in LiteRT that takes and returns float arrays.

    Quantized inputs and outputs (int8 or uint8) are converted with the scale and zero
    point stored in the file, so callers never handle raw integers.

    Args:
      path: the `.tflite` file.
      num_threads: interpreter threads; None lets LiteRT choose.

    Raises:
      FileNotFoundError: `path` does not exist.
      ValueError: the file is not a valid TFLite model, or it has more than one input.

    Example:
      >>> logits = LiteRTModel("model.tflite").predict(x_test)
    """

    def __init__(self, path, num_threads: int = None):
        path = os.fspath(path)
        self._interpreter = load_interpreter(path, num_threads)
        inputs = self._interpreter.get_input_details()
        if len(inputs) != 1:
            raise ValueError(f"{path} has {len(inputs)} inputs; only single-input models are supported so far.")
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
