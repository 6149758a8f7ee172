"""Structured pruning: remove whole channels and neurons, so the model is physically smaller and faster.

The model's graph is read into coupled channel groups (see `coupling`). A group is pruned
as one: its channels are scored by a criterion (see `criteria`), the lowest are dropped
from every layer that touches them, and a new Keras model is built with the surviving
weights copied exactly. How many go from each group is a ratio (per layer, uniform or
allocated globally) or whatever meets a parameter or MAC budget.
"""

import dataclasses
import warnings

import numpy as np

from tfcompress._checks import check_number
from tfcompress._choices import DATA_DRIVEN_CRITERIA
from tfcompress._graph import flat_copy, nested_models
from tfcompress._keras import keras
from tfcompress._keras3 import is_keras3_model
from tfcompress._model_guards import ensure_graph_model, graph_model
from tfcompress.data.arrays import arrays_from
from tfcompress.prune import criteria, keras3_channels
from tfcompress.prune import layer_kinds as kinds
from tfcompress.prune.compute_cost import cost, total
from tfcompress.prune.coupling import PRODUCERS, Graph, nodes

_BUDGET_KEYS = ("parameters", "macs")
_FIRST, _LAST = "first", "last"


def channels(
    model,
    ratio=None,
    *,
    criterion="l1",
    data=None,
    protect=(),
    unsupported: str = "error",
    allocation="uniform",
    budget=None,
):
    """Removes the least important channels (and Dense neurons): a new, physically smaller model.

    Coupled channels go together; the output layer keeps all its units; a nested base is flattened first. The
    pruning guide lists the layers it handles and how each criterion scores.

    Args:
      model: a built Sequential or functional model of either Keras.
      ratio: share of each group's channels to remove, in [0, 1), or a dict of layer name -> ratio; default 0.5.
      criterion: "l1", "l2", "bn_gamma", with `data` "taylor", "mean_activation" or "apoz", or a function
        `(tfc.prune.Group) -> scores` (one per channel, lowest pruned first).
      data: examples for the data-driven criteria: `(x, y)`, `x` alone (not "taylor") or a batched dataset.
      protect: names of layers whose output channels are all kept; "first" and "last" allowed.
      unsupported: "error" (default) stops at a layer it cannot cut; "skip" keeps every channel around it.
      allocation: "uniform" (default) cuts `ratio` of every group; "global" cuts the lowest-scoring overall.
      budget: instead of `ratio`, `{"parameters": n}` or `{"macs": n}`: a share in (0, 1) or a count.

    Returns:
      A new, smaller model in `model`'s Keras with the surviving weights copied; fine-tune it (`tfc.prune.finetune`).

    Raises:
      TypeError: `model` is not a Keras model.
      ValueError: an argument is out of range, or both `ratio` and `budget` are given;
        the budget cannot be met; a criterion needs `data` that is missing; a layer is
        not supported (named) and `unsupported` is "error"; or the model is subclassed,
        unbuilt or holds nested models or shared layers.

    Examples:
      >>> smaller = tfc.prune.channels(model, ratio=0.5, criterion="l1")
      >>> smaller.count_params() < model.count_params()
      True
      >>> fits = tfc.prune.channels(model, budget={"macs": 0.5}, allocation="global")
    """
    options = {"criterion": criterion, "data": data, "protect": protect, "unsupported": unsupported,
               "allocation": allocation, "budget": budget}  # fmt: skip
    if is_keras3_model(model):
        flat, twin = keras3_channels.planning_twin(graph_model(model))
        return _in_keras3(flat, twin, plan_channels(twin, ratio, **options))
    model = ensure_graph_model(model)
    if nested_models(model):
        model = flat_copy(model)
    return rebuild(model, plan_channels(model, ratio, **options))


