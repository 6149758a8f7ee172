"""The channel couplings of a Keras model: which channels must be removed together.

A Conv2D's or Dense's outputs, the BatchNormalization and DepthwiseConv2D channels that
follow them, the next layer's input channels, both sides of an Add, the slices of a
Concatenate and a Flatten's positions into the next Dense are read into groups (union-find
over channel spaces), each pruned as one. Used by `channels`, `cost` and `blocks`.
"""

import dataclasses

import numpy as np

from tfcompress._keras import keras

# Layers that make a new channel space: their outputs can be pruned.
PRODUCERS = (keras.layers.Conv2D, keras.layers.Dense, keras.layers.SeparableConv2D)
# Layers whose weights are per channel and follow the channels of their input.
_PER_CHANNEL = (keras.layers.BatchNormalization, keras.layers.DepthwiseConv2D)
# Layers without weights that keep channel i as channel i (spatial ops, activations, regularizers).
_PASS_THROUGH = (
    keras.layers.InputLayer,
    keras.layers.Activation,
    keras.layers.ReLU,
    keras.layers.LeakyReLU,
    keras.layers.ELU,
    keras.layers.Dropout,
    keras.layers.SpatialDropout2D,
    keras.layers.MaxPooling2D,
    keras.layers.AveragePooling2D,
    keras.layers.ZeroPadding2D,
    keras.layers.Cropping2D,
    keras.layers.UpSampling2D,
    keras.layers.GlobalAveragePooling2D,
    keras.layers.GlobalMaxPooling2D,
)
# The layout key of the model's input (a Sequential model lists no InputLayer).
INPUT = "__input__"
# Element-wise merges: every input must keep the same channels.
_MERGES = (
    keras.layers.Add,
    keras.layers.Subtract,
    keras.layers.Multiply,
    keras.layers.Average,
    keras.layers.Maximum,
    keras.layers.Minimum,
)


@dataclasses.dataclass
class Layout:
    """The channels of a tensor: segments of (group, size) along the last axis, repeated over flattened positions."""

    segments: list
    positions: int = 1


class Graph:
    """The model's layers in order, each output's channel layout, and the union of coupled groups."""

    def __init__(self, model, unsupported):
        self.model = model
        self.layouts, self.group_of = {}, {}
        self._parent, self._size, self._fixed, self._producers = [], [], [], []
        channels = int(model.input_shape[-1])
        self.layouts[INPUT] = Layout([(self._new_group(channels, fixed=True), channels)])
        for layer, inputs in nodes(model):
            self.layouts[layer.name] = self._layout(layer, [self.layouts[name] for name in inputs], unsupported)

    def _new_group(self, size, producer=None, fixed=False):
        self._parent.append(len(self._parent))
        self._size.append(size)
        self._fixed.append(fixed)
        self._producers.append([producer] if producer else [])
        if producer:
            self.group_of[producer] = len(self._parent) - 1
        return len(self._parent) - 1

    def _find(self, group):
        while self._parent[group] != group:
            self._parent[group] = self._parent[self._parent[group]]
            group = self._parent[group]
        return group

    def _union(self, a, b):
        a, b = self._find(a), self._find(b)
        if a != b:
            self._parent[b] = a
            self._fixed[a] = self._fixed[a] or self._fixed[b]
            self._producers[a] += self._producers[b]

    def _fix(self, layout):
        for group, _ in layout.segments:
            self._fixed[self._find(group)] = True

    def fix_output_of(self, layer_name):
        self._fix(self.layouts[layer_name])

    def _layout(self, layer, inputs, unsupported):
        if isinstance(layer, keras.layers.InputLayer):
            return self.layouts[INPUT]
        problem = unsupported_reason(layer)
        if problem:
            if unsupported == "error":
                raise ValueError(
                    f"Layer {layer.name!r} ({type(layer).__name__}) {problem}; channel pruning cannot handle it. "
                    "Pass unsupported='skip' to keep every channel around it, or protect it."
                )
            for layout in inputs:
                self._fix(layout)
            channels = int(layer.output_shape[-1])
            return Layout([(self._new_group(channels, fixed=True), channels)])
        if isinstance(layer, PRODUCERS):
            if inputs[0].positions > 1 and not isinstance(layer, keras.layers.Dense):
                raise ValueError(f"Layer {layer.name!r} reads a flattened tensor; only Dense can follow Flatten.")
            channels = int(layer.output_shape[-1])
            return Layout([(self._new_group(channels, producer=layer.name), channels)])
        if isinstance(layer, keras.layers.Flatten):
            shape = layer.input_shape
            return Layout(inputs[0].segments, positions=int(np.prod(shape[1:-1])) * inputs[0].positions)
        if isinstance(layer, keras.layers.Concatenate):
            return Layout([segment for layout in inputs for segment in layout.segments])
        if isinstance(layer, _MERGES):
            first = inputs[0]
            for other in inputs[1:]:
                if [size for _, size in other.segments] != [size for _, size in first.segments]:
                    # Differently cut inputs: keep all their channels rather than guess an alignment.
                    self._fix(first)
                    self._fix(other)
                    continue
                for (a, _), (b, _) in zip(first.segments, other.segments):
                    self._union(a, b)
            return first
        return inputs[0]  # per-channel weights or pass-through: same channels as the input

    def groups(self):
        roots = {}
        for group in range(len(self._parent)):
            root = self._find(group)
            roots.setdefault(root, {"layers": [], "channels": self._size[root], "prunable": not self._fixed[root]})
        for root, entry in roots.items():
            entry["layers"] = sorted(set(self._producers[root]))
            entry["prunable"] = entry["prunable"] and bool(entry["layers"])
        # Index groups by root, then point every group id at its root's entry.
        ordered = []
        index_of_root = {}
        for root in sorted(roots):
            index_of_root[root] = len(ordered)
            ordered.append(roots[root])
        remap = {group: index_of_root[self._find(group)] for group in range(len(self._parent))}
        for name, layout in self.layouts.items():
            self.layouts[name] = Layout([(remap[g], s) for g, s in layout.segments], layout.positions)
        self.group_of = {name: remap[g] for name, g in self.group_of.items()}
        return ordered

    def read_at(self, group) -> str:
        """The last layer whose output holds exactly `group`'s channels: what the next layers read.

        Call after `groups()`. A producer's own output always qualifies, so there is one.
        """
        last = None
        for name, layout in self.layouts.items():
            if name != INPUT and layout.positions == 1 and [g for g, _ in layout.segments] == [group]:
                last = name
        return last


