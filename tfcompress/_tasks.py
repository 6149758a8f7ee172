"""The task of a model's output: what it predicts, how its answers are read, and how they are measured.

Each output is one of four tasks, or a per-position version of one (a sequence's steps, a map's pixels):
- "multiclass": one class of several, from scores (logits or softmax) whose highest wins; accuracy, top-1 agreement;
- "binary": yes or no from one value, a logit decided at 0 or a sigmoid probability at 0.5; accuracy at that
  threshold, and agreement on the side of it;
- "multilabel": independent yes/nos, one value each; accuracy and agreement per label (their mean), and exact match;
- "regression": values; mean absolute and root-mean-square error, relative error, never an accuracy.

The task is what the user says (`task=`), else what the compiled loss trains, else what the output layer computes,
else what the labels hold. One linear unit with none of these (a binary logit, or a value?) is refused with the fix.
"""

import dataclasses

import numpy as np

from tfcompress._checks import check_one_of
from tfcompress._choices import TASKS
from tfcompress._keras3 import keras_of
from tfcompress._models import graph_outputs, inbound_nodes, output_names

# Losses by class or function name, and the task they train ("binary" on several units is multi-label).
_LOSSES = {
    **dict.fromkeys(
        ("SparseCategoricalCrossentropy", "CategoricalCrossentropy", "CategoricalFocalCrossentropy",
         "sparse_categorical_crossentropy", "categorical_crossentropy", "categorical_focal_crossentropy"),
        "multiclass",
    ),
    **dict.fromkeys(
        ("BinaryCrossentropy", "BinaryFocalCrossentropy", "binary_crossentropy", "binary_focal_crossentropy"),
        "binary",
    ),
    **dict.fromkeys(
        ("MeanSquaredError", "MeanAbsoluteError", "Huber", "LogCosh", "MeanSquaredLogarithmicError",
         "MeanAbsolutePercentageError", "mean_squared_error", "mean_absolute_error", "mse", "mae", "huber",
         "huber_loss", "log_cosh", "logcosh", "mean_squared_logarithmic_error", "msle",
         "mean_absolute_percentage_error", "mape"),
        "regression",
    ),
}  # fmt: skip
# Layers between a head and the output that change neither its values nor their meaning, in either Keras.
_TRANSPARENT = ("Reshape", "Flatten", "Dropout", "Permute")
# TensorFlow functions recorded as layers (Keras 2's TFOpLambda), and Keras 3's operations, that make a head.
_OP_ACTIVATIONS = {"nn.softmax": "softmax", "math.softmax": "softmax", "nn.sigmoid": "sigmoid",
                   "math.sigmoid": "sigmoid"}  # fmt: skip
_OPERATION_ACTIVATIONS = {"Softmax": "softmax", "Sigmoid": "sigmoid"}
_WORDS = {"multiclass": "multi-class", "binary": "binary", "multilabel": "multi-label", "regression": "regression"}


