"""Structured pruning: remove whole channels and neurons, so the model is physically smaller and faster.

The model's graph is read into coupled channel groups: a Conv2D's or Dense's outputs,
the BatchNormalization and DepthwiseConv2D channels that follow them, the input
channels of the next layer, both sides of an Add (which must keep the same channels),
the slices of a Concatenate, and a Flatten's positions into the next Dense. A group is
pruned as one: its channels are scored by a criterion, the lowest are dropped from every
layer that touches them, and a new Keras model is built with the surviving weights
copied exactly.
"""

import dataclasses

import numpy as np

from tfcompress._checks import check_number
from tfcompress._keras import ensure_graph_model, keras

# Layers that make a new channel space: their outputs can be pruned.
_PRODUCERS = (keras.layers.Conv2D, keras.layers.Dense, keras.layers.SeparableConv2D)
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
# Element-wise merges: every input must keep the same channels.
# The layout key of the model's input (a Sequential model lists no InputLayer).
_INPUT = "__input__"
_MERGES = (
    keras.layers.Add,
    keras.layers.Subtract,
    keras.layers.Multiply,
    keras.layers.Average,
    keras.layers.Maximum,
    keras.layers.Minimum,
)


def l1_norm(layer, kernel) -> np.ndarray:
    """L1 norm of each output channel's weights (Li et al., 2017, "Pruning Filters for Efficient ConvNets").

    Args:
      layer: the producing layer (Conv2D, Dense or SeparableConv2D).
      kernel: its kernel, output channels on the last axis.

    Returns:
      One score per output channel; low scores are pruned first.

    Example:
      >>> l1_norm(conv, conv.get_weights()[0]).shape
      (32,)
    """
    return np.abs(kernel).reshape(-1, kernel.shape[-1]).sum(axis=0)


def l2_norm(layer, kernel) -> np.ndarray:
    """L2 norm of each output channel's weights.

    Args:
      layer: the producing layer.
      kernel: its kernel, output channels on the last axis.

    Returns:
      One score per output channel; low scores are pruned first.

    Example:
      >>> l2_norm(conv, conv.get_weights()[0]).shape
      (32,)
    """
    return np.sqrt(np.square(kernel).reshape(-1, kernel.shape[-1]).sum(axis=0))


CRITERIA = {"l1": l1_norm, "l2": l2_norm}
# Network slimming (Liu et al., 2017): a channel's BatchNormalization scale |γ| is its importance.
BN_GAMMA = "bn_gamma"


def channels(model, ratio=0.5, *, criterion="l1", protect=(), unsupported: str = "error", allocation="uniform"):
    """Removes the least important channels (and Dense neurons): a new, physically smaller model.

    The model's output layer keeps all its units; channels that reach the input or the
    output through a chain of couplings are kept too. `model` is not modified.

    Args:
      model: a built Sequential or functional Keras 2 model.
      ratio: share of each prunable group's channels to remove, in [0, 1); or a dict of
        layer name -> ratio, pruning only the named layers' groups.
      criterion: "l1" or "l2" (norm of each channel's weights); "bn_gamma" (network
        slimming: the |γ| of the BatchNormalization after the channels; groups without
        one are scored by L1, and each group's `criterion` in `plan_channels` says which);
        or a function `(layer, kernel) -> scores` with one score per output channel.
      protect: names of layers whose output channels must all be kept.
      unsupported: "error" (default) to stop at a layer that would be mishandled, or
        "skip" to keep every channel around it.
      allocation: "uniform" (default) removes `ratio` of every group; "global" removes
        `ratio` of all prunable channels together, the lowest-scoring wherever they are
        (scores divided by their group's mean, so layers compare fairly), keeping at
        least one channel per group.

    Returns:
      A new Keras model with fewer channels, its weights copied from `model`; compile
      and fine-tune it to recover accuracy. `model` is not modified.

    Raises:
      TypeError: `model` is not a Keras 2 model.
      ValueError: `ratio`, `criterion`, `protect`, `unsupported` or `allocation` is out of range; a
        layer is not supported (named) and `unsupported` is "error"; or the model is
        subclassed, unbuilt or holds nested models or shared layers.

    Example:
      >>> smaller = tfc.prune.channels(model, ratio=0.5, criterion="l1")
      >>> smaller.count_params() < model.count_params()
      True
    """
    ensure_graph_model(model)
    plan = plan_channels(
        model, ratio, criterion=criterion, protect=protect, unsupported=unsupported, allocation=allocation
    )
    return rebuild(model, plan)


