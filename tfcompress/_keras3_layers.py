"""Keras 3 layers tfcompress puts in the models it converts: Keras's own, computed the way the converter keeps simple.

Keras 3's `Flatten` and `Reshape` reshape to `(batch, ...)` with the batch read from the
input's shape at run time, which the converter keeps as shape arithmetic (SHAPE,
STRIDED_SLICE, PACK) that XNNPACK does not run; tf_keras's reshape to `(-1, ...)`.
`StaticFlatten` and `StaticReshape` compute the same in one reshape.
"""

import math

from tfcompress._keras3 import keras


@keras.saving.register_keras_serializable(package="tfcompress")
class StaticFlatten(keras.layers.Flatten):
    """Keras's `Flatten` for inputs of a known size per example: one reshape to `(-1, features)`."""

    def call(self, inputs):
        if None in tuple(inputs.shape[1:]) or self.data_format == "channels_first":
            return super().call(inputs)
        return keras.ops.reshape(inputs, (-1, math.prod(inputs.shape[1:])))


@keras.saving.register_keras_serializable(package="tfcompress")
class StaticReshape(keras.layers.Reshape):
    """Keras's `Reshape` for a known target shape: one reshape to `(-1, *target_shape)`."""

    def call(self, inputs):
        if -1 in tuple(self.target_shape) or None in tuple(self.target_shape):
            return super().call(inputs)
        return keras.ops.reshape(inputs, (-1, *self.target_shape))


# Keras's layers, and the static ones that compute the same.
_STATIC = {keras.layers.Flatten: StaticFlatten, keras.layers.Reshape: StaticReshape}


def static_twin(layer):
    """`layer` as its static twin if it is Keras's `Flatten` or `Reshape`, else itself."""
    twin = _STATIC.get(type(layer))
    return twin.from_config(layer.get_config()) if twin else layer


def for_conversion(model):
    """`model` (Keras 3), or a copy of it with each `Flatten` and `Reshape` static, which converts to less.

    A copy, weights included, not a model of the same layers: calling the user's layers on new inputs would add
    calls to their model's layers (`layer.output` then refuses to answer).
    """
    if not any(type(layer) in _STATIC for layer in _all(model)):
        return model

    def clone(layer):
        return static_twin(layer) if type(layer) in _STATIC else layer.__class__.from_config(layer.get_config())

    copy = keras.models.clone_model(model, clone_function=clone, recursive=True)
    copy.set_weights(model.get_weights())
    return copy


def _all(model):
    for layer in getattr(model, "layers", []):
        yield layer
        yield from _all(layer)