@dataclasses.dataclass
class ChannelPlan:
    """What `channels` removes: the coupled groups and the channels each keeps.

    Attributes:
      groups: one dict per group: `layers` (the producers), `channels`, `kept` (indices),
        `prunable`, and for prunable groups the `criterion` that scored them.
      layouts: the channel layout of each layer's output (internal).
      group_of: the group index of each producer (internal).
      ratio: the ratio the plan was made with (found from the budget, if one was given);
        None for a per-layer dict.
    """

    groups: list
    layouts: dict
    group_of: dict
    ratio: float = None

    def kept(self, layout) -> np.ndarray:
        """The kept indices of a tensor's channels, concatenated over its segments (and positions).

        Args:
          layout: a layer's `coupling.Layout`.

        Returns:
          Indices into the tensor's last axis (after a Flatten, into its flattened axis).

        Examples:
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

    def widths(self) -> dict:
        """Each producer layer's output channels before and after: `{layer: (before, after)}`.

        Examples:
          >>> plan_channels(model, 0.5).widths()["conv_b"]
          (16, 8)
        """
        return {
            name: (self.groups[group]["channels"], len(self.groups[group]["kept"]))
            for name, group in self.group_of.items()
        }


def plan_channels(
    model,
    ratio=None,
    *,
    criterion="l1",
    data=None,
    protect=(),
    unsupported="error",
    allocation="uniform",
    budget=None,
) -> ChannelPlan:
    """Finds the coupled channel groups of `model` and which channels each keeps (see `channels`).

    Args:
      model: a built Sequential or functional Keras 2 model, or a Keras 3 one (planned on its flat Keras 2 twin:
        the same layer names).
      ratio: as for `channels`.
      criterion: as for `channels`.
      data: as for `channels`.
      protect: as for `channels`.
      unsupported: as for `channels`.
      allocation: as for `channels`.
      budget: as for `channels`.

    Returns:
      A `ChannelPlan`.

    Raises:
      ValueError: as for `channels`, or a Keras 2 `model` holds a nested model (`channels`
        flattens it first; plan `tfcompress._graph.flat_copy(model)`).

    Examples:
      >>> [group["layers"] for group in plan_channels(model).groups if group["prunable"]]
    """
    if is_keras3_model(model):
        model = keras3_channels.planning_twin(graph_model(model))[1]
    model = ensure_graph_model(model)
    if nested_models(model):
        raise ValueError(
            f"`model` holds the nested models {nested_models(model)}; tfc.prune.channels flattens them first. "
            "To plan by hand, plan the flat copy it prunes: tfcompress._graph.flat_copy(model)."
        )
    if ratio is not None and budget is not None:
        raise ValueError("Pass either `ratio` or `budget`, not both: a budget finds its own ratio.")
    ratios = _ratios(model, 0.5 if ratio is None else ratio)
    score, scored_by = criteria.resolve(criterion)
    if allocation not in ("uniform", "global"):
        raise ValueError(f"`allocation` must be 'uniform' or 'global'. Received: {allocation!r}")
    if allocation == "global" and isinstance(ratio, dict):
        raise ValueError("`allocation='global'` spreads one `ratio` over all layers; pass a number, not a dict.")
    if unsupported not in ("error", "skip"):
        raise ValueError(f"`unsupported` must be 'error' or 'skip'. Received: {unsupported!r}")
    limit = _budget(model, budget)
    if criterion in DATA_DRIVEN_CRITERIA and data is None:
        raise ValueError(
            f"criterion={criterion!r} measures channels on data; pass data=(x, y) "
            "(a few hundred training examples are enough)."
        )
    graph = Graph(model, unsupported)
    for name in _protected(model, protect) + list(model.output_names):  # the output layer keeps all its units
        graph.fix_output_of(name)
    groups = graph.groups()
    _score(model, graph, groups, score, scored_by, data)
    prunable = [group for group in groups if group["prunable"]]
    if limit is None:
        _allocate(prunable, ratios, allocation)
        found = None if isinstance(ratio, dict) else ratios[None]
    else:
        found = _meet_budget(model, groups, graph, prunable, allocation, limit)
    for group in groups:
        group.pop("scores", None)
    return ChannelPlan(groups=groups, layouts=graph.layouts, group_of=graph.group_of, ratio=found)


def _score(model, graph, groups, score, scored_by, data):
    """Sets each prunable group's `scores` and the `criterion` that made them."""
    views = []
    for index, group in enumerate(groups):
        group["kept"] = list(range(group["channels"]))
        if group["prunable"]:
            layers = [model.get_layer(name) for name in group["layers"]]
            views.append((index, _view(model, graph, index, group, layers, scored_by)))
    evidence = None
    if data is not None:
        x, y = arrays_from(data, argument="data")
        read_at = [graph.read_at(index) for index, _ in views]
        evidence = criteria.Evidence(model, [view for _, view in views], read_at, (x, y))
    for index, view in views:
        view._evidence = evidence
        scores = np.asarray(score(view), dtype=np.float64).reshape(-1)
        if scores.shape != (view.channels,):
            raise ValueError(
                f"The criterion {scored_by!r} returned {scores.shape[0]} scores for the {view.channels} channels "
                f"of {view.layers[0].name!r}; it must return one per channel."
            )
        groups[index]["scores"], groups[index]["criterion"] = scores, view.scored_by
    if evidence is not None and not evidence.used:
        warnings.warn(f"criterion {scored_by!r} does not read `data`; it was not used.", stacklevel=3)


