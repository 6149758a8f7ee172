"""How important each channel is: the criteria that `channels` ranks channels by.

A criterion is one function: it takes a `Group` (coupled channels, the weights of the
layers that make them and, when data was given, what the channels did on it) and returns
one score per channel. The lowest scores are removed first.

Examples:
  >>> def mean_weight(group):                       # a new criterion is one function
  ...     return sum(np.abs(kernel).reshape(-1, group.channels).mean(axis=0) for kernel in group.kernels)
  >>> smaller = tfc.prune.channels(model, 0.5, criterion=mean_weight)
"""

import dataclasses

import numpy as np
import tensorflow as tf

from tfcompress import _tasks
from tfcompress._choices import CHANNEL_CRITERIA
from tfcompress._keras import keras
from tfcompress.prune import layer_kinds as kinds

_BATCH = 64


@dataclasses.dataclass(eq=False)  # compared by identity: `Evidence` finds a group's row by it
class Group:
    """A group of coupled channels, as a criterion sees it.

    Attributes:
      channels: how many channels the group has.
      layers: the Keras layers that produce the channels (more than one when an Add
        ties their outputs together).
      kernels: each layer's kernel, output channels on the last axis (a SeparableConv2D's
        pointwise kernel).
      gammas: |γ| of each BatchNormalization that reads the whole group; empty if none.
      scored_by: the criterion's name, as `plan_channels` records it; a criterion that
        falls back to another one says so here.

    The properties `mean_activation`, `nonzero_fraction` and `taylor` are measured on the
    `data` passed to `channels` (all groups in one pass, on first use); they raise a
    ValueError when there is no data.
    """

    channels: int
    layers: list
    kernels: list
    gammas: list
    scored_by: str = ""
    _evidence: "Evidence" = dataclasses.field(default=None, repr=False)

    @property
    def mean_activation(self) -> np.ndarray:
        """Mean |activation| of each channel where the next layers read it, over the data and positions."""
        return self._measured("mean_activation")

    @property
    def nonzero_fraction(self) -> np.ndarray:
        """Share of each channel's activations that are not zero: 1 − APoZ (Hu et al., 2016)."""
        return self._measured("nonzero_fraction")

    @property
    def taylor(self) -> np.ndarray:
        """Molchanov et al. (2019)'s first-order Taylor importance: (Σ gradient × weight)², averaged over batches."""
        return self._measured("taylor")

    def _measured(self, name):
        if self._evidence is None:
            raise ValueError(
                f"This criterion reads each channel's {name.replace('_', ' ')}, measured on data; pass "
                "data=(x, y) (a few hundred training examples are enough) to channels/plan_channels."
            )
        return self._evidence.of(self, name)


def l1_norm(group: Group) -> np.ndarray:
    """L1 norm of each output channel's weights (Li et al., 2017, "Pruning Filters for Efficient ConvNets")."""
    return sum(np.abs(kernel).reshape(-1, group.channels).sum(axis=0) for kernel in group.kernels)


def l2_norm(group: Group) -> np.ndarray:
    """L2 norm of each output channel's weights."""
    return sum(np.sqrt(np.square(kernel).reshape(-1, group.channels).sum(axis=0)) for kernel in group.kernels)


def bn_gamma(group: Group) -> np.ndarray:
    """Network slimming (Liu et al., 2017): the |γ| of the BatchNormalization that scales each channel."""
    if not group.gammas:
        group.scored_by = "l1"
        return l1_norm(group)
    return sum(group.gammas)


def taylor(group: Group) -> np.ndarray:
    """First-order Taylor importance (Molchanov et al., 2019): the loss change if a channel is removed."""
    return group.taylor


def mean_activation(group: Group) -> np.ndarray:
    """Mean |activation| of each channel on data (channels that stay near zero matter least)."""
    return group.mean_activation


def apoz(group: Group) -> np.ndarray:
    """Average Percentage of Zeros (Hu et al., 2016): channels whose ReLU output is mostly zero go first."""
    return group.nonzero_fraction