def unsupported_reason(layer):
    """Why channel pruning cannot handle `layer` (a phrase for an error message), or None if it can."""
    if isinstance(layer, keras.Model):
        return "is a nested model"
    if isinstance(layer, keras.layers.Conv2DTranspose):  # a Conv2D subclass whose kernel is (h, w, out, in)
        return "is a transposed convolution"
    if isinstance(layer, keras.layers.DepthwiseConv2D) and layer.depth_multiplier != 1:
        return "has a depth multiplier other than 1"
    if isinstance(layer, keras.layers.SeparableConv2D) and layer.depth_multiplier != 1:
        return "has a depth multiplier other than 1"
    if isinstance(layer, keras.layers.Conv2D) and getattr(layer, "groups", 1) != 1:
        return "is a grouped convolution"
    if isinstance(layer, keras.layers.BatchNormalization) and layer.axis not in ([-1], [3], -1, 3):
        return "normalizes an axis other than channels"
    if isinstance(layer, keras.layers.Concatenate) and layer.axis not in (-1, 3):
        return "concatenates along an axis other than channels"
    if isinstance(
        layer, PRODUCERS + _PER_CHANNEL + _PASS_THROUGH + _MERGES + (keras.layers.Flatten, keras.layers.Concatenate)
    ):
        if getattr(layer, "data_format", "channels_last") != "channels_last":
            return "uses channels_first"
        return None
    return "is not a layer kind it knows"


def nodes(model):
    """`(layer, names of the layers feeding it)` in graph order; nested models and shared layers refused."""
    if isinstance(model, keras.Sequential):
        layers = list(model.layers)
        return [(layer, [layers[index - 1].name if index else INPUT]) for index, layer in enumerate(layers)]
    config = model.get_config()
    nodes = []
    for entry in config["layers"]:
        layer = model.get_layer(entry["config"]["name"] if "name" not in entry else entry["name"])
        inbound = entry.get("inbound_nodes") or []
        if len(inbound) > 1:
            raise ValueError(
                f"Layer {layer.name!r} is shared (called {len(inbound)} times); channel pruning needs each layer once."
            )
        names = [item[0] for item in inbound[0]] if inbound else []
        nodes.append((layer, names))
    return nodes
