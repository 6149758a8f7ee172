"""What a model is, read the same way in either Keras: its outputs' names, its layers at every depth, its kind.

Keras 2 (`tf_keras`) and Keras 3 keep these under different names (Keras 3's Sequential has
no `output_names`, its layers no public `inbound_nodes`); code shared by both engines reads
them here.
"""


def graph_outputs(model) -> list:
    """`model`'s symbolic outputs, or [] for a subclassed or unbuilt model (Keras 3 raises where Keras 2 has None)."""
    try:
        return list(model.outputs or [])
    except AttributeError:
        return []


def output_names(model) -> list:
    """The names of `model`'s outputs: the layers that compute them."""
    names = getattr(model, "output_names", None)
    if names:
        return list(names)
    return [tensor._keras_history[0].name for tensor in model.outputs]  # noqa: SLF001  (what made the tensor)


def input_names(model) -> list:
    """The names of `model`'s inputs: their Input layers' names."""
    names = getattr(model, "input_names", None)
    if names:
        return list(names)
    return [tensor._keras_history[0].name for tensor in model.inputs]  # noqa: SLF001


def inbound_nodes(layer) -> list:
    """The calls of `layer` in functional graphs (Keras 3 keeps them private)."""
    nodes = getattr(layer, "inbound_nodes", None)
    return list(nodes if nodes is not None else getattr(layer, "_inbound_nodes", []))


def is_graph_model(model) -> bool:
    """Whether `model` is a Sequential or functional model, whose layers and wiring can be read."""
    if any(cls.__name__ in ("Sequential", "Functional") for cls in type(model).__mro__):
        return True
    return bool(getattr(model, "_is_graph_network", False))  # a Keras 2 subclass of a functional model


def all_layers(model) -> list:
    """Every layer inside `model`, nested models' and wrappers' layers included, parents first."""
    found = []
    for layer in getattr(model, "layers", []):
        found.append(layer)
        found.extend(all_layers(layer))
        inner = getattr(layer, "layer", None)  # Bidirectional, TimeDistributed, pruning and QAT wrappers
        if inner is not None:
            found.extend([inner, *all_layers(inner)])
    return found
