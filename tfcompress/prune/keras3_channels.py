"""Structured pruning of a Keras 3 model: planned on its Keras 2 twin, built again from its own Keras 3 layers.

The coupling analysis and the criteria read Keras 2 (tf_keras) graphs. A Keras 3 model is
first flattened in Keras 3 (nested models inlined, names made unique), then rebuilt as its
Keras 2 twin (`from_keras3`: the same layer names and weights) to plan on. The result is
the flat Keras 3 model again, each of its layers recreated from its own Keras 3 config at
the planned width and given the twin's cut weights, and checked to compute what the Keras 2
rebuild of the plan computes. Residual blocks are dropped the same way: found on the twin, and
left out of the flat Keras 3 model.
"""

from tfcompress._keras3 import keras
from tfcompress._keras3_bridge import check_same_outputs, from_keras3
from tfcompress._keras3_graph import is_nested, rebuild
from tfcompress.prune import layer_kinds as kinds


def planning_twin(model):
    """`(flat, twin)`: `model` flattened in Keras 3 (copies of its layers), and that flat model's Keras 2 twin."""
    flat = _flat_copy(model)
    twin = from_keras3(flat)
    loss = getattr(model, "loss", None) or model.__dict__.get("_task_loss")
    if loss is not None:  # what the model was compiled to train says its task (tfcompress._tasks)
        flat.__dict__["_task_loss"] = twin.__dict__["_task_loss"] = loss
    return flat, twin


def resized(flat, twin, sizes: dict, weights: dict, expected):
    """`flat`'s layers at the widths `sizes` gives, with `weights`: a new Keras 3 model computing what `expected` does.

    Args:
      flat: a flat Keras 3 model (from `planning_twin`).
      twin: its Keras 2 twin, which the plan was made for.
      sizes: `{layer name: output channels}` of the layers whose width changes.
      weights: `{layer name: weights}` of every layer with weights, cut to the plan.
      expected: the Keras 2 rebuild of the plan.

    Returns:
      A new functional Keras 3 model; `flat` is not modified.
    """

    def copy(call, args, kwargs):
        operation = call.operation
        if not isinstance(operation, keras.layers.Layer):  # a Keras 3 operation (`x / 255.0`): no weights, no width
            return operation(*args, **kwargs)
        if id(operation) not in copies:
            config = operation.get_config()
            if operation.name in sizes:
                config = kinds.resized_config(twin.get_layer(operation.name), config, sizes[operation.name])
            copies[id(operation)] = type(operation).from_config(config)
        return copies[id(operation)](*args, **kwargs)

    copies = {}
    smaller = rebuild(flat, copy)
    for name, values in weights.items():
        smaller.get_layer(name).set_weights(values)
    if "_task_loss" in flat.__dict__:
        smaller.__dict__["_task_loss"] = flat.__dict__["_task_loss"]
    check_same_outputs(expected, smaller, what=f"The Keras 3 model of the channels kept in {flat.name!r}")
    return smaller


def without_branches(flat, skip_of: dict, expected):
    """`flat` with each Add that `skip_of` names passing its skip input on: a new Keras 3 model computing `expected`.

    Args:
      flat: a flat Keras 3 model (from `planning_twin`).
      skip_of: `{Add layer name: the name of the layer whose output it passes on}`.
      expected: the Keras 2 twin without the same branches.

    Returns:
      A new functional Keras 3 model of copies of `flat`'s layers, the branches' layers left out.
    """
    producer, copies = {}, {}

    def call(node, args, kwargs):
        operation = node.operation
        if operation.name in skip_of:
            skip = skip_of[operation.name]
            kept = [tensor for tensor in keras.tree.flatten(args) if producer.get(id(tensor)) == skip]
            if len(kept) != 1:
                raise ValueError(
                    f"Block {operation.name!r} reads {skip!r} in Keras 2 but not as one input in "
                    "Keras 3, so it cannot be dropped there. Drop it in tf_keras: "
                    "tfc.prune.drop_blocks(tfc.from_keras3(model), blocks)."
                )
            return kept[0]
        if isinstance(operation, keras.layers.Layer):
            if id(operation) not in copies:
                copies[id(operation)] = type(operation).from_config(operation.get_config())
            operation = copies[id(operation)]
        outputs = operation(*args, **kwargs)
        producer.update((id(tensor), node.operation.name) for tensor in keras.tree.flatten(outputs))
        return outputs

    def on_input(tensor):
        producer[id(tensor)] = tensor.name
        return tensor

    shallower = rebuild(flat, call, on_input=on_input)
    for layer in shallower.layers:
        if layer.weights:
            layer.set_weights(flat.get_layer(layer.name).get_weights())
    if "_task_loss" in flat.__dict__:
        shallower.__dict__["_task_loss"] = flat.__dict__["_task_loss"]
    check_same_outputs(expected, shallower, what=f"The Keras 3 model of {flat.name!r} without the blocks")
    return shallower


def _flat_copy(model):
    """A functional copy of `model` with nested models inlined and its weights; a nested layer whose name is taken
    gets a number after it."""
    taken = {layer.name for layer in model.layers if not is_nested(layer)}
    copies, originals = {}, []

    def copy(call, args, kwargs):
        operation = call.operation
        if not isinstance(operation, keras.layers.Layer):
            return operation(*args, **kwargs)
        if id(operation) not in copies:  # a layer called twice stays one layer
            config = operation.get_config()
            if config["name"] in taken and operation not in model.layers:
                config["name"] = _unique(config["name"], taken)
            taken.add(config["name"])
            copies[id(operation)] = type(operation).from_config(config)
            originals.append(operation)
        return copies[id(operation)](*args, **kwargs)

    flat = rebuild(model, copy)
    for original in originals:
        copies[id(original)].set_weights(original.get_weights())
    return flat


def _unique(name, taken):
    candidate, number = f"{name}_1", 1
    while candidate in taken:
        number += 1
        candidate = f"{name}_{number}"
    return candidate
