"""The Keras 3 engine's magnitude pruning: masks on a Keras 3 model's kernels, recomputed on schedule, held in training.

Keras 3 has no pruning API, so a copy of the user's model becomes a `PruningModel`, a
functional model of the same layers that also holds a mask per pruned weight and the step
count. Its `train_step` recomputes the masks at the schedule's steps (the weights of the
smallest magnitude, or the smallest n - m of every n input channels), then trains, then
multiplies each weight by its mask, so pruned weights stay zero whatever the optimizer does.
No callback is needed; the current sparsity is logged as `sparsity`.
"""

import dataclasses
import math

import tensorflow as tf

from tfcompress._keras3 import keras
from tfcompress._keras3_graph import one_or_all
from tfcompress._models import is_graph_model
from tfcompress.prune.sparsity_schedule import SparsitySchedule

# Keras's layers whose weights of these names magnitude pruning zeroes: TF-MOT's table, in Keras 3's names.
# DepthwiseConv2D's few weights per channel, biases and normalization are never pruned, as in TF-MOT.
_PRUNED = {
    **dict.fromkeys(
        ("Dense", "EinsumDense", "Conv1D", "Conv2D", "Conv3D", "Conv1DTranspose", "Conv2DTranspose",
         "Conv3DTranspose", "MultiHeadAttention"),
        ("kernel",),
    ),
    **dict.fromkeys(("SeparableConv1D", "SeparableConv2D"), ("pointwise_kernel",)),
    **dict.fromkeys(("LSTM", "GRU", "SimpleRNN", "Bidirectional"), ("kernel", "recurrent_kernel")),
    "Embedding": ("embeddings",),
}  # fmt: skip
# TF-MOT's `UpdatePruningStep` and `PruningSummaries`, from `tfc.prune.callbacks()`: a Keras 3 model needs neither.
_TFMOT_CALLBACKS = ("UpdatePruningStep", "PruningSummaries")


