"""Network slimming's training half: an L1 penalty on BatchNormalization γ makes channels prunable."""

from tfcompress._checks import check_number
from tfcompress._keras3 import keras_of
from tfcompress._model_guards import graph_model


def gamma_penalty(model, strength: float = 1e-4):
    """A copy of `model` whose BatchNormalization scales γ carry an L1 penalty (Liu et al., 2017).

    Training the copy pushes the γ of channels the model can do without towards zero;
    `tfc.prune.channels(..., criterion="bn_gamma")` then removes those channels at little
    cost. Call it again with `strength=0` to drop the penalty (e.g. before fine-tuning).

    Args:
      model: a built Sequential or functional model of either Keras with
        BatchNormalization layers that learn a scale.
      strength: the L1 factor added to the loss per unit of Σ|γ|; 1e-5 to 1e-4 is
        typical; 0 removes the penalty.

    Returns:
      A new model of `model`'s Keras with the same weights and the penalty set;
      compile and train it. `model` is not modified.

    Raises:
      TypeError: `model` is not a Keras model.
      ValueError: `strength` is negative, or no BatchNormalization layer learns a scale.

    Examples:
      >>> slim = tfc.prune.gamma_penalty(model, 1e-4)
      >>> slim.compile(optimizer="adam", loss=loss)
      >>> slim.fit(x, y, epochs=3)
      >>> smaller = tfc.prune.channels(slim, 0.5, criterion="bn_gamma")
    """
    model = graph_model(model)
    check_number("strength", strength, low=0)
    keras = keras_of(model)
    scaled = [
        layer.name for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization) and layer.scale
    ]
    if not scaled:
        raise ValueError(
            f"{model.name!r} has no BatchNormalization layer that learns a scale (γ); the penalty has nothing to act "
            "on. Add BatchNormalization after the convolutions, or prune with criterion='l1'."
        )

    def penalize(layer):
        config = layer.get_config()
        if layer.name in scaled:
            config["gamma_regularizer"] = keras.regularizers.L1(strength) if strength else None
        return layer.__class__.from_config(config)

    copy = keras.models.clone_model(model, clone_function=penalize)
    copy.set_weights(model.get_weights())
    return copy
