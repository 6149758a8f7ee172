"""Checking an exported `.tflite` against the Keras model it came from, output by output."""

import numpy as np

from tfcompress._keras import tf
from tfcompress._model_guards import ensure_keras2_model
from tfcompress.data.arrays import collect, input_arrays, input_specs
from tfcompress.export.litert import LiteRTModel


def verify(path, model, x, y=None, *, limit: int = None) -> dict:
    """Runs the `.tflite` in the LiteRT interpreter and the Keras model on the same inputs.

    Args:
      path: the `.tflite` file.
      model: the Keras 2 model it was exported from.
      x: held-out inputs: an array (a list or dict of arrays for several inputs), or a
        batched `tf.data.Dataset` of `(x, y)`. Token ids stay integers.
      y: integer class labels for the first output; with them, accuracies are reported.
      limit: use at most this many examples.

    Returns:
      A dict with `samples`; `outputs`, one dict per output name with `top1_agreement`
      (share of examples, or positions, where both give the same highest score; None for
      an output of one value, a regression), `max_abs_error` and `mean_abs_error`; the
      first output's figures at the top level too; and, with labels, `keras_accuracy` and
      `tflite_accuracy` of the first output (else None).

    Raises:
      TypeError: `model` is not a Keras 2 model.
      FileNotFoundError: there is no file at `path`.
      ValueError: the file is not a valid model, `x` is empty, NaN or wrongly shaped, or
        the file's inputs or outputs do not match the model's.

    Example:
      >>> tfc.export.verify("model.tflite", model, x_test, y_test)["top1_agreement"]
      1.0  # the demo's int8 student on 360 held-out digits
    """
    ensure_keras2_model(model)
    specs = input_specs(model)
    if isinstance(x, tf.data.Dataset):
        if y is not None:
            raise ValueError("`x` is a tf.data.Dataset, which carries its own labels; pass y=None.")
        x, y = collect(x, limit, inputs=len(specs))
    arrays = input_arrays(x, specs, limit=limit)
    tflite_model = LiteRTModel(path)
    if len(tflite_model.input_names) != len(specs):
        raise ValueError(
            f"{path} takes {len(tflite_model.input_names)} inputs {tflite_model.input_names}, but {model.name!r} "
            f"takes {len(specs)}; verify a file against the model it was exported from."
        )
    tflite_outputs = tflite_model.predict(
        arrays[0] if len(arrays) == 1 else {spec.name: array for spec, array in zip(specs, arrays)}
    )
    tflite_outputs = _by_model_output(path, tflite_model, tflite_outputs, model)
    keras_outputs = model.predict(arrays if len(arrays) > 1 else arrays[0], batch_size=256, verbose=0)
    keras_outputs = keras_outputs if isinstance(keras_outputs, list) else [keras_outputs]
    outputs = {
        name: _compare(tflite_outputs[index], np.asarray(keras_output, np.float32))
        for index, (name, keras_output) in enumerate(zip(model.output_names, keras_outputs))
    }
    first = outputs[model.output_names[0]]
    accuracies = {"keras_accuracy": None, "tflite_accuracy": None}
    if y is not None:
        labels = np.asarray(y)[: len(arrays[0])].reshape(-1)
        if len(labels) != len(arrays[0]):
            raise ValueError(f"`y` has {len(labels)} labels for {len(arrays[0])} examples; they must match.")
        accuracies = {
            "keras_accuracy": float(np.mean(np.argmax(keras_outputs[0], axis=-1) == labels)),
            "tflite_accuracy": float(np.mean(np.argmax(tflite_outputs[0], axis=-1) == labels)),
        }
    return {"samples": int(len(arrays[0])), **accuracies, **first, "outputs": outputs}


def _compare(tflite_output, keras_output) -> dict:
    errors = np.abs(tflite_output - keras_output)
    scores = keras_output.shape[-1] > 1  # class scores; one value per example is a regression
    agreement = np.mean(np.argmax(tflite_output, axis=-1) == np.argmax(keras_output, axis=-1)) if scores else None
    return {
        "top1_agreement": None if agreement is None else float(agreement),
        "max_abs_error": float(errors.max()),
        "mean_abs_error": float(errors.mean()),
    }


def _by_model_output(path, tflite_model, tflite_outputs, model) -> list:
    """The file's outputs in the model's output order: by name, or by position for one output."""
    if not isinstance(tflite_outputs, dict):
        tflite_outputs = {tflite_model.output_names[0]: tflite_outputs}
    if len(tflite_outputs) != len(model.outputs):
        raise ValueError(
            f"{path} has {len(tflite_outputs)} outputs, but {model.name!r} has {len(model.outputs)}; "
            "verify a file against the model it was exported from."
        )
    if len(tflite_outputs) == 1:
        return list(tflite_outputs.values())
    # A quantization-aware model's outputs are TF-MOT's "quant_" wrappers; the file keeps the layers' names.
    names = [name if name in tflite_outputs else name.removeprefix("quant_") for name in model.output_names]
    missing = [name for name in names if name not in tflite_outputs]
    if missing:
        raise ValueError(
            f"{path} has the outputs {sorted(tflite_outputs)}, but {model.name!r} has {model.output_names}; "
            "verify a file against the model it was exported from (tfc.export.to_tflite names them after it)."
        )
    return [tflite_outputs[name] for name in names]
