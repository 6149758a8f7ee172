"""Magnitude pruning in the model's Keras: `magnitude`, `callbacks`, `strip`, checked here once for both engines.

A tf_keras model goes through TF-MOT (`keras2_pruning`); a Keras 3 model, which TF-MOT cannot
take, through tfcompress's own masks (`keras3_pruning`). Both follow TF-MOT's schedules and
leave the same zeros; what comes back is a model of the Keras that came in.
"""

import importlib

from tfcompress._checks import check_number, check_positive_integer
from tfcompress._keras3 import is_keras3_model
from tfcompress._model_guards import graph_model
from tfcompress.prune.sparsity_schedule import SparsitySchedule

_SCHEDULES = ("polynomial", "constant")


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
    """A copy of `model` that prunes its smallest weights to `target_sparsity` while it trains, in `model`'s Keras.

    Sparsity reaches `target_sparsity` after `epochs * steps_per_epoch` steps (or at `end_step`). A tf_keras model
    is wrapped with TF-MOT's `prune_low_magnitude` (nested bases flattened); a Keras 3 model keeps its layers and gets
    masks of its own. Frozen layers and layers that cannot be pruned stay dense (`dense_layers` says why).

    Args:
      model: a built Sequential or functional model, tf_keras or Keras 3.
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
      A new pruning model of `model`'s Keras: a `PruningModel` of TF-MOT wrappers (tf_keras), or a Keras 3 one that
      masks its own weights. Compile and fit it with `callbacks=tfc.prune.callbacks()` (a Keras 3 one does without),
      then `tfc.prune.strip` it.

    Raises:
      TypeError: `model` is not a Keras model.
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
    model = graph_model(model)
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
    return _engine(model).magnitude(model, pruning_schedule, m_by_n and tuple(m_by_n))


def _engine(model):
    return importlib.import_module(f"tfcompress.prune.{'keras3' if is_keras3_model(model) else 'keras2'}_pruning")


def _pruning_schedule(target_sparsity, schedule, m_by_n, epochs, steps_per_epoch, end_step, *, begin_step=0,
                      initial_sparsity=0.0, frequency=None):  # fmt: skip
    """The schedule of `magnitude`'s arguments, each checked."""
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
    # Pruning happens at begin_step + k * frequency; end there so the target is reached.
    end_step = begin_step + frequency * max(1, span // frequency)
    return SparsitySchedule(schedule, initial_sparsity if schedule == "polynomial" else 0.0, target_sparsity,
                            begin_step, end_step, frequency)  # fmt: skip


def callbacks(log_dir: str = None) -> list:
    """The callbacks a pruned model's `fit` takes.

    A tf_keras pruning model needs them (TF-MOT counts its steps in one); a Keras 3 one counts its own steps and
    takes them as well, writing the summaries with Keras's TensorBoard.

    Args:
      log_dir: if given, also write the per-layer sparsity summaries for TensorBoard.

    Returns:
      A list with TF-MOT's `UpdatePruningStep` (and `PruningSummaries` with `log_dir`).

    Examples:
      >>> pruned.fit(x, y, callbacks=tfc.prune.callbacks())
    """
    return importlib.import_module("tfcompress.prune.keras2_pruning").callbacks(log_dir)


def is_pruning_step(callback) -> bool:
    """Whether `callback` is TF-MOT's pruning-step callback, which training a pruned tf_keras model needs."""
    return type(callback).__name__ == "UpdatePruningStep" and type(callback).__module__.startswith(
        "tensorflow_model_optimization"
    )


def strip(model):
    """Removes the pruning machinery: a plain model of `model`'s Keras with the zeros in its kernels.

    Args:
      model: a model returned by `magnitude` (and trained).

    Returns:
      A new plain Keras model, independent of `model`: training either later does not
      change the other.

    Raises:
      TypeError: `model` is not a Keras model.
      ValueError: `model` has no pruning wrappers.

    Examples:
      >>> small = tfc.prune.strip(pruned)
      >>> small.save("pruned.keras")
    """
    model = graph_model(model)
    if not is_pruned(model):
        raise ValueError("`model` has no pruning wrappers to strip; it is already a plain model.")
    return _engine(model).strip(model)


def is_pruned(model) -> bool:
    """Whether `model` is being pruned: it holds TF-MOT pruning wrappers, or is a Keras 3 pruning model.

    Args:
      model: a Keras model.

    Returns:
      True for what `magnitude` returns.

    Examples:
      >>> is_pruned(tfc.prune.magnitude(model, end_step=100))
      True
    """
    return _engine(model).is_pruned(model)


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