@dataclasses.dataclass(frozen=True)
class Task:
    """What one output predicts, and how its answers are read and measured.

    Attributes:
      kind: "multiclass", "binary", "multilabel" or "regression".
      logits: a classifier's scores come before the sigmoid or softmax (binary and
        multi-label decide at 0, not 0.5); False for probabilities and regression.
      positions: one answer per position (a sequence step, a pixel), not per example.
      source: what said so, in words ("task='binary'", "the compiled loss ...").
      assumed: nothing said so: several linear units, read as a multi-class
        classifier's logits (as the Keras tutorials build them).

    Examples:
      >>> Task("binary").agreement(tflite_logits, keras_logits)
    """

    kind: str
    logits: bool = True
    positions: bool = False
    source: str = ""
    assumed: bool = False

    @property
    def threshold(self) -> float:
        """Where a binary or multi-label score turns from no to yes."""
        return 0.0 if self.logits else 0.5

    @property
    def measure(self) -> str:
        """The primary measure's key in `score`: "accuracy" for classifiers, "mae" for regression."""
        return "mae" if self.kind == "regression" else "accuracy"

    def describe(self) -> str:
        """The task in words, e.g. "binary (one logit, decided at 0)"."""
        where = " per position" if self.positions else ""
        if self.kind == "regression":
            return f"regression{where}"
        if self.kind == "multiclass":
            return f"multi-class{where} ({'logits' if self.logits else 'probabilities'}, the highest wins)"
        one = "one logit" if self.kind == "binary" else "a logit per label"
        one = one if self.logits else one.replace("logit", "probability")
        return f"{_WORDS[self.kind]}{where} ({one}, decided at {self.threshold:g})"

    def decisions(self, outputs) -> np.ndarray:
        """The answers: class indices (multi-class), booleans (binary: one per example, multi-label: one per label)."""
        outputs = np.asarray(outputs)
        if self.kind == "multiclass":
            return np.argmax(outputs, axis=-1)
        if self.kind == "binary":
            return outputs[..., 0] > self.threshold
        if self.kind == "multilabel":
            return outputs > self.threshold
        raise ValueError("A regression output makes no decision to compare; its errors are what there is.")

    def compare(self, tflite_outputs, keras_outputs) -> dict:
        """How far a file's outputs are from the Keras model's, in this task's terms."""
        tflite_outputs, keras_outputs = np.asarray(tflite_outputs), np.asarray(keras_outputs, np.float32)
        errors = np.abs(tflite_outputs - keras_outputs)
        figures = {"task": self.kind, "agreement": None, "top1_agreement": None}
        if self.kind == "regression":
            magnitude = float(np.mean(np.abs(keras_outputs)))
            figures["relative_error"] = float(errors.mean()) / magnitude if magnitude > 0 else None
        else:
            same = self.decisions(tflite_outputs) == self.decisions(keras_outputs)
            figures["agreement"] = float(np.mean(same))
            if self.kind == "multiclass":
                figures["top1_agreement"] = figures["agreement"]
            if self.kind == "multilabel":
                figures["exact_match_agreement"] = float(np.mean(np.all(same, axis=-1)))
        figures.update(max_abs_error=float(errors.max()), mean_abs_error=float(errors.mean()))
        return figures

    def score(self, outputs, labels) -> dict:
        """This task's measures of outputs against labels that `labels` has checked."""
        outputs = np.asarray(outputs, np.float32)
        if self.kind == "regression":
            errors = outputs - labels
            return {"mae": float(np.mean(np.abs(errors))), "rmse": float(np.sqrt(np.mean(np.square(errors))))}
        truth = labels if self.kind == "multiclass" else labels >= 0.5
        truth = truth[..., 0] if self.kind == "binary" else truth
        right = self.decisions(outputs) == truth
        if self.kind == "multilabel":
            return {"accuracy": float(np.mean(right)), "exact_match": float(np.mean(np.all(right, axis=-1)))}
        return {"accuracy": float(np.mean(right))}

    def drop(self, reference: float, measured: float) -> float:
        """How much worse `measured` is than `reference` in the primary measure."""
        if self.kind == "regression":
            return (measured - reference) / reference if reference > 0 else float(measured > reference)
        return reference - measured

    def drop_words(self, drop: float) -> str:
        """A drop as `drop` computes it, in words: "drop 0.50 points", or "MAE rise 1.20%" of a regression."""
        if self.kind == "regression":
            return f"MAE {'rise' if drop >= 0 else 'fall'} {abs(drop):.2%}"
        return f"drop {drop * 100:.2f} points"

    def labels(self, y, output_shape, *, argument: str = "y") -> np.ndarray:
        """Labels as users hold them, checked and in the form the measures read."""
        y = np.asarray(y)
        shape = tuple(output_shape)
        if y.ndim == 0 or not (np.issubdtype(y.dtype, np.number) or y.dtype == bool):
            raise ValueError(f"`{argument}` must be an array of numeric labels. Received: {_shown(y)}")
        values = y.astype(np.float64)
        if not np.all(np.isfinite(values)):
            raise ValueError(f"`{argument}` holds NaN or infinite labels; clean them first.")
        fits = _LABEL_SHAPES[self.kind](y.shape[1:], shape)
        if self.kind == "multiclass":
            if fits == "one-hot" and np.all(values >= 0) and np.allclose(values.sum(-1), 1):  # soft labels too
                return np.argmax(values, axis=-1)
            classes = values.reshape((len(y),) + shape[:-1]) if fits == "sparse" else None
            if classes is not None and np.all(classes == np.round(classes)) and classes.min() >= 0:
                if classes.max() < shape[-1]:
                    return classes.astype(np.int64)
        elif fits and self.kind in ("binary", "multilabel"):
            if np.all((values >= 0) & (values <= 1)):
                return values.reshape((len(y),) + shape).astype(np.float32)
        elif fits:
            return values.reshape((len(y),) + shape).astype(np.float32)
        raise ValueError(
            f"`{argument}` does not hold labels of a {self.describe()} output of shape {shape}: "
            f"{_EXPECTED[self.kind](shape)}. Received: {_shown(y)}. If the output is another task, say so with "
            "task= ('multiclass', 'binary', 'multilabel' or 'regression')."
        )

    def loss(self, keras=None):
        """The Keras loss that trains this task: cross-entropy for classifiers, mean squared error for regression.

        Args:
          keras: the Keras module to build it with (the model's: `tfcompress._keras3.keras_of(model)`); tf_keras
            by default.
        """
        keras = keras or keras_of(None)
        if self.kind == "multiclass":
            return keras.losses.SparseCategoricalCrossentropy(from_logits=self.logits)
        if self.kind == "regression":
            return keras.losses.MeanSquaredError()
        return keras.losses.BinaryCrossentropy(from_logits=self.logits)

    def metrics(self, keras=None) -> list:
        """The Keras metric of this task's primary measure, named "accuracy" or "mae", built with `keras` as `loss`."""
        keras = keras or keras_of(None)
        if self.kind == "multiclass":
            return [keras.metrics.SparseCategoricalAccuracy(name="accuracy")]
        if self.kind == "regression":
            return [keras.metrics.MeanAbsoluteError(name="mae")]
        return [keras.metrics.BinaryAccuracy(name="accuracy", threshold=self.threshold)]


