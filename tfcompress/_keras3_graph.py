"""A Keras 3 model's calls in order, and new functional models built from them with nested models inlined.

The Keras 3 engine rewrites users' models (QAT wraps each layer, folds each BatchNormalization
into its convolution) the way `_graph` does for tf_keras: it walks the functional graph call
by call and calls a replacement on new tensors. Nested Sequential and functional models (a
`keras.applications` base inside a transfer model) are inlined, so every layer is reachable.
"""

import dataclasses
import inspect

from tfcompress._keras3 import keras


@dataclasses.dataclass
class Call:
    """One call of a layer or operation in a functional model.

    Attributes:
      operation: the layer, or Keras 3 operation (`x / 255.0` is a TrueDivide), called.
      args: the positional arguments, Keras tensors in place.
      kwargs: the keyword arguments.
      outputs: the Keras tensors it returned, as a list.
    """

    operation: object
    args: tuple
    kwargs: dict
    outputs: list

    @property
    def inputs(self) -> list:
        """The Keras tensors among the arguments, in order."""
        return [value for value in keras.tree.flatten((self.args, self.kwargs)) if _is_tensor(value)]


def calls(model) -> list:
    """Every call of a built Sequential or functional Keras 3 model, each after the calls that make its inputs."""
    graph = _functional(model)
    found = []
    for depth in sorted(graph._nodes_by_depth, reverse=True):  # noqa: SLF001  (the graph Keras itself walks)
        for node in graph._nodes_by_depth[depth]:  # noqa: SLF001
            if isinstance(node.operation, keras.layers.InputLayer):
                continue
            found.append(Call(node.operation, tuple(node.arguments.args), dict(node.arguments.kwargs),
                              list(keras.tree.flatten(node.outputs))))  # fmt: skip
    return found


def readers(model) -> dict:
    """`{id(tensor): [calls that read it]}` over the whole model, nested models inlined."""
    found = {}
    for call in flat_calls(model):
        for tensor in call.inputs:
            found.setdefault(id(tensor), []).append(call)
    return found


def flat_calls(model) -> list:
    """`calls(model)`, with each nested model's calls in place of its call."""
    found = []
    for call in calls(model):
        if is_nested(call.operation):
            found += flat_calls(call.operation)
        else:
            found.append(call)
    return found


def rebuild(model, call_copy, name=None, on_input=None):
    """A new functional model of `model`'s graph, nested models inlined, each call replaced by `call_copy`.

    Args:
      model: a built Sequential or functional Keras 3 model.
      call_copy: `call_copy(call, args, kwargs)` returns the new call's outputs (a tensor or a list), given the
        call and its arguments with the new graph's tensors in place.
      name: the new model's name; `model`'s by default.
      on_input: `on_input(tensor)` gives what the model's layers read in place of a new input tensor.

    Returns:
      A new functional model.
    """
    inputs = [keras.Input(batch_shape=tuple(tensor.shape), dtype=tensor.dtype, name=_input_name(tensor))
              for tensor in model.inputs]  # fmt: skip
    outputs = _inline(model, [on_input(tensor) for tensor in inputs] if on_input else inputs, call_copy)
    return keras.Model(inputs if len(inputs) > 1 else inputs[0], outputs if len(outputs) > 1 else outputs[0],
                       name=name or model.name)  # fmt: skip


def _inline(model, inputs, call_copy, training=None):
    tensors = {id(original): new for original, new in zip(model.inputs, inputs)}
    for call in calls(model):
        args, kwargs = keras.tree.map_structure(lambda value: tensors.get(id(value), value), (call.args, call.kwargs))
        if is_nested(call.operation):
            given = [value for value in keras.tree.flatten((args, kwargs)) if _is_tensor(value)]
            # `base(x, training=False)`, as transfer learning calls a base, holds for the base's own layers.
            outputs = _inline(call.operation, given, call_copy, kwargs.get("training", training))
        else:
            if training is not None and "training" in inspect.signature(call.operation.call).parameters:
                kwargs = {**kwargs, "training": training}
            outputs = keras.tree.flatten(call_copy(call, args, kwargs))
        for original, new in zip(call.outputs, outputs):
            tensors[id(original)] = new
    return [tensors[id(tensor)] for tensor in model.outputs]


def is_nested(operation) -> bool:
    """Whether `operation` is a Sequential or functional model used as a layer."""
    return isinstance(operation, keras.Model) and any(
        cls.__name__ in ("Sequential", "Functional") for cls in type(operation).__mro__
    )


def _functional(model):
    """`model` as a functional graph: a Sequential's layers are read through a functional view of them."""
    if hasattr(model, "_nodes_by_depth"):
        return model
    return keras.Model(one_or_all(model.inputs), one_or_all(model.outputs), name=model.name)


def one_or_all(tensors):
    """A model's one tensor as itself, several as a list: how a functional model keeps its inputs' structure."""
    tensors = list(tensors)
    return tensors[0] if len(tensors) == 1 else tensors


def _input_name(tensor):
    return tensor._keras_history[0].name  # noqa: SLF001  (the InputLayer's name is the input's name)


def _is_tensor(value) -> bool:
    return isinstance(value, keras.KerasTensor)