@dataclasses.dataclass
class ChannelPlan:
    """What `channels` removes: the coupled groups and the channels each keeps.

    Attributes:
      groups: one dict per group: `layers` (the producers), `channels`, `kept` (indices),
        `prunable`, and for prunable groups the `criterion` that scored them.
      layouts: the channel layout of each layer's output (internal).
      group_of: the group index of each producer (internal).
    """

    groups: list
    layouts: dict
    group_of: dict

    def kept(self, layout) -> np.ndarray:
        """The kept indices of a tensor's channels, concatenated over its segments (and positions).

        Args:
          layout: a layer's `_Layout`.

        Returns:
          Indices into the tensor's last axis (after a Flatten, into its flattened axis).

        Example:
          >>> plan.kept(plan.layouts["conv2d"])
        """
        indices, offset = [], 0
        for group, size in layout.segments:
            indices.append(offset + np.asarray(self.groups[group]["kept"]))
            offset += size
        channel_indices = np.concatenate(indices) if indices else np.zeros((0,), int)
        if layout.positions == 1:
            return channel_indices
        return (np.arange(layout.positions)[:, None] * offset + channel_indices[None, :]).reshape(-1)


@dataclasses.dataclass
class _Layout:
    """The channels of a tensor: segments of (group, size) along the last axis, repeated over flattened positions."""

    segments: list
    positions: int = 1


def plan_channels(
    model, ratio=0.5, *, criterion="l1", protect=(), unsupported="error", allocation="uniform"
) -> ChannelPlan:
    """Finds the coupled channel groups of `model` and which channels each keeps (see `channels`).

    Args:
      model: a built Sequential or functional Keras 2 model.
      ratio: as for `channels`.
      criterion: as for `channels`.
      protect: as for `channels`.
      unsupported: as for `channels`.
      allocation: as for `channels`.

    Returns:
      A `ChannelPlan`.

    Raises:
      ValueError: as for `channels`.

    Example:
      >>> [group["layers"] for group in plan_channels(model).groups if group["prunable"]]
    """
    ensure_graph_model(model)
    ratios = _ratios(model, ratio)
    score = _criterion(criterion)
    if allocation not in ("uniform", "global"):
        raise ValueError(f"`allocation` must be 'uniform' or 'global'. Received: {allocation!r}")
    if allocation == "global" and isinstance(ratio, dict):
        raise ValueError("`allocation='global'` spreads one `ratio` over all layers; pass a number, not a dict.")
    if unsupported not in ("error", "skip"):
        raise ValueError(f"`unsupported` must be 'error' or 'skip'. Received: {unsupported!r}")
    names = {layer.name for layer in model.layers}
    unknown = [name for name in protect if name not in names]
    if unknown:
        raise ValueError(f"`protect` names {unknown}, which are not layers of {model.name!r}.")
    graph = _Graph(model, unsupported)
    for name in list(protect) + list(model.output_names):  # the output layer keeps all its units
        graph.fix_output_of(name)
    groups = graph.groups()
    gammas = _batchnorm_gammas(model, graph) if criterion == BN_GAMMA else {}
    scored_by = "l1" if criterion == BN_GAMMA else criterion if isinstance(criterion, str) else criterion.__name__
    for index, group in enumerate(groups):
        group["kept"] = list(range(group["channels"]))
        if not group["prunable"]:
            continue
        if index in gammas:
            group["scores"], group["criterion"] = gammas[index], BN_GAMMA
        else:
            group["scores"] = np.asarray(
                sum(score(model.get_layer(layer), _kernel(model.get_layer(layer))) for layer in group["layers"]),
                dtype=np.float64,
            )
            group["criterion"] = scored_by
    if allocation == "global":
        _allocate_globally([group for group in groups if group["prunable"]], ratios[None])
    else:
        for group in (group for group in groups if group["prunable"]):
            rate = max(ratios.get(layer, ratios.get(None, 0.0)) for layer in group["layers"])
            _keep_top(group, group["channels"] - int(np.floor(rate * group["channels"])))
    for group in groups:
        group.pop("scores", None)
    return ChannelPlan(groups=groups, layouts=graph.layouts, group_of=graph.group_of)


