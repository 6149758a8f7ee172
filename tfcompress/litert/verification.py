"""Checking an exported `.tflite` against the Keras model it came from, output by output, each in its task's terms."""

import numpy as np

from tfcompress._keras import tf
from tfcompress._model_guards import any_keras_model
from tfcompress._models import output_names
from tfcompress._tasks import infer_all
from tfcompress.data.arrays import collect, input_arrays, input_specs
from tfcompress.litert.interpreter import LiteRTModel


def verify(path, model, x, y=None, *, task=None, limit: int = None) -> dict:
    """Runs the `.tflite` in the LiteRT interpreter and the Keras model on the same inputs.

    Each output is measured in its task's terms: top-1 for multi-class, the side of the threshold for binary,
    each label for multi-label, errors (never an accuracy) for regression.

    Args:
      path: the `.tflite` file.
      model: the Keras model it was exported from, tf_keras or Keras 3.
      x: held-out inputs: an array (a list or dict for several inputs), or a batched `tf.data.Dataset` of `(x, y)`.
      y: labels of the first output as you hold them (classes, one-hot, 0/1, multi-hot, values).
      task: the first output's task, or a dict of them by output name; None infers each.
      limit: use at most this many examples.

    Returns:
      A dict with `samples`; `outputs`, one dict per output name with its `task`,
      `agreement` (the share of decisions the file makes as the model does; None for
      regression), `top1_agreement` (multi-class only, else None), `max_abs_error`,
      `mean_abs_error`, and `exact_match_agreement` (multi-label) or `relative_error`
      (regression); the first output's figures at the top level too, with its
      `task_source` (what said the task); and, with labels, the first output's
      `keras_accuracy` and `tflite_accuracy` (None for regression), `keras_exact_match`
      and `tflite_exact_match` (multi-label), `keras_mae`, `tflite_mae`, `keras_rmse`
      and `tflite_rmse` (regression).

    Raises:
      TypeError: `model` is not a Keras model.
      FileNotFoundError: there is no file at `path`.
      ValueError: the file is not a valid model; `x` is empty, NaN or wrongly shaped; the
        file's inputs or outputs do not match the model's; the labels fit no task of the
        output; `task` contradicts an output, or one output's task cannot be told.

    Examples:
      >>> tfc.litert.verify("model.tflite", model, x_test, y_test)["agreement"]
      1.0  # the demo's int8 student on 360 held-out digits
    """
    model = any_keras_model(model)
    specs = input_specs(model)
    if isinstance(x, tf.data.Dataset):
        if y is not None:
            raise ValueError("`x` is a tf.data.Dataset, which carries its own labels; pass y=None.")
        x, y = collect(x, limit, inputs=len(specs))
    arrays = input_arrays(x, specs, limit=limit)
    if y is not None and len(y) < len(arrays[0]):
        raise ValueError(f"`y` has {len(y)} labels for {len(arrays[0])} examples; they must match.")
    labels = None if y is None else np.asarray(y)[: len(arrays[0])]
    tasks = infer_all(model, task=task, labels=labels)
    if labels is not None:
        labels = tasks[0].labels(labels, model.outputs[0].shape[1:])
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
        name: task_.compare(tflite_outputs[index], keras_output)
        for index, (name, task_, keras_output) in enumerate(zip(output_names(model), tasks, keras_outputs))
    }
    first = dict(outputs[output_names(model)[0]], task_source=tasks[0].source)
    scores = {"keras_accuracy": None, "tflite_accuracy": None}
    if labels is not None:
        for side, values in (("keras", keras_outputs[0]), ("tflite", tflite_outputs[0])):
            scores.update({f"{side}_{key}": value for key, value in tasks[0].score(values, labels).items()})
    return {"samples": int(len(arrays[0])), **scores, **first, "outputs": outputs}


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
    names = [name if name in tflite_outputs else name.removeprefix("quant_") for name in output_names(model)]
    missing = [name for name in names if name not in tflite_outputs]
    if missing:
        raise ValueError(
            f"{path} has the outputs {sorted(tflite_outputs)}, but {model.name!r} has {output_names(model)}; "
            "verify a file against the model it was exported from (tfc.export.to_tflite names them after it)."
        )
    return [tflite_outputs[name] for name in names]