# Named in tfcompress._choices, which the recipe checker reads too.
CRITERIA = dict(zip(CHANNEL_CRITERIA, (l1_norm, l2_norm, bn_gamma, taylor, mean_activation, apoz)))


def resolve(criterion):
    """`(function, name)` for a criterion name or function."""
    if callable(criterion):
        return criterion, getattr(criterion, "__name__", type(criterion).__name__)
    if criterion not in CRITERIA:
        raise ValueError(f"`criterion` must be one of {sorted(CRITERIA)} or a function. Received: {criterion!r}")
    return CRITERIA[criterion], criterion


class Evidence:
    """What every group's channels did on the data: measured in one pass, on first use.

    Args:
      model: the model being pruned.
      groups: the `Group`s, in the order of `read_at`.
      read_at: for each group, the layer whose output the next layers read.
      data: `(x, y)` arrays; `y` may be None (then `taylor` is not available).
    """

    def __init__(self, model, groups, read_at, data):
        self._model, self._groups, self._read_at = model, groups, read_at
        self._x, self._y = data
        self._values = None
        self.used = False

    def of(self, group, name):
        self.used = True
        if self._values is None:
            self._values = self._measure()
        if name == "taylor" and self._y is None:
            raise ValueError("The 'taylor' criterion needs labels: pass data=(x, y), not inputs alone.")
        return self._values[name][self._groups.index(group)]

    def _measure(self):
        names = list(dict.fromkeys(self._read_at))
        probe = keras.Model(
            self._model.inputs, [self._model.get_layer(name).output for name in names] + list(self._model.outputs)
        )
        producers = [layer for group in self._groups for layer in group.layers]
        widths = [group.channels for group in self._groups for _ in group.layers]
        weights = [kinds.output_kernels(layer) + kinds.output_biases(layer) for layer in producers]
        loss, labels = _loss_of(self._model, self._y)
        sums = {name: 0.0 for name in names}
        nonzero = {name: 0.0 for name in names}
        taylor = [0.0] * len(producers)
        positions = {name: 0 for name in names}
        batches = 0
        for start in range(0, len(self._x), _BATCH):
            x = tf.constant(self._x[start : start + _BATCH])
            with tf.GradientTape() as tape:
                outputs = probe(x, training=False)
                value = None if labels is None else loss(labels[start : start + _BATCH], outputs[-1])
            for name, output in zip(names, outputs):
                flat = tf.reshape(output, (-1, output.shape[-1]))
                sums[name] += tf.reduce_sum(tf.abs(flat), axis=0).numpy()
                nonzero[name] += tf.reduce_sum(tf.cast(flat != 0, tf.float32), axis=0).numpy()
                positions[name] += int(flat.shape[0])
            if value is not None:
                gradients = tape.gradient(value, [w for layer in weights for w, _ in layer])
                offset = 0
                for index, layer_weights in enumerate(weights):
                    term = 0.0
                    for (weight, axis), gradient in zip(layer_weights, gradients[offset : offset + len(layer_weights)]):
                        product = (gradient * weight).numpy()
                        term = term + kinds.channel_matrix(product, axis, widths[index]).sum(axis=0)
                    taylor[index] = taylor[index] + np.square(term.astype(np.float64))
                    offset += len(layer_weights)
            batches += 1
        by_layer = dict(zip((layer.name for layer in producers), (t / batches for t in taylor)))
        return {
            "mean_activation": [sums[name] / positions[name] for name in self._read_at],
            "nonzero_fraction": [nonzero[name] / positions[name] for name in self._read_at],
            "taylor": [sum(by_layer[layer.name] for layer in group.layers) for group in self._groups],
        }


def _loss_of(model, y):
    """`(loss, labels)`: the model's compiled loss and `y` as they are, or its task's loss and `y` checked for it."""
    if getattr(model, "loss", None):
        return keras.losses.get(model.loss), y
    if y is None:
        return None, None
    task = _tasks.infer(model, labels=y)
    return task.loss(), task.labels(y, model.outputs[0].shape[1:], argument="data")
