"""Layer removal: drop whole residual branches, the coarsest structured pruning (Veit et al., 2016).

A residual block computes `skip + branch(skip)`. Where the branch reads only the skip
tensor and nothing outside the block reads the branch, dropping it leaves `skip`: the
block becomes the identity and every layer of the branch is gone.
"""

from tfcompress import _tasks
from tfcompress._keras import keras
from tfcompress._keras3 import is_keras3_model
from tfcompress._model_guards import graph_model
from tfcompress.data.arrays import labelled_arrays
from tfcompress.prune import keras3_channels
from tfcompress.prune.coupling import nodes


def residual_blocks(model, data=None, *, task=None) -> list:
    """The residual blocks of `model` whose branch can be dropped safely.

    Args:
      model: a built Sequential or functional model of either Keras.
      data: optional held-out `(x, y)` (labels as for `tfc.litert.verify`): each block is
        then dropped alone and the accuracy left (a regression's error) is measured, with
        no fine-tuning.
      task: the output's task ("multiclass", "binary", "multilabel", "regression");
        None infers it (see `tfc.litert.verify`).

    Returns:
      One dict per block, in graph order: `add` (the Add layer's name, which names the
      block), `skip` (the layer whose output is kept), `branch` (the layers dropped with
      it), `parameters` (theirs); with `data`, also `accuracy` and `drop` (in points,
      from the full model's accuracy); for regression `mae` and `drop` (its rise, in percent).

    Raises:
      TypeError: `model` is not a Keras model.
      ValueError: `model` is subclassed or unbuilt, or the data is unusable.

    Examples:
      >>> [block["add"] for block in tfc.prune.residual_blocks(mobilenet)][:2]
      ['block_2_add', 'block_4_add']
    """
    model = graph_model(model)
    if is_keras3_model(model):  # found and measured on its Keras 2 twin (the same function and layer names)
        model = keras3_channels.planning_twin(model)[1]
    blocks = _blocks(model)
    if data is not None:
        x, y = labelled_arrays(data, "data")
        task = _tasks.infer(model, task=task, labels=y)
        y = task.labels(y, model.outputs[0].shape[1:], argument="data")
        baseline = _tasks.evaluate(model, x, y, task)
        for block in blocks:
            block[task.measure] = _tasks.evaluate(drop_blocks(model, [block["add"]]), x, y, task)
            block["drop"] = 100 * task.drop(baseline, block[task.measure])
    return blocks


def _blocks(model) -> list:
    """The droppable blocks of a Keras 2 graph model, as `residual_blocks` lists them (without measures)."""
    graph = nodes(model)
    inputs_of = {layer.name: names for layer, names in graph}
    readers = {}
    for layer, names in graph:
        for name in names:
            readers.setdefault(name, []).append(layer.name)
    blocks = []
    for layer, names in graph:
        if not isinstance(layer, keras.layers.Add) or len(names) != 2 or names[0] == names[1]:
            continue
        for skip, end in (names, names[::-1]):
            branch = _branch(skip, end, inputs_of, readers, layer.name, model.output_names)
            if branch:
                parameters = sum(model.get_layer(name).count_params() for name in branch)
                blocks.append({"add": layer.name, "skip": skip, "branch": branch, "parameters": parameters})
                break
    return blocks


def drop_blocks(model, blocks):
    """A new model without the named residual blocks' branches (see `residual_blocks`).

    Args:
      model: a built Sequential or functional model of either Keras.
      blocks: names of the blocks' Add layers, as `residual_blocks` lists them.

    Returns:
      A new model of `model`'s Keras in which each named block passes its skip tensor on;
      every other layer is a copy with the same weights. `model` is not modified. Fine-tune it.

    Raises:
      TypeError: `model` is not a Keras model.
      ValueError: a name is not a block whose branch can be dropped, or a layer cannot
        be copied (a layer called with extra arguments).

    Examples:
      >>> shallower = tfc.prune.drop_blocks(mobilenet, ["block_5_add", "block_9_add"])
    """
    model = graph_model(model)
    if isinstance(blocks, str):
        raise ValueError(f"`blocks` must be a list of Add layer names, e.g. [{blocks!r}].")
    flat, twin = keras3_channels.planning_twin(model) if is_keras3_model(model) else (None, model)
    droppable = {block["add"]: block for block in _blocks(twin)}
    unknown = [name for name in blocks if name not in droppable]
    if unknown:
        raise ValueError(
            f"`blocks` names {unknown}, which are not residual blocks of {model.name!r} whose branch can be dropped. "
            f"Those are: {sorted(droppable)}."
        )
    if not blocks:
        raise ValueError("`blocks` is empty; name at least one block (see tfc.prune.residual_blocks).")
    skip_of = {name: droppable[name]["skip"] for name in blocks}
    removed = {layer for name in blocks for layer in droppable[name]["branch"]}
    shallower = _rewire(twin, skip_of, removed)
    return shallower if flat is None else keras3_channels.without_branches(flat, skip_of, shallower)


def _branch(skip, end, inputs_of, readers, add, outputs):
    """The layers between `skip` and `end`, if `end` depends only on `skip` and nothing else reads them."""
    branch, frontier = set(), [end]
    while frontier:
        name = frontier.pop()
        if name == skip or name in branch:
            continue
        if not inputs_of.get(name):  # reached the model input without passing `skip`
            return None
        branch.add(name)
        frontier.extend(inputs_of[name])
    for name in branch:
        outside = [reader for reader in readers.get(name, []) if reader not in branch and reader != add]
        if outside or name in outputs:
            return None
    return [name for name in inputs_of if name in branch]  # in graph order


def _rewire(model, skip_of, removed):
    for entry in model.get_config()["layers"]:
        if any(len(item) > 3 and item[3] for node in entry.get("inbound_nodes") or [] for item in node):
            raise ValueError(
                f"Layer {entry['config']['name']!r} is called with extra arguments, which a copy cannot repeat; "
                "dropping blocks needs plain layer calls."
            )
    tensors = {}
    for layer, names in nodes(model):
        if isinstance(layer, keras.layers.InputLayer):
            config = layer.get_config()
            tensors[layer.name] = keras.Input(batch_shape=config["batch_input_shape"], dtype=config["dtype"],
                                              name=layer.name)  # fmt: skip
            continue
        if layer.name in removed:
            continue
        if layer.name in skip_of:
            tensors[layer.name] = tensors[skip_of[layer.name]]
            continue
        copy = layer.__class__.from_config(layer.get_config())
        inputs = [tensors[name] for name in names]
        tensors[layer.name] = copy(inputs if isinstance(layer.input, list) else inputs[0])
        copy.set_weights(layer.get_weights())
    return keras.Model([tensors[name] for name in model.input_names], [tensors[name] for name in model.output_names],
                       name=model.name)  # fmt: skip
