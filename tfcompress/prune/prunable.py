"""Which layers magnitude pruning wraps with TF-MOT's `PruneLowMagnitude`, and why the others stay dense."""

from tfcompress._keras import keras, tfmot, tfmot_module

# TF-MOT's public API does not export the wrapper class; the strip and callbacks use it too.
PruneLowMagnitude = tfmot_module("python.core.sparsity.keras.pruning_wrapper").PruneLowMagnitude


@keras.utils.register_keras_serializable(package="tfcompress")
class PrunableBidirectional(keras.layers.Bidirectional, tfmot.sparsity.keras.PrunableLayer):
    """A `Bidirectional` RNN that TF-MOT can prune: both directions' kernels and recurrent kernels.

    TF-MOT prunes LSTM, GRU and SimpleRNN but has no entry for `Bidirectional`; its public
    `PrunableLayer` interface lets a layer name its own prunable weights. `strip` turns
    it back into a plain `Bidirectional`.
    """

    def get_prunable_weights(self):
        """The kernel and recurrent kernel of each direction's cell."""
        return [
            getattr(direction.cell, name)
            for direction in (self.forward_layer, self.backward_layer)
            for name in ("kernel", "recurrent_kernel")
        ]


# Layers TF-MOT has no entry for, and the prunable subclass that stands in for them.
_STAND_INS = {keras.layers.Bidirectional: PrunableBidirectional}


def wrap(model, **params):
    """A copy of `model` with every layer TF-MOT can prune wrapped for pruning, the rest as they are."""
    dense, stand_ins = {}, []

    def wrap_layer(layer):
        if not layer.weights:
            return layer
        if not layer.trainable:
            dense[layer.name] = (
                "frozen (trainable=False): training could not repair what pruning removes; unfreeze it to prune it"
            )
            return layer
        target = layer
        if type(layer) in _STAND_INS:
            target = _STAND_INS[type(layer)].from_config(layer.get_config())
            stand_ins.append((target, layer))
        try:
            wrapper = PruneLowMagnitude(target, **params)
        except ValueError:  # TF-MOT: "Please initialize `Prune` with a supported layer"
            dense[layer.name] = f"TF-MOT has no pruning support for {type(layer).__name__} layers"
            return layer
        if target is layer and not wrapper.layer.get_prunable_weights():
            dense[layer.name] = f"TF-MOT prunes no weights of a {type(layer).__name__} (only kernels are pruned)"
            return layer
        return wrapper

    wrapped = keras.models.clone_model(model, clone_function=wrap_layer)
    for stand_in, original in stand_ins:
        stand_in.set_weights(original.get_weights())
    if not any(isinstance(layer, PruneLowMagnitude) for layer in wrapped.layers):
        reasons = "; ".join(f"{name!r}: {why}" for name, why in dense.items()) or "no layer has weights"
        raise ValueError(f"{model.name!r} has no layer that magnitude pruning can prune ({reasons}).")
    return wrapped, dense


def restore(layer, args, kwargs):
    """For `flat_copy`'s `substitute`: the user's own layer class back in place of a prunable stand-in."""
    for original, stand_in in _STAND_INS.items():
        if isinstance(layer, stand_in):
            return original.from_config(layer.get_config()), args, kwargs
    return None
