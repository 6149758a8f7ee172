"""Checking an exported `.tflite` against the Keras model it came from."""

import numpy as np

from tfcompress._keras import ensure_keras2_model
from tfcompress.data.arrays import as_arrays, check_input_shape
from tfcompress.export.litert import LiteRTModel


def verify(path, model, x, y=None, *, limit: int = None) -> dict:
    """Runs the `.tflite` in the LiteRT interpreter and the Keras model on the same inputs.

    Args:
      path: the `.tflite` file.
      model: the Keras 2 model it was exported from.
      x: held-out inputs (numpy array), or a batched `tf.data.Dataset` of `(x, y)`.
      y: integer class labels for array inputs; with them, accuracies are reported.
      limit: use at most this many examples.

    Returns:
      A dict with `samples`; `top1_agreement` (share of examples where both predict the
      same class); `max_abs_error` and `mean_abs_error` between the outputs; and, with
      labels, `keras_accuracy` and `tflite_accuracy` (else None).

    Raises:
      TypeError: `model` is not a Keras 2 model.
      FileNotFoundError: there is no file at `path`.
      ValueError: the file is not a valid model, or `x` is empty, NaN, wrongly shaped, or
        its shape differs from the file's input.

    Example:
      >>> tfc.export.verify("model.tflite", model, x_test, y_test)["top1_agreement"]
      1.0  # the demo's int8 student on 360 held-out digits
    """
    ensure_keras2_model(model)
    x, y = as_arrays(x, y, limit=limit)
    tflite_model = LiteRTModel(path)
    check_input_shape(x, (None,) + tflite_model.input_shape, "x")
    tflite_outputs = tflite_model.predict(x)
    keras_outputs = np.asarray(model.predict(x, batch_size=256, verbose=0), dtype=np.float32)
    tflite_classes = np.argmax(tflite_outputs, axis=-1)
    keras_classes = np.argmax(keras_outputs, axis=-1)
    errors = np.abs(tflite_outputs - keras_outputs)
    labels = None if y is None else np.asarray(y).reshape(-1)
    return {
        "samples": int(len(x)),
        "keras_accuracy": None if labels is None else float(np.mean(keras_classes == labels)),
        "tflite_accuracy": None if labels is None else float(np.mean(tflite_classes == labels)),
        "top1_agreement": float(np.mean(tflite_classes == keras_classes)),
        "max_abs_error": float(errors.max()),
        "mean_abs_error": float(errors.mean()),
    }
