"""Magnitude pruning: a thin, safe layer over TF-MOT's `prune_low_magnitude`.

TF-MOT wraps a whole model or fails: one layer it does not know (a `Rescaling`, a
`Normalization`, a nested base model) stops the call. Here the model is flattened first
(see `tfcompress._graph`) and each layer is wrapped alone, so the layers TF-MOT can prune
are pruned and the others are left dense, each with its reason.
"""

import inspect

from tfcompress._checks import check_number, check_positive_integer
from tfcompress._graph import flat_copy
from tfcompress._keras import keras, tfmot
from tfcompress._model_guards import ensure_graph_model
from tfcompress.prune import prunable
from tfcompress.prune.prunable import PruneLowMagnitude

_sparsity = tfmot.sparsity.keras
_SCHEDULES = ("polynomial", "constant")


@keras.utils.register_keras_serializable(package="tfcompress")
class PruningModel(keras.Model):
    """The model `magnitude` returns: TF-MOT's pruned model, with a `fit` that checks callbacks.

    Without TF-MOT's `UpdatePruningStep` callback, training fails deep inside TensorFlow
    with an assertion; this `fit` says what is missing before training starts.
    `dense_layers` names the layers with weights that are not pruned, and why.

    Examples:
      >>> pruned = tfc.prune.magnitude(model, target_sparsity=0.8, epochs=2, steps_per_epoch=45)
      >>> pruned.compile(...)
      >>> pruned.fit(x, y, epochs=2, callbacks=tfc.prune.callbacks())
    """

    def fit(self, *args, **kwargs):
        """Trains like `keras.Model.fit`; `callbacks` must include `tfc.prune.callbacks()`.

        Args:
          *args: as for `keras.Model.fit`.
          **kwargs: as for `keras.Model.fit`.

        Returns:
          The `History` of `keras.Model.fit`.

        Raises:
          ValueError: the pruning-step callback is missing.

        Examples:
          >>> pruned.fit(x, y, epochs=2, callbacks=tfc.prune.callbacks())
        """
        bound = inspect.signature(keras.Model.fit).bind(self, *args, **kwargs)
        callbacks = bound.arguments.get("callbacks") or []
        if not any(map(is_pruning_step, callbacks)):
            raise ValueError(
                "Training a pruned model needs the pruning-step callback, which was not in "
                "`callbacks`. Pass callbacks=tfc.prune.callbacks() (or add its items to your list)."
            )
        return super().fit(*args, **kwargs)

    @property
    def dense_layers(self) -> dict:
        """The layers with weights that `magnitude` left dense: `{layer name: why}`."""
        return dict(self.__dict__.get("_dense_layers", {}))