def _keep_top(group, keep):
    keep = max(1, keep)  # a layer with no channel left would cut the model in two
    group["kept"] = sorted(np.argsort(-group["scores"], kind="stable")[:keep].tolist())


def _allocate_globally(groups, ratio):
    """Removes the `ratio` share of all prunable channels with the lowest scores, wherever they are.

    Scores are divided by their group's mean first: layers' weights live on different
    scales, and a raw comparison would empty the layers with small weights.
    """
    pool = [
        (float(value) / (float(np.mean(group["scores"])) or 1.0), index, channel)
        for index, group in enumerate(groups)
        for channel, value in enumerate(group["scores"])
    ]
    removed = {index: 0 for index in range(len(groups))}
    budget = int(np.floor(ratio * len(pool)))
    for _, index, _ in sorted(pool):
        if budget == 0:
            break
        if groups[index]["channels"] - removed[index] > 1:
            removed[index] += 1
            budget -= 1
    for index, group in enumerate(groups):
        _keep_top(group, group["channels"] - removed[index])


def _ratios(model, ratio):
    if isinstance(ratio, dict):
        unknown = [name for name in ratio if not _has_layer(model, name)]
        if unknown:
            raise ValueError(f"`ratio` names {unknown}, which are not layers of {model.name!r}.")
        for name, value in ratio.items():
            check_number(f"ratio[{name!r}]", value, low=0, high=1, high_open=True)
        return dict(ratio)
    check_number("ratio", ratio, low=0, high=1, high_open=True)
    return {None: ratio}


def _has_layer(model, name):
    return any(layer.name == name for layer in model.layers)


def _criterion(criterion):
    if callable(criterion):
        return criterion
    if criterion == BN_GAMMA:
        return l1_norm  # for groups with no BatchNormalization to read γ from
    if criterion not in CRITERIA:
        raise ValueError(
            f"`criterion` must be one of {sorted(CRITERIA) + [BN_GAMMA]} or a function. Received: {criterion!r}"
        )
    return CRITERIA[criterion]


def _batchnorm_gammas(model, graph) -> dict:
    """|γ| summed over the BatchNormalization layers that read each group whole, by group index."""
    gammas = {}
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization) and layer.scale:
            segments = graph.layouts[layer.name].segments
            if len(segments) == 1 and graph.layouts[layer.name].positions == 1:
                group = segments[0][0]
                gammas[group] = gammas.get(group, 0) + np.abs(layer.gamma.numpy()).astype(np.float64)
    return gammas


def _kernel(layer):
    if isinstance(layer, keras.layers.SeparableConv2D):
        return layer.pointwise_kernel.numpy()
    return layer.kernel.numpy()


class _Graph:
    """The model's layers in order, each output's channel layout, and the union of coupled groups."""

    def __init__(self, model, unsupported):
        self.model = model
        self.layouts, self.group_of = {}, {}
        self._parent, self._size, self._fixed, self._producers = [], [], [], []
        channels = int(model.input_shape[-1])
        self.layouts[_INPUT] = _Layout([(self._new_group(channels, fixed=True), channels)])
        for layer, inputs in _nodes(model):
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
            return self.layouts[_INPUT]
        problem = _unsupported_reason(layer)
        if problem:
            if unsupported == "error":
                raise ValueError(
                    f"Layer {layer.name!r} ({type(layer).__name__}) {problem}; channel pruning cannot handle it. "
                    "Pass unsupported='skip' to keep every channel around it, or protect it."
                )
            for layout in inputs:
                self._fix(layout)
            channels = int(layer.output_shape[-1])
            return _Layout([(self._new_group(channels, fixed=True), channels)])
        if isinstance(layer, _PRODUCERS):
            if inputs[0].positions > 1 and not isinstance(layer, keras.layers.Dense):
                raise ValueError(f"Layer {layer.name!r} reads a flattened tensor; only Dense can follow Flatten.")
            channels = int(layer.output_shape[-1])
            return _Layout([(self._new_group(channels, producer=layer.name), channels)])
        if isinstance(layer, keras.layers.Flatten):
            shape = layer.input_shape
            return _Layout(inputs[0].segments, positions=int(np.prod(shape[1:-1])) * inputs[0].positions)
        if isinstance(layer, keras.layers.Concatenate):
            return _Layout([segment for layout in inputs for segment in layout.segments])
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
            self.layouts[name] = _Layout([(remap[g], s) for g, s in layout.segments], layout.positions)
        self.group_of = {name: remap[g] for name, g in self.group_of.items()}
        return ordered