def _view(model, graph, index, group, layers, scored_by):
    gammas = [
        np.abs(layer.gamma.numpy()).astype(np.float64)
        for layer in model.layers
        if isinstance(layer, keras.layers.BatchNormalization)
        and layer.scale
        and graph.layouts[layer.name].positions == 1
        and [g for g, _ in graph.layouts[layer.name].segments] == [index]
    ]
    kernels = [
        np.moveaxis(variable.numpy(), axis, -1) for layer in layers for variable, axis in kinds.output_kernels(layer)
    ]
    return criteria.Group(group["channels"], layers, kernels, gammas, scored_by)


def _allocate(groups, ratios, allocation):
    if allocation == "global":
        _allocate_globally(groups, ratios[None])
        return
    for group in groups:
        rate = max(ratios.get(layer, ratios.get(None, 0.0)) for layer in group["layers"])
        _keep_top(group, group["channels"] - int(np.floor(rate * group["channels"])))


def _keep_top(group, keep):
    keep = max(1, keep)  # a layer with no channel left would cut the model in two
    group["kept"] = sorted(np.argsort(-group["scores"], kind="stable")[:keep].tolist())


def _allocate_globally(groups, ratio):
    """Removes the `ratio` share of all prunable channels with the lowest scores, wherever they are."""
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


def _budget(model, budget):
    """`(key, count)` the pruned model must fit, or None without a budget."""
    if budget is None:
        return None
    if not isinstance(budget, dict) or len(budget) != 1 or next(iter(budget)) not in _BUDGET_KEYS:
        raise ValueError(f"`budget` must be one of {{'parameters': n}} or {{'macs': n}}. Received: {budget!r}")
    ((key, value),) = budget.items()
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise ValueError(f"`budget[{key!r}]` must be a number. Received: {value!r}")
    if 0 < value < 1:
        return key, value * cost(model)[key]
    if value >= 1 and float(value).is_integer():
        return key, float(value)
    raise ValueError(
        f"`budget[{key!r}]` must be a share in (0, 1) of the model's own count or a whole count >= 1. "
        f"Received: {value!r}"
    )


def _meet_budget(model, groups, graph, prunable, allocation, limit):
    """Bisects the ratio for the least pruning that fits `limit`; returns the ratio."""
    key, count = limit
    plan = ChannelPlan(groups=groups, layouts=graph.layouts, group_of=graph.group_of)

    def fits(rate):
        _allocate(prunable, {None: rate}, allocation)
        return plan_cost(model, plan)[key] <= count

    low, high = 0.0, 1.0 - 1e-9
    if fits(low):
        return low
    if not fits(high):
        smallest = plan_cost(model, plan)[key]
        raise ValueError(
            f"`budget` asks for at most {count:,.0f} {key}, but even removing all but one channel of every "
            f"prunable group leaves {smallest:,}: the output layer, protected layers and their couplings are "
            "kept whole. Raise the budget or protect fewer layers."
        )
    for _ in range(40):
        middle = (low + high) / 2
        low, high = (low, middle) if fits(middle) else (middle, high)
    fits(high)
    return high


