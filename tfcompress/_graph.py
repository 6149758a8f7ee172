"""A model's layer calls in order, and copies of a model rebuilt one level deep.

Users bring models with a nested base (`MobileNetV2(include_top=False)` inside their own
model). TF-MOT refuses those, and the channel coupling graph cannot see inside them, so
every stage works on a flat copy: the same layers and weights, each nested model's
layers called in its place. The copy computes the same outputs; a frozen base stays frozen.
"""

import dataclasses
import inspect

import tensorflow as tf

from tfcompress._keras import keras
from tfcompress._keras3 import keras_of


@dataclasses.dataclass
class Call:
    """One call of a layer in a functional model.

    Attributes:
      layer: the layer called.
      args: the positional arguments, Keras tensors in place.
      kwargs: the keyword arguments (a TFOpLambda's constants, MultiHeadAttention's `value`).
      outputs: the Keras tensors it returned.
    """

    layer: object
    args: tuple
    kwargs: dict
    outputs: object

    @property
    def inputs(self) -> list:
        """The Keras tensors among the arguments, in argument order."""
        return [value for value in tf.nest.flatten((self.args, self.kwargs)) if is_keras_tensor(value)]


def calls(model) -> list:
    """Every layer call of a Sequential or functional model, inputs before the layers that read them."""
    order = {id(layer): index for index, layer in enumerate(model.layers)}
    found = []
    # Depth 0 is the outputs; the deepest nodes are the inputs.
    for depth in sorted(model._nodes_by_depth, reverse=True):  # noqa: SLF001  (the graph Keras itself walks)
        nodes = sorted(model._nodes_by_depth[depth], key=lambda node: order.get(id(node.layer), len(order)))  # noqa: SLF001
        for node in nodes:
            if node.is_input or isinstance(node.layer, keras.layers.InputLayer):
                continue
            found.append(Call(node.layer, tuple(node.call_args), dict(node.call_kwargs), node.outputs))
    return found


def is_nested(layer) -> bool:
    """Whether `layer` is a Sequential or functional model used as a layer (a base model)."""
    return isinstance(layer, keras.Model) and (
        getattr(layer, "_is_graph_network", False) or isinstance(layer, keras.Sequential)
    )


def nested_models(model) -> list:
    """The names of the models nested in `model` (at any depth)."""
    names = []
    for layer in model.layers:
        if is_nested(layer):
            names.append(layer.name)
            names.extend(nested_models(layer))
    return names


def flat_copy(model, substitute=None, batch_size=None):
    """A new functional model with every nested model's layers inlined, and every layer copied."""
    builder = _Builder(substitute, top=model)
    inputs = [
        keras.Input(
            batch_shape=(batch_size or tensor.shape[0],) + tuple(tensor.shape[1:]),
            dtype=tensor.dtype,
            name=_input_name(tensor),
        )
        for tensor in model.inputs
    ]
    for name in (tensor.name for tensor in inputs):
        builder.names.add(name.split(":")[0])
    outputs = builder.inline(model, inputs, trainable=True, training=None)
    flat = keras.Model(
        inputs if len(inputs) > 1 else inputs[0], outputs if len(outputs) > 1 else outputs[0], name=model.name
    )
    for copy, original in builder.weights_from:
        copy.set_weights(original.get_weights())
    return flat


def _input_name(tensor):
    return tensor._keras_history.layer.name  # noqa: SLF001  (the InputLayer's name is the input's name)


class _Builder:
    """Calls copies of a model's layers on new tensors, descending into nested models."""

    def __init__(self, substitute, top):
        self.substitute = substitute
        self.top = top
        self.copies = {}  # id(original layer) -> its copy, so a shared layer stays shared
        # The outer model's own layers keep their names; nested layers give way to them.
        self.names = {layer.name for layer in top.layers if not is_nested(layer)}
        self.weights_from = []

    def inline(self, model, inputs, trainable, training):
        """Calls `model`'s layers on `inputs` (a list, one per model input); returns its outputs as a list."""
        tensors = {id(reference): tensor for reference, tensor in zip(model.inputs, inputs)}
        trainable = trainable and model.trainable
        for call in calls(model):
            args, kwargs = tf.nest.map_structure(lambda value: _mapped(value, tensors), (call.args, call.kwargs))
            if is_nested(call.layer):
                given = tf.nest.flatten(args[0]) if args else tf.nest.flatten(kwargs.pop("inputs"))
                outputs = self.inline(call.layer, given, trainable, kwargs.get("training", training))
            else:
                layer, args, kwargs = self._layer_for(call.layer, args, kwargs, model, trainable)
                chain = layer if isinstance(layer, list) else [layer]
                if training is not None and "training" not in kwargs and _takes_training(chain[0]):
                    kwargs["training"] = training
                outputs = chain[0](*args, **kwargs)
                for step in chain[1:]:
                    outputs = step(outputs)
                outputs = tf.nest.flatten(outputs)
            for reference, tensor in zip(tf.nest.flatten(call.outputs), outputs):
                tensors[id(reference)] = tensor
        return [tensors[id(reference)] for reference in model.outputs]

    def _layer_for(self, original, args, kwargs, owner, trainable):
        replaced = self.substitute(original, args, kwargs) if self.substitute else None
        if replaced is not None and isinstance(replaced[0], list):  # weightless layers in turn
            for step in replaced[0]:
                step.trainable = original.trainable and trainable
            return replaced
        if replaced is not None:
            copy, args, kwargs = replaced
        elif id(original) in self.copies:  # a shared layer stays shared
            return self.copies[id(original)], args, kwargs
        else:
            config = original.get_config()
            config["name"] = original.name if owner is self.top else self._unique(original.name, owner.name)
            try:
                copy = original.__class__.from_config(config)
            except Exception as error:  # custom layers fail in their own ways
                raise ValueError(
                    f"Layer {original.name!r} ({type(original).__name__}) cannot be recreated from its config "
                    f"({error}), so tfcompress cannot work on a copy of the model. Give the layer a get_config() "
                    "that returns its constructor arguments."
                ) from error
            self.copies[id(original)] = copy
        copy.trainable = original.trainable and trainable
        if original.weights:
            self.weights_from.append((copy, original))
        return copy, args, kwargs

    def _unique(self, name, owner):
        candidate, number = name, 1
        if candidate in self.names:
            candidate = f"{owner}_{name}"
        while candidate in self.names:
            candidate, number = f"{owner}_{name}_{number}", number + 1
        self.names.add(candidate)
        return candidate


def is_keras_tensor(value) -> bool:
    """Whether `value` is a symbolic tensor of a functional model (what a layer call takes and returns)."""
    return hasattr(value, "_keras_history")


def _mapped(value, tensors):
    return tensors[id(value)] if is_keras_tensor(value) else value


def _takes_training(layer) -> bool:
    return "training" in inspect.signature(layer.call).parameters


def clone_with_weights(model):
    """Returns an independent copy of a Sequential or functional model of either Keras, weights included."""
    copy = keras_of(model).models.clone_model(model)
    copy.set_weights(model.get_weights())
    return copy