def _shown(y) -> str:
    values = np.unique(y.reshape(-1)[:10_000]) if y.size else y
    shown = ", ".join(f"{value:g}" if isinstance(value, (float, np.floating)) else str(value) for value in values[:5])
    return f"shape {y.shape}, dtype {y.dtype}, values {{{shown}{', ...' if len(values) > 5 else ''}}}"


def _multiclass_fit(label_shape, shape):
    if label_shape == shape:
        return "one-hot"
    return "sparse" if label_shape in (shape[:-1], shape[:-1] + (1,)) else None


_LABEL_SHAPES = {
    "multiclass": _multiclass_fit,
    "binary": lambda label_shape, shape: label_shape in (shape, shape[:-1]),
    "multilabel": lambda label_shape, shape: label_shape == shape,
    "regression": lambda label_shape, shape: label_shape == shape or (shape[-1:] == (1,) and label_shape == shape[:-1]),
}
_EXPECTED = {
    "multiclass": lambda shape: f"integer classes 0..{shape[-1] - 1} of shape {_batch(shape[:-1])}, or one-hot rows "
    f"of shape {_batch(shape)}",
    "binary": lambda shape: "0 or 1 (float, int or bool), one per example" + (" and position" * (len(shape) > 1)),
    "multilabel": lambda shape: f"multi-hot rows of 0s and 1s, of shape {_batch(shape)}",
    "regression": lambda shape: f"values of the output's shape {_batch(shape)}",
}


def _batch(shape) -> str:
    return "(" + ", ".join(["n", *map(str, shape)]) + ("," if not shape else "") + ")"