def _unsupported_reason(layer):
    if isinstance(layer, keras.Model):
        return "is a nested model"
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
        layer, _PRODUCERS + _PER_CHANNEL + _PASS_THROUGH + _MERGES + (keras.layers.Flatten, keras.layers.Concatenate)
    ):
        if getattr(layer, "data_format", "channels_last") != "channels_last":
            return "uses channels_first"
        return None
    return "is not a layer kind it knows"


def _nodes(model):
    """`(layer, names of the layers feeding it)` in graph order; nested models and shared layers refused."""
    if isinstance(model, keras.Sequential):
        layers = list(model.layers)
        return [(layer, [layers[index - 1].name if index else _INPUT]) for index, layer in enumerate(layers)]
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


def rebuild(model, plan):
    """A new model with the widths of `plan` and the surviving weights of `model` (see `channels`).

    Args:
      model: the model `plan` was made for.
      plan: a `ChannelPlan` from `plan_channels(model, ...)`.

    Returns:
      A new, smaller Keras model; `model` is not modified.

    Example:
      >>> smaller = rebuild(model, plan_channels(model, {"conv2d_1": 0.5}))
    """
    sizes = {}
    for name, group in plan.group_of.items():
        sizes[name] = len(plan.groups[group]["kept"])

    def resize(layer):
        config = layer.get_config()
        if layer.name in sizes:
            config["units" if isinstance(layer, keras.layers.Dense) else "filters"] = sizes[layer.name]
        return layer.__class__.from_config(config)

    smaller = keras.models.clone_model(model, clone_function=resize)  # new layers; `model` is left alone
    inputs_of = {layer.name: names for layer, names in _nodes(model)}
    for layer in model.layers:
        weights = layer.get_weights()
        if not weights:
            continue
        if _unsupported_reason(layer):  # skipped on request: the plan kept every channel around it
            smaller.get_layer(layer.name).set_weights(weights)
            continue
        kept_in = plan.kept(plan.layouts[inputs_of[layer.name][0]])
        kept_out = plan.kept(plan.layouts[layer.name])
        smaller.get_layer(layer.name).set_weights(_slice(layer, weights, kept_in, kept_out))
    return smaller


def _slice(layer, weights, kept_in, kept_out):
    if isinstance(layer, keras.layers.SeparableConv2D):
        depthwise, pointwise, *bias = weights
        return [depthwise[:, :, kept_in, :], pointwise[:, :, kept_in, :][..., kept_out]] + [b[kept_out] for b in bias]
    if isinstance(layer, keras.layers.DepthwiseConv2D):
        depthwise, *bias = weights
        return [depthwise[:, :, kept_in, :]] + [b[kept_in] for b in bias]
    if isinstance(layer, keras.layers.Conv2D):
        kernel, *bias = weights
        return [kernel[:, :, kept_in, :][..., kept_out]] + [b[kept_out] for b in bias]
    if isinstance(layer, keras.layers.Dense):
        kernel, *bias = weights
        return [kernel[kept_in][:, kept_out]] + [b[kept_out] for b in bias]
    if isinstance(layer, keras.layers.BatchNormalization):
        return [weight[kept_in] for weight in weights]
    raise ValueError(f"Layer {layer.name!r} ({type(layer).__name__}) holds weights channel pruning cannot slice.")
