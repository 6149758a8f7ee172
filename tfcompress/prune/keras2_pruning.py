"""The Keras 2 engine's magnitude pruning: TF-MOT's `prune_low_magnitude`, layer by layer, on a copy.

TF-MOT wraps a whole model or fails: one layer it does not know (a `Rescaling`, a
`Normalization`, a nested base model) stops the call. Here the model is flattened first
(see `tfcompress._graph`) and each layer is wrapped alone, so the layers TF-MOT can prune
are pruned and the others are left dense, each with its reason.
"""

import inspect

from tfcompress._graph import flat_copy
from tfcompress._keras import keras, tfmot
from tfcompress.prune import prunable
from tfcompress.prune.prunable import PruneLowMagnitude
from tfcompress.prune.sparsity_schedule import SparsitySchedule

_sparsity = tfmot.sparsity.keras


@keras.utils.register_keras_serializable(package="tfcompress")
class PruningModel(keras.Model):
    """`tfc.prune.magnitude`'s model for a tf_keras model: TF-MOT's pruned model, with a `fit` that checks callbacks.

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


def magnitude(model, schedule: SparsitySchedule, m_by_n):
    """A `PruningModel` of TF-MOT wrappers over a flat copy of `model`."""
    wrapped, dense = prunable.wrap(flat_copy(model), pruning_schedule=_tfmot_schedule(schedule),
                                   sparsity_m_by_n=m_by_n and tuple(m_by_n))  # fmt: skip
    pruned = PruningModel(inputs=wrapped.inputs, outputs=wrapped.outputs, name=f"{model.name}_pruned")
    pruned.__dict__["_dense_layers"] = dense  # set past Keras's attribute tracking: plain data
    return pruned


def _tfmot_schedule(schedule: SparsitySchedule):
    if schedule.kind == "polynomial":
        return _sparsity.PolynomialDecay(
            initial_sparsity=schedule.initial_sparsity,
            final_sparsity=schedule.target_sparsity,
            begin_step=schedule.begin_step,
            end_step=schedule.end_step,
            frequency=schedule.frequency,
        )
    return _sparsity.ConstantSparsity(schedule.target_sparsity, begin_step=schedule.begin_step,
                                      end_step=schedule.end_step, frequency=schedule.frequency)  # fmt: skip


def callbacks(log_dir: str = None) -> list:
    """TF-MOT's `UpdatePruningStep`, and its `PruningSummaries` with `log_dir`."""
    found = [_sparsity.UpdatePruningStep()]
    if log_dir is not None:
        found.append(_sparsity.PruningSummaries(log_dir=log_dir))
    return found


def is_pruning_step(callback) -> bool:
    """Whether `callback` is TF-MOT's pruning-step callback, which training a pruned tf_keras model needs."""
    return isinstance(callback, _sparsity.UpdatePruningStep)


def strip(model):
    """A flat copy of `model` without TF-MOT's wrappers, the user's own layer classes back."""
    stripped = _sparsity.strip_pruning(model)
    # strip_pruning hands back the wrapped layers themselves; copy them to cut the link,
    # and give back the user's own layer classes where a prunable subclass stood in.
    return flat_copy(stripped, substitute=prunable.restore)


def is_pruned(model) -> bool:
    """Whether `model` holds TF-MOT pruning wrappers."""
    return any(isinstance(layer, PruneLowMagnitude) for layer in model.submodules)