class UnknownTaskError(ValueError):
    """One linear unit, and nothing says whether it is a binary logit or a regression value."""


def infer(model, output: int = 0, *, task=None, labels=None, loss=None, argument: str = "task") -> Task:
    """The task of one output of a Keras model (either Keras)."""
    if not graph_outputs(model):  # subclassed or unbuilt: no output layer to read
        kind = task or (_from_loss(loss if loss is not None else getattr(model, "loss", None)) or ("multiclass",))[0]
        check_one_of(argument, kind, TASKS)
        source = f"{argument}={task!r}" if task else "no output layer to read"
        return Task(kind, logits=kind != "regression", source=source)
    name = output_names(model)[output]
    shape = tuple(model.outputs[output].shape[1:])
    activation, units = _head_activation(model, output), shape[-1] if shape else 1
    head = f"{name!r} ({units} {activation} unit{'s' if units != 1 else ''})"

    def made(kind, source, assumed=False):
        logits = kind != "regression" and activation not in ("sigmoid", "softmax")
        return Task(kind, logits=logits, positions=len(shape) > 1, source=source, assumed=assumed)

    if task is not None:
        check_one_of(argument, task, TASKS)
        _check_fits(task, activation, units, head, f"`{argument}={task!r}` was given")
        return made(task, f"{argument}={task!r}")
    trained = _from_loss(loss if loss is not None else _compiled_loss(model, name, output))
    if trained is not None:
        kind, words = trained
        kind = "multilabel" if kind == "binary" and units > 1 else kind
        _check_fits(kind, activation, units, head, f"The loss {words} trains a {_WORDS[kind]} output")
        return made(kind, f"the loss {words}")
    if activation == "softmax":
        return made("multiclass", f"the softmax of output {head}")
    if activation == "sigmoid":
        return made("binary" if units == 1 else "multilabel", f"the sigmoid of output {head}")
    if activation != "linear":
        return made("regression", f"the {activation} of output {head}")
    if labels is not None:
        return made(_from_labels(np.asarray(labels), shape, head), "the labels")
    if units > 1:
        return made("multiclass", f"output {head}, read as a multi-class classifier's logits", assumed=True)
    raise UnknownTaskError(
        f"Output {head} could be a binary classifier's logit or a regression value, and nothing says which: the "
        f"model is not compiled with a loss and no labels were given. Pass {argument}='binary' (a logit, decided "
        f"at 0) or {argument}='regression'."
    )


def infer_all(model, *, task=None, labels=None, argument: str = "task") -> list:
    """The `Task` of each output of a model, in `model.output_names` order."""
    names = output_names(model)
    given = task if isinstance(task, dict) else ({names[0]: task} if task is not None else {})
    unknown = [key for key in given if key not in names]
    if unknown:
        raise ValueError(
            f"`{argument}` names outputs {unknown} that {model.name!r} does not have; its outputs are {names}."
        )
    return [
        infer(model, index, task=given.get(name), labels=labels if index == 0 else None,
              argument=argument if not isinstance(task, dict) else f"{argument}[{name!r}]")
        for index, name in enumerate(names)
    ]  # fmt: skip


def _check_fits(kind, activation, units, head, said):
    problem = None
    if kind == "multiclass" and units < 2:
        problem = "a multi-class output has a score per class, at least two; one unit is binary ('binary')"
    elif kind == "binary" and units != 1:
        problem = (
            f"a binary output is one value; {units} values are a multi-class classifier's scores ('multiclass', two "
            "classes) or independent labels ('multilabel')"
        )
    elif kind == "multilabel" and units < 2:
        problem = "a multi-label output has a value per label; one value is binary ('binary')"
    elif kind in ("binary", "multilabel") and activation == "softmax":
        problem = "a softmax makes the values compete, so they are one multi-class answer ('multiclass')"
    elif kind == "regression" and activation == "softmax":
        problem = "a softmax output is a distribution over classes ('multiclass')"
    if problem:
        raise ValueError(f"{said}, but output {head} cannot be {kind!r}: {problem}.")


