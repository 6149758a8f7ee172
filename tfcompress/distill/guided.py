"""Recovering accuracy after a lossy step with the model it came from as the teacher.

The model before pruning or quantization is the best teacher the smaller model can
have: it has the same task, the same data and nearly the same function. Every recovery
step (channel fine-tuning, magnitude pruning, quantization-aware training) trains
through `trainer`, which is the model itself compiled for its task, or a `Distiller`
with that teacher.
"""

from tfcompress import _tasks
from tfcompress._checks import check_number
from tfcompress._keras3 import keras_of
from tfcompress.distill.distiller import Distiller
from tfcompress.distill.features import Hint

# As the distill stage: mostly soft targets, softened enough to carry the classes' similarities.
ALPHA = 0.1
TEMPERATURE = 4.0


def trainer(model, learning_rate, *, teacher=None, task=None, alpha: float = ALPHA, temperature: float = TEMPERATURE,
            hints=()):  # fmt: skip
    """What to call `fit` on to train `model`: itself compiled for its task, or a Distiller with `teacher`."""
    task = task or _tasks.infer(model)
    if teacher is None:
        if hints:
            raise ValueError("`hints` match the teacher's layers; pass `teacher=` with them, or drop `hints`.")
        return _tasks.compile_for(model, learning_rate, task)
    check_number("alpha", alpha, low=0, high=1)
    check_number("temperature", temperature, low=0, low_open=True)
    distiller = Distiller(student=model, teacher=teacher, task=task.kind)
    keras = keras_of(model)
    distiller.compile(
        optimizer=keras.optimizers.Adam(learning_rate),
        metrics=task.metrics(keras),
        alpha=alpha,
        temperature=temperature,
        feature_losses=[Hint(name, name) for name in hints] or None,
    )
    return distiller