@keras.saving.register_keras_serializable(package="tfcompress")
class PruningModel(keras.Model):
    """What `tfc.prune.magnitude` returns for a Keras 3 model: its layers, their masks and the pruning step.

    Compile and fit it as any Keras 3 model (`tfc.prune.callbacks()` may be passed, and is not needed); then
    `tfc.prune.strip` it. `dense_layers` names the layers with weights that are not pruned, and why.

    Examples:
      >>> pruned = tfc.prune.magnitude(keras3_model, target_sparsity=0.8, epochs=2, steps_per_epoch=45)
      >>> pruned.compile(optimizer=keras.optimizers.Adam(), loss=loss)
      >>> pruned.fit(x, y, epochs=2)
    """

    def __init__(self, inputs, outputs, schedule, m_by_n=None, dense_layers=None, name=None, **kwargs):
        super().__init__(inputs, outputs, name=name, **kwargs)
        m_by_n = tuple(m_by_n) if m_by_n else None
        pruned, dense = prunable_weights(self, m_by_n)
        dense = {**(dense_layers or {}), **dense}
        if not pruned:
            reasons = "; ".join(f"{layer!r}: {why}" for layer, why in dense.items()) or "no layer has weights"
            raise ValueError(f"{self.name!r} has no layer that magnitude pruning can prune ({reasons}).")
        # add_weight tracks the masks and the step, so they are saved with the model; the rest is plain data,
        # kept past Keras's attribute tracking.
        masks = [self.add_weight(shape=weight.shape, initializer="ones", trainable=False, name=f"mask_{index}")
                 for index, weight in enumerate(pruned)]  # fmt: skip
        step = self.add_weight(shape=(), dtype="int64", initializer="zeros", trainable=False, name="pruning_step")
        points = SparsitySchedule(**schedule).points()
        self.__dict__.update(
            _schedule=dict(schedule), _m_by_n=m_by_n, _dense_layers=dense, _pruned=pruned, _masks=masks,
            _step=step, _points=([step for step, _ in points], [sparsity for _, sparsity in points]),
        )  # fmt: skip

    @property
    def dense_layers(self) -> dict:
        """The layers with weights that `magnitude` left dense: `{layer name: why}`."""
        return dict(self.__dict__["_dense_layers"])

    @property
    def pruned_weights(self) -> list:
        """The variables that are pruned, in the order of their masks."""
        return list(self.__dict__["_pruned"])

    def fit(self, *args, callbacks=None, **kwargs):
        """Trains like `keras.Model.fit`; the masks are kept by the model itself.

        Args:
          *args: as for `keras.Model.fit`.
          callbacks: as for `keras.Model.fit`; those of `tfc.prune.callbacks()` are accepted and not needed (its
            summaries become a Keras TensorBoard callback that logs `sparsity`).
          **kwargs: as for `keras.Model.fit`.

        Returns:
          The `History` of `keras.Model.fit`, with the sparsity reached at each epoch under `sparsity`.

        Examples:
          >>> pruned.fit(x, y, epochs=2, callbacks=tfc.prune.callbacks())
        """
        return super().fit(*args, callbacks=_keras3_callbacks(callbacks), **kwargs)

    @property
    def pruning_step(self):
        """The number of training steps taken so far: where the schedule is."""
        return int(self.__dict__["_step"].numpy())

    def train_step(self, data):
        self.before_train_step()
        logs = super().train_step(data)
        return {**logs, **self.after_train_step()}

    def before_train_step(self):
        """Recomputes the masks where the schedule prunes. A `Distiller` training this model calls it too."""
        steps, sparsities = self.__dict__["_points"]
        due = tf.equal(tf.constant(steps, tf.int64), self.__dict__["_step"])
        tf.cond(tf.reduce_any(due), lambda: self._recompute_masks(tf.boolean_mask(sparsities, due)[0]),
                lambda: tf.constant(False))  # fmt: skip

    def after_train_step(self) -> dict:
        """Zeroes the pruned weights again and counts the step; returns what to log. A `Distiller` calls it too."""
        self.apply_masks()
        self.__dict__["_step"].assign_add(1)
        return {"sparsity": self._current_sparsity()}

    def _recompute_masks(self, sparsity):
        for weight, mask in zip(self.pruned_weights, self.__dict__["_masks"]):
            mask.assign(magnitude_mask(weight, sparsity, self.__dict__["_m_by_n"]))
        return tf.constant(True)

    def apply_masks(self):
        """Zeroes every pruned weight where its mask is 0."""
        for weight, mask in zip(self.pruned_weights, self.__dict__["_masks"]):
            weight.assign(weight * tf.cast(mask, weight.dtype))

    def _current_sparsity(self):
        masks = self.__dict__["_masks"]
        zeros = tf.add_n([tf.reduce_sum(1.0 - mask) for mask in masks])
        return zeros / float(sum(math.prod(mask.shape) for mask in masks))

    def get_config(self):
        # Keras 3's Functional writes only its name for a subclass with an __init__ of its own: the graph's here.
        config = keras.Model(one_or_all(self.inputs), one_or_all(self.outputs), name=self.name).get_config()
        config.update(schedule=self.__dict__["_schedule"], m_by_n=self.__dict__["_m_by_n"],
                      dense_layers=self.dense_layers)  # fmt: skip
        return config

    @classmethod
    def from_config(cls, config, custom_objects=None):
        config = dict(config)
        extra = {key: config.pop(key) for key in ("schedule", "m_by_n", "dense_layers")}
        functional = keras.Model.from_config(config, custom_objects=custom_objects)
        return cls(one_or_all(functional.inputs), one_or_all(functional.outputs), name=functional.name, **extra)


def magnitude(model, schedule: SparsitySchedule, m_by_n):
    """A `PruningModel` over a copy of `model` (its weights copied; `model` is not changed)."""
    copy = keras.models.clone_model(model)
    copy.set_weights(model.get_weights())
    schedule = dataclasses.asdict(schedule)
    return PruningModel(one_or_all(copy.inputs), one_or_all(copy.outputs), schedule=schedule, m_by_n=m_by_n,
                        name=f"{model.name}_pruned")  # fmt: skip


def strip(model):
    """A plain Keras 3 functional model of `model`'s layers, with their (masked) weights, independent of `model`."""
    model.apply_masks()
    plain = keras.Model(one_or_all(model.inputs), one_or_all(model.outputs), name=model.name.removesuffix("_pruned"))
    copy = keras.models.clone_model(plain)
    copy.set_weights(plain.get_weights())
    return copy


