"""Changing the distillation weight and temperature as training goes on."""

from tfcompress._checks import check_positive_integer
from tfcompress._keras import keras


class DistillationSchedule(keras.callbacks.Callback):
    """Sets a `Distiller`'s `alpha` and/or `temperature` at the start of every epoch.

    Surveys of knowledge distillation recommend leaning on the teacher early and on the
    labels later; with `alpha` the weight of the label loss, that is an `alpha` that rises.
    The values in force are added to the epoch's logs, so `History` and TensorBoard show them.

    Args:
      alpha: a function from the epoch (0-based) to alpha in [0, 1], or None to leave it.
      temperature: a function from the epoch to the temperature (> 0), or None to leave it.

    Raises:
      ValueError: neither function is given; or, during fit, a function returns a value
        out of range (the message names the epoch).
      TypeError: the model being fit is not a `Distiller`.

    Examples:
      >>> schedule = tfc.distill.DistillationSchedule(
      ...     alpha=tfc.distill.linear(0.1, 0.5, epochs=10), temperature=lambda epoch: 4.0)
      >>> distiller.fit(x, y, epochs=10, callbacks=[schedule])
    """

    def __init__(self, alpha=None, temperature=None):
        super().__init__()
        if alpha is None and temperature is None:
            raise ValueError("DistillationSchedule needs `alpha`, `temperature` or both: functions of the epoch.")
        self._schedules = {name: fn for name, fn in (("alpha", alpha), ("temperature", temperature)) if fn is not None}

    def on_epoch_begin(self, epoch, logs=None):
        from tfcompress.distill.distiller import Distiller

        if not isinstance(self.model, Distiller):
            raise TypeError(
                f"DistillationSchedule sets a Distiller's alpha and temperature, but the model being fit is a "
                f"{type(self.model).__name__}. Use it in tfc.Distiller(...).fit(callbacks=[...])."
            )
        for name, schedule in self._schedules.items():
            value = schedule(epoch)
            try:
                setattr(self.model, name, value)
            except ValueError as error:
                raise ValueError(f"The {name} schedule gave a bad value at epoch {epoch}: {error}") from None

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs.update({name: getattr(self.model, name) for name in self._schedules})


def linear(start: float, end: float, epochs: int):
    """A schedule that moves linearly from `start` (epoch 0) to `end` (epoch `epochs - 1`), then stays.

    Args:
      start: the value at the first epoch.
      end: the value from epoch `epochs - 1` on.
      epochs: how many epochs the change takes, >= 1.

    Returns:
      A function from the epoch to the value, for `DistillationSchedule`.

    Examples:
      >>> [round(tfc.distill.linear(0.1, 0.5, epochs=3)(epoch), 2) for epoch in range(4)]
      [0.1, 0.3, 0.5, 0.5]
    """
    check_positive_integer("epochs", epochs)
    return lambda epoch: end if epochs == 1 else start + (end - start) * min(epoch, epochs - 1) / (epochs - 1)