def _protected(model, protect):
    if isinstance(protect, str):
        raise ValueError(f"`protect` must be a list of layer names, e.g. [{protect!r}]. Received: {protect!r}")
    names = {layer.name for layer in model.layers}
    producers = [
        layer.name for layer, _ in nodes(model) if isinstance(layer, PRODUCERS) and layer.name not in model.output_names
    ]
    chosen = []
    for name in protect:
        if name in names:
            chosen.append(name)
        elif name in (_FIRST, _LAST) and producers:
            chosen.append(producers[0 if name == _FIRST else -1])
        else:
            raise ValueError(
                f"`protect` names {name!r}, which is not a layer of {model.name!r} (nor 'first' or 'last')."
            )
    return chosen


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


def plan_cost(model, plan) -> dict:
    """Parameters and MACs the model would have after `plan`, without building it (see `cost`).

    Args:
      model: the model `plan` was made for.
      plan: a `ChannelPlan`.

    Returns:
      The dict `tfc.prune.cost` returns, for the pruned widths.

    Examples:
      >>> plan_cost(model, plan_channels(model, 0.5))["macs"]
    """
    return total((layer, [w.shape for w in weights]) for layer, weights in _sliced(model, plan))


def rebuild(model, plan):
    """A new model with the widths of `plan` and the surviving weights of `model` (see `channels`).

    Args:
      model: the model `plan` was made for, of either Keras.
      plan: a `ChannelPlan` from `plan_channels(model, ...)`.

    Returns:
      A new, smaller model in `model`'s Keras; `model` is not modified.

    Examples:
      >>> smaller = rebuild(model, plan_channels(model, {"conv2d_1": 0.5}))
    """
    if is_keras3_model(model):  # the plan names the layers of its flat Keras 2 twin, which are the flat copy's
        return _in_keras3(*keras3_channels.planning_twin(graph_model(model)), plan)
    sizes = _sizes(model, plan)

    def resize(layer):
        if layer.name in sizes:
            return kinds.resized(layer, sizes[layer.name])
        return layer.__class__.from_config(layer.get_config())

    smaller = keras.models.clone_model(model, clone_function=resize)  # new layers; `model` is left alone
    for layer, weights in _sliced(model, plan):
        smaller.get_layer(layer.name).set_weights(weights)
    return smaller


def _in_keras3(flat, twin, plan):
    """`flat` (a flat Keras 3 model) at the widths of `plan`, made for its Keras 2 `twin`, with the cut weights."""
    weights = {layer.name: values for layer, values in _sliced(twin, plan)}
    return keras3_channels.resized(flat, twin, _sizes(twin, plan), weights, expected=rebuild(twin, plan))


def _sizes(model, plan) -> dict:
    """`{layer name: output channels}` of the producers, and of the reshapes that add unit axes, under `plan`."""
    sizes = {name: len(plan.groups[group]["kept"]) for name, group in plan.group_of.items()}
    for layer in model.layers:  # a reshape that adds unit axes names its channel count
        if isinstance(layer, keras.layers.Reshape) and layer.name in plan.layouts:
            sizes[layer.name] = len(plan.kept(plan.layouts[layer.name]))
    return sizes


def _sliced(model, plan):
    """`(layer, weights cut to the plan)` for each layer of `model` with weights."""
    inputs_of = {layer.name: names for layer, names in nodes(model)}
    for layer in model.layers:
        weights = layer.get_weights()
        if not weights:
            continue
        if kinds.role(layer)[0] is None:
            yield layer, weights  # skipped on request: the plan kept every channel around it
            continue
        kept_in = [plan.kept(plan.layouts[name]) for name in inputs_of[layer.name]]
        layout = plan.layouts[layer.name]
        kept_out = plan.kept(layout.__class__(layout.segments[:1], layout.positions))  # a Bidirectional's one direction
        yield layer, kinds.cut_weights(layer, weights, kept_in, kept_out)