def magnitude(
    model,
    target_sparsity: float = 0.8,
    *,
    epochs: int = None,
    steps_per_epoch: int = None,
    end_step: int = None,
    schedule: str = None,
    m_by_n: tuple = None,
    **schedule_options,
):
    """Wraps a copy of `model` for magnitude pruning with TF-MOT's `prune_low_magnitude`.

    Sparsity reaches `target_sparsity` after `epochs * steps_per_epoch` steps (or at `end_step`). Nested bases are
    flattened; frozen layers and layers TF-MOT cannot prune stay dense (`PruningModel.dense_layers` says why).

    Args:
      model: a built Sequential or functional Keras 2 model.
      target_sparsity: the share of each prunable kernel set to zero, in [0, 1).
      epochs: epochs over which sparsity rises to the target (with `steps_per_epoch`).
      steps_per_epoch: batches per epoch, e.g. `math.ceil(len(x_train) / batch_size)`.
      end_step: alternatively, the step at which the target is reached.
      schedule: "polynomial" (gradual) or "constant"; None is "polynomial", or "constant" with `m_by_n`.
      m_by_n: `(m, n)` for N:M sparsity, e.g. (2, 4), with `target_sparsity` m / n; layers whose input channels
        do not divide by n stay dense.
      **schedule_options: the schedule's `begin_step` (default 0), `initial_sparsity` ("polynomial" only,
        default 0) and `frequency` (prune every this many steps; default a tenth of the span, at most 100).

    Returns:
      A new `PruningModel` with TF-MOT pruning wrappers. Compile and fit it with
      `callbacks=tfc.prune.callbacks()`, then `tfc.prune.strip` it.

    Raises:
      TypeError: `model` is not a Keras 2 model.
      ValueError: an argument is out of range, the step arguments are missing or given
        twice, `schedule` is unknown, `model` is subclassed, unbuilt or already pruned, or
        it has no layer that can be pruned (every layer named with its reason).

    Examples:
      >>> pruned = tfc.prune.magnitude(model, target_sparsity=0.8, epochs=2,
      ...                              steps_per_epoch=math.ceil(len(x) / 32))
      >>> pruned.compile(optimizer="adam", loss=loss, metrics=["accuracy"])
      >>> pruned.fit(x, y, batch_size=32, epochs=3, callbacks=tfc.prune.callbacks())
      >>> small = tfc.prune.strip(pruned)
    """
    model = ensure_graph_model(model)
    if is_pruned(model):
        raise ValueError("`model` already has pruning wrappers. Strip them first with tfc.prune.strip(model).")
    check_number("target_sparsity", target_sparsity, low=0, high=1, high_open=True)
    unknown = sorted(set(schedule_options) - {"begin_step", "initial_sparsity", "frequency"})
    if unknown:
        raise TypeError(
            f"magnitude() got unexpected keyword arguments {unknown}. Besides its own, it takes the schedule's "
            "begin_step, initial_sparsity and frequency."
        )
    pruning_schedule = _pruning_schedule(target_sparsity, schedule, m_by_n, epochs, steps_per_epoch, end_step,
                                         **schedule_options)  # fmt: skip
    wrapped, dense = prunable.wrap(
        flat_copy(model), pruning_schedule=pruning_schedule, sparsity_m_by_n=m_by_n and tuple(m_by_n)
    )
    pruned = PruningModel(inputs=wrapped.inputs, outputs=wrapped.outputs, name=f"{model.name}_pruned")
    pruned.__dict__["_dense_layers"] = dense  # set past Keras's attribute tracking: plain data
    return pruned


