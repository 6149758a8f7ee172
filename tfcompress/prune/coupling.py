"""The channel couplings of a Keras model: which channels must be removed together.

A producer's outputs (Conv, Dense, Embedding, an RNN's units, attention's output), the
per-channel layers that follow them, the next layer's input channels, both sides of an
element-wise merge (Add, Multiply: squeeze-excite gates couple back to the trunk), the
slices of a Concatenate and a Flatten's positions into the next Dense are read into groups
(union-find over channel spaces), each pruned as one. What each layer kind does is in
`layers`. Used by `channels`, `cost` and `blocks`.
"""

import collections
import dataclasses

import numpy as np

from tfcompress._graph import calls
from tfcompress._keras import keras
from tfcompress.prune import layer_kinds as kinds

PRODUCERS = kinds.PRODUCERS


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
        for name, tensor in zip(model.input_names, model.inputs):
            channels = int(tensor.shape[-1]) if tensor.shape.rank > 1 else 1
            self.layouts[name] = Layout([(self._new_group(channels, fixed=True), channels)])
        for layer, inputs, call in _calls_with_inputs(model):
            self.layouts[layer.name] = self._layout(layer, call, [self.layouts[name] for name in inputs], unsupported)

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

    def _layout(self, layer, call, inputs, unsupported):
        role, problem = kinds.role(layer, call)
        if role is None:
            if unsupported == "error":
                raise ValueError(
                    f"Layer {layer.name!r} ({type(layer).__name__}) {problem}; channel pruning cannot handle it. "
                    "Pass unsupported='skip' to keep every channel around it, or protect it."
                )
            for layout in inputs:
                self._fix(layout)
            channels = int(layer.output_shape[-1])
            return Layout([(self._new_group(channels, fixed=True), channels)])
        if role == "produce":
            if inputs and inputs[0].positions > 1 and not isinstance(layer, keras.layers.Dense):
                raise ValueError(f"Layer {layer.name!r} reads a flattened tensor; only Dense can follow Flatten.")
            width = int(layer.output_shape[-1]) // kinds.directions(layer)
            group = self._new_group(width, producer=layer.name)
            return Layout([(group, width)] * kinds.directions(layer))
        if role == "flatten":
            shape = layer.input_shape
            return Layout(inputs[0].segments, positions=int(np.prod(shape[1:-1])) * inputs[0].positions)
        if role == "concatenate":
            return Layout([segment for layout in inputs for segment in layout.segments])
        if role == "merge":
            return self._merge(inputs)
        if role == "fix":
            self._fix(inputs[0])
        return inputs[0]  # follow, pass and fix: the same channels as the input

    def _merge(self, inputs):
        first = inputs[0]
        for other in inputs[1:]:
            if [size for _, size in other.segments] != [size for _, size in first.segments]:
                # Differently cut inputs (or a broadcast): keep all their channels rather than guess an alignment.
                self._fix(first)
                self._fix(other)
                continue
            for (a, _), (b, _) in zip(first.segments, other.segments):
                self._union(a, b)
        return first

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
        """The last layer whose output holds exactly `group`'s channels: what the next layers read."""
        last = None
        inputs = set(self.model.input_names)
        for name, layout in self.layouts.items():
            if name not in inputs and layout.positions == 1 and [g for g, _ in layout.segments] == [group]:
                last = name
        return last


def unsupported_reason(layer, call=None):
    """Why channel pruning cannot handle `layer` (a phrase for an error message), or None if it can."""
    return kinds.role(layer, call)[1]


def nodes(model):
    """`(layer, names of the layers feeding it)` in graph order, input layers first; shared layers refused."""
    found = [(tensor._keras_history.layer, []) for tensor in model.inputs]  # noqa: SLF001
    return found + [(layer, inputs) for layer, inputs, _ in _calls_with_inputs(model)]


def _calls_with_inputs(model):
    found, graph = [], calls(model)
    times = collections.Counter(call.layer.name for call in graph)
    for call in graph:
        if times[call.layer.name] > 1:
            raise ValueError(
                f"Layer {call.layer.name!r} is shared (called {times[call.layer.name]} times); "
                "channel pruning needs each layer once."
            )
        tensors = kinds.inputs_read(call.layer, call)
        found.append((call.layer, [tensor._keras_history.layer.name for tensor in tensors], call))  # noqa: SLF001
    return found
