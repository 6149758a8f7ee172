"""Keras 3 layers tfcompress puts in the models it converts: Keras's own, computed the way the converter keeps simple.

Keras 3's `Flatten` reshapes to `(batch, features)` with the batch read from the input's
shape at run time, which the converter keeps as shape arithmetic (SHAPE, STRIDED_SLICE,
PACK) that XNNPACK does not run; tf_keras's reshapes to `(-1, features)`. `StaticFlatten`
computes the same in one reshape.
"""

import math

from tfcompress._keras3 import keras
from tfcompress._keras3_graph import rebuild


@keras.saving.register_keras_serializable(package="tfcompress")
class StaticFlatten(keras.layers.Flatten):
    """Keras's `Flatten` for inputs of a known size per example: one reshape to `(-1, features)`."""

    def call(self, inputs):
        if None in tuple(inputs.shape[1:]) or self.data_format == "channels_first":
            return super().call(inputs)
        return keras.ops.reshape(inputs, (-1, math.prod(inputs.shape[1:])))


def static_flatten(layer):
    """`layer` as a `StaticFlatten` if it is Keras's `Flatten`, else itself."""
    if type(layer) is keras.layers.Flatten:
        return StaticFlatten.from_config(layer.get_config())
    return layer


def for_conversion(model):
    """`model` (Keras 3), or a model of its layers with each `Flatten` a `StaticFlatten`, which converts to less."""
    if not any(type(call_layer) is keras.layers.Flatten for call_layer in _all(model)):
        return model
    swapped = {}

    def call_copy(call, args, kwargs):
        operation = call.operation
        if type(operation) is keras.layers.Flatten:
            operation = swapped.setdefault(id(operation), static_flatten(operation))
        return operation(*args, **kwargs)

    return rebuild(model, call_copy)


def _all(model):
    for layer in getattr(model, "layers", []):
        yield layer
        yield from _all(layer)