def _pruning_schedule(target_sparsity, schedule, m_by_n, epochs, steps_per_epoch, end_step, *, begin_step=0,
                      initial_sparsity=0.0, frequency=None):  # fmt: skip
    """TF-MOT's schedule for `magnitude`'s arguments, each checked."""
    check_number("initial_sparsity", initial_sparsity, low=0, high=1, high_open=True)
    if m_by_n is not None:
        _check_m_by_n(m_by_n, target_sparsity, schedule)
    schedule = schedule or ("constant" if m_by_n else "polynomial")
    if schedule not in _SCHEDULES:
        raise ValueError(f"`schedule` must be one of {_SCHEDULES}. Received: schedule={schedule!r}")
    if schedule == "constant" and initial_sparsity != 0:
        raise ValueError(
            "`initial_sparsity` only applies to the 'polynomial' schedule; 'constant' prunes to "
            f"`target_sparsity` from the first step. Received: initial_sparsity={initial_sparsity}"
        )
    if schedule == "polynomial" and initial_sparsity > target_sparsity:
        raise ValueError(
            f"`initial_sparsity` ({initial_sparsity}) must not exceed `target_sparsity` ({target_sparsity})."
        )
    end_step = _resolve_end_step(epochs, steps_per_epoch, end_step, begin_step)
    span = end_step - begin_step
    if frequency is None:
        frequency = max(1, min(100, span // 10))
    else:
        check_positive_integer("frequency", frequency)
    # TF-MOT prunes at begin_step + k * frequency; end there so the target is reached.
    end_step = begin_step + frequency * max(1, span // frequency)

    if schedule == "polynomial":
        pruning_schedule = _sparsity.PolynomialDecay(
            initial_sparsity=initial_sparsity,
            final_sparsity=target_sparsity,
            begin_step=begin_step,
            end_step=end_step,
            frequency=frequency,
        )
    else:
        pruning_schedule = _sparsity.ConstantSparsity(
            target_sparsity, begin_step=begin_step, end_step=end_step, frequency=frequency
        )
    return pruning_schedule


def callbacks(log_dir: str = None) -> list:
    """The callbacks a pruned model's `fit` needs.

    Args:
      log_dir: if given, also write TF-MOT's per-layer sparsity summaries for TensorBoard.

    Returns:
      A list with TF-MOT's `UpdatePruningStep` (and `PruningSummaries` with `log_dir`).

    Examples:
      >>> pruned.fit(x, y, callbacks=tfc.prune.callbacks())
    """
    found = [_sparsity.UpdatePruningStep()]
    if log_dir is not None:
        found.append(_sparsity.PruningSummaries(log_dir=log_dir))
    return found


def is_pruning_step(callback) -> bool:
    """Whether `callback` is TF-MOT's pruning-step callback, which training a pruned model needs."""
    return isinstance(callback, _sparsity.UpdatePruningStep)


def strip(model):
    """Removes the pruning wrappers: a plain Keras model with the zeros in its kernels.

    Args:
      model: a model returned by `magnitude` (and trained).

    Returns:
      A new plain Keras model, independent of `model`: training either later does not
      change the other.

    Raises:
      TypeError: `model` is not a Keras 2 model.
      ValueError: `model` has no pruning wrappers.

    Examples:
      >>> small = tfc.prune.strip(pruned)
      >>> small.save("pruned.keras")
    """
    model = ensure_graph_model(model)
    if not is_pruned(model):
        raise ValueError("`model` has no pruning wrappers to strip; it is already a plain model.")
    stripped = _sparsity.strip_pruning(model)
    # strip_pruning hands back the wrapped layers themselves; copy them to cut the link,
    # and give back the user's own layer classes where a prunable subclass stood in.
    return flat_copy(stripped, substitute=prunable.restore)


def is_pruned(model) -> bool:
    """Whether `model` holds TF-MOT pruning wrappers.

    Args:
      model: a Keras 2 model.

    Returns:
      True if any layer is a `PruneLowMagnitude` wrapper.

    Examples:
      >>> is_pruned(tfc.prune.magnitude(model, end_step=100))
      True
    """
    return any(isinstance(layer, PruneLowMagnitude) for layer in model.submodules)


def _check_m_by_n(m_by_n, target_sparsity, schedule):
    valid = (
        isinstance(m_by_n, (tuple, list))
        and len(m_by_n) == 2
        and all(isinstance(value, int) and not isinstance(value, bool) for value in m_by_n)
        and 0 < m_by_n[0] < m_by_n[1]
    )
    if not valid:
        raise ValueError(f"`m_by_n` must be a pair (m, n) of ints with 0 < m < n, e.g. (2, 4). Received: {m_by_n!r}")
    m, n = m_by_n
    if abs(target_sparsity - m / n) > 1e-9:
        raise ValueError(
            f"With m_by_n=({m}, {n}) the sparsity is {m}/{n} = {m / n:g}; pass target_sparsity={m / n:g}. "
            f"Received: target_sparsity={target_sparsity}"
        )
    if schedule not in (None, "constant"):
        raise ValueError(
            f"N:M sparsity is applied whole at each pruning step: use schedule='constant', not {schedule!r}."
        )


def _resolve_end_step(epochs, steps_per_epoch, end_step, begin_step):
    if not isinstance(begin_step, int) or begin_step < 0:
        raise ValueError(f"`begin_step` must be an integer >= 0. Received: begin_step={begin_step!r}")
    by_epochs = epochs is not None or steps_per_epoch is not None
    if by_epochs and end_step is not None:
        raise ValueError("Give either `epochs` with `steps_per_epoch`, or `end_step`, not both.")
    if end_step is None:
        if epochs is None or steps_per_epoch is None:
            raise ValueError(
                "Say how long pruning lasts: pass `epochs` and `steps_per_epoch` "
                "(e.g. steps_per_epoch=math.ceil(len(x_train) / batch_size)), or `end_step`."
            )
        check_positive_integer("epochs", epochs)
        check_positive_integer("steps_per_epoch", steps_per_epoch)
        end_step = epochs * steps_per_epoch
    if not isinstance(end_step, int) or end_step <= begin_step:
        raise ValueError(
            f"`end_step` must be an integer greater than `begin_step` ({begin_step}). Received: end_step={end_step!r}"
        )
    return end_step
