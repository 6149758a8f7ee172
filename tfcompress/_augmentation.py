"""Keras's augmentation layers: random views in training, identities at inference, which every stage passes by.

TensorFlow's image tutorials put them inside the model (`Sequential([RandomFlip(...),
RandomRotation(...)])` before the base). Channel pruning passes through them, QAT leaves
them unquantized, and the converter, tracing the model for inference, leaves them out of
the file: the export's notes say so.
"""

from tfcompress._keras import keras

# Identities at inference. RandomCrop is not one: at inference it crops the centre and resizes.
IDENTITIES_AT_INFERENCE = tuple(
    getattr(keras.layers, name)
    for name in (
        "RandomFlip",
        "RandomRotation",
        "RandomZoom",
        "RandomTranslation",
        "RandomContrast",
        "RandomBrightness",
        "RandomHeight",
        "RandomWidth",
    )
)
# Layers that move or resample pixels, each channel alike, and keep the values' range.
SPATIAL = (keras.layers.RandomCrop, keras.layers.Resizing, keras.layers.CenterCrop)


def left_out_at_inference(model) -> list:
    """The names of `model`'s augmentation layers that are identities at inference (nested models included; either
    Keras)."""
    names = {layer.__name__ for layer in IDENTITIES_AT_INFERENCE}
    return [layer.name for layer in _walk(model) if type(layer).__name__ in names]


def _walk(model):
    for layer in getattr(model, "layers", []):
        layer = getattr(layer, "layer", layer)  # TF-MOT's wrappers hold the layer
        yield layer
        yield from _walk(layer)