def _from_loss(loss):
    """`(task, words)` for a loss known to train one task, else None."""
    if loss is None:
        return None
    name = loss if isinstance(loss, str) else getattr(loss, "__name__", None) or type(loss).__name__
    kind = _LOSSES.get(name)
    return None if kind is None else (kind, name)


def _compiled_loss(model, name, index):
    # A model rebuilt from Keras 3 or loaded from a file keeps what it was compiled with here, uncompiled.
    loss = getattr(model, "loss", None) or model.__dict__.get("_task_loss")
    if isinstance(loss, dict):
        return loss.get(name)
    if isinstance(loss, (list, tuple)):
        return loss[index] if index < len(loss) else None
    return loss


def _from_labels(y, shape, head) -> str:
    candidates = ("binary", "regression") if shape[-1] == 1 else ("multiclass", "multilabel", "regression")
    zero_one = y.size > 0 and np.all((y == 0) | (y == 1))
    for kind in candidates:
        if kind in ("binary", "multilabel") and not zero_one:  # values in (0, 1) are a regression's too
            continue
        try:
            Task(kind, positions=len(shape) > 1).labels(y, shape)
            return kind
        except ValueError:
            continue
    raise ValueError(
        f"The labels fit no task of output {head}: {_shown(y)}. Expected, for this output: "
        + "; or ".join(_EXPECTED[kind](shape) for kind in candidates)
        + "."
    )


def _head_activation(model, output) -> str:
    """The activation that makes an output: "softmax", "sigmoid", "linear" or another's name."""
    layer = _producer(model.outputs[output])
    while type(layer).__name__ in _TRANSPARENT and inbound_nodes(layer):
        layer = _producer(inbound_nodes(layer)[0].input_tensors)
    if type(layer).__name__ == "Softmax":  # the layer, or Keras 3's operation
        return "softmax"
    if type(layer).__name__ == "TFOpLambda":
        return _OP_ACTIVATIONS.get(layer.symbol, "linear")
    if type(layer).__module__.startswith("keras.src.ops"):
        return _OPERATION_ACTIVATIONS.get(type(layer).__name__, "linear")
    activation = getattr(layer, "activation", None)
    activation = getattr(activation, "activation", activation)  # TF-MOT's QuantizeAwareActivation holds it
    name = getattr(activation, "__name__", None) or (activation if isinstance(activation, str) else None)
    return name or "linear"


def _producer(tensor):
    """The layer that computes a Keras tensor, looking inside nested models and TF-MOT's wrappers."""
    tensor = tensor[0] if isinstance(tensor, (list, tuple)) else tensor
    layer, _, index = tensor._keras_history  # noqa: SLF001  (how Keras records what made a tensor)
    while hasattr(layer, "layers") and getattr(layer, "outputs", None):  # a nested Sequential or functional model
        inner = layer.outputs[index]
        layer, _, index = inner._keras_history  # noqa: SLF001
    return getattr(layer, "layer", layer)  # a QuantizeWrapper's or PruneLowMagnitude's own layer


def compile_for(model, learning_rate, task: Task):
    """Compiles `model` the way every tfcompress stage trains one: Adam, the task's loss and metric, in its Keras."""
    keras = keras_of(model)
    model.compile(optimizer=keras.optimizers.Adam(learning_rate), loss=task.loss(keras), metrics=task.metrics(keras))
    return model


def evaluate(model, x, y, task: Task = None) -> float:
    """The primary measure (`Task.measure`) of a Keras model's first output on arrays: accuracy, or MAE."""
    task = task or infer(model, labels=y)
    outputs = model.predict(x, batch_size=256, verbose=0)
    outputs = outputs[0] if isinstance(outputs, list) else outputs
    return task.score(outputs, task.labels(y, model.outputs[0].shape[1:]))[task.measure]