def is_pruned(model) -> bool:
    """Whether `model` is a Keras 3 `PruningModel`."""
    return isinstance(model, PruningModel)


def prunable_weights(model, m_by_n=None):
    """The variables magnitude pruning masks, and `{layer name: why}` for the layers with weights it leaves dense."""
    pruned, dense = [], {}
    for layer in model.layers:
        if is_graph_model(layer):  # a nested base: its own layers
            inner, inner_dense = prunable_weights(layer, m_by_n)
            pruned += inner
            dense.update(inner_dense)
            continue
        if not layer.weights:
            continue
        names = _PRUNED.get(type(layer).__name__) if type(layer).__module__.startswith("keras.") else None
        if not layer.trainable:
            dense[layer.name] = "frozen (trainable=False): training could not repair what pruning removes; unfreeze it"
        elif names is None:
            dense[layer.name] = f"tfcompress prunes Keras's own layers with kernels, not a {type(layer).__name__}"
        else:
            weights = [weight for weight in layer.trainable_weights if weight.name in names]
            kept = [weight for weight in weights if m_by_n is None or _fits_m_by_n(weight, m_by_n)]
            if kept:
                pruned += kept
            else:
                dense[layer.name] = _why_dense(layer, weights, m_by_n)
    return pruned, dense


def _why_dense(layer, weights, m_by_n):
    if not weights:
        return f"a {type(layer).__name__} has no kernel to prune (only kernels are pruned)"
    return (
        f"N:M sparsity ({m_by_n[0]}:{m_by_n[1]}) groups a Dense or Conv2D kernel's input channels by {m_by_n[1]}; "
        f"this {type(layer).__name__}'s do not divide"
    )


def _fits_m_by_n(weight, m_by_n):
    return len(weight.shape) in (2, 4) and weight.shape[-2] % m_by_n[1] == 0


def magnitude_mask(weight, sparsity, m_by_n=None):
    """1 where `weight` keeps its value and 0 where it is pruned, as a float32 tensor of its shape."""
    magnitude = tf.abs(tf.cast(weight, tf.float32))
    if m_by_n is not None:
        return _m_by_n_mask(magnitude, m_by_n)
    flat = tf.reshape(magnitude, [-1])
    size = tf.size(flat)
    kept = tf.maximum(1, tf.cast(tf.round(tf.cast(size, tf.float32) * (1.0 - sparsity)), tf.int32))
    _, largest = tf.math.top_k(flat, k=kept)
    mask = tf.scatter_nd(largest[:, None], tf.ones_like(largest, tf.float32), [size])
    return tf.reshape(mask, tf.shape(weight))


def _m_by_n_mask(magnitude, m_by_n):
    """m zeros in every n consecutive input channels (TF-MOT's N:M): the n - m largest of each group kept."""
    zeros, group = m_by_n
    # Input channels last, as TFLite lays kernels out: Dense (in, out) -> (out, in); Conv2D (h, w, in, out) too.
    order = [1, 0] if magnitude.shape.rank == 2 else [3, 0, 1, 2]
    moved = tf.transpose(magnitude, order)
    groups = tf.reshape(moved, [-1, group])
    _, largest = tf.math.top_k(groups, k=group - zeros)
    mask = tf.reduce_sum(tf.one_hot(largest, group), axis=1)
    back = [1, 0] if magnitude.shape.rank == 2 else [1, 2, 3, 0]
    return tf.transpose(tf.reshape(mask, tf.shape(moved)), back)


def _keras3_callbacks(callbacks):
    """`callbacks` without TF-MOT's, whose summaries a Keras TensorBoard writes (with `sparsity`) instead."""
    kept = []
    for callback in callbacks or []:
        name = type(callback).__name__
        if type(callback).__module__.startswith("tensorflow_model_optimization") and name in _TFMOT_CALLBACKS:
            if name == "PruningSummaries":
                kept.append(keras.callbacks.TensorBoard(log_dir=callback.log_dir))
            continue
        kept.append(callback)
    return kept
