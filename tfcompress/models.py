"""The built-in models: the CNN teacher and student of the demo, and a small ResNet.

Recipes name them `builtin:teacher`, `builtin:student` and `builtin:resnet`; they are
plain models of the Keras asked for (tf_keras by default, or Keras 3's `keras`), sized for the
built-in 8x8 digits and larger images alike.

Examples:
  >>> teacher = tfc.models.conv_net((32, 64), 384, "teacher")
  >>> resnet = tfc.models.builtin("builtin:resnet", input_shape=(28, 28, 1), classes=10)
"""

from tfcompress._choices import BUILTIN_MODELS
from tfcompress._keras3 import keras_of

__all__ = ["builtin", "conv_net", "residual_net"]


def conv_net(filters: tuple, dense_units: int, name: str, input_shape: tuple = (8, 8, 1), classes: int = 10,
             keras=None):  # fmt: skip
    """The demo's CNN: two 3x3 convolutions, max-pooling, two dense layers.

    Inputs larger than 8x8 (such as MNIST's 28x28) are pooled after the first
    convolution too, so the dense layer stays a reasonable size.

    Args:
      filters: output channels of the two convolutions.
      dense_units: width of the hidden dense layer.
      name: model name.
      input_shape: shape of one image, `(height, width, channels)`.
      classes: how many logits it outputs.
      keras: the Keras module to build it with: tf_keras by default, or `import keras` for Keras 3.

    Returns:
      An uncompiled Sequential model that outputs `classes` logits.

    Examples:
      >>> conv_net((32, 64), 384, "teacher").count_params()
      416266
    """
    keras = keras or keras_of(None)
    first = [keras.layers.Conv2D(filters[0], 3, padding="same", activation="relu")]
    if input_shape[0] > 8:
        first.append(keras.layers.MaxPooling2D())
    return keras.Sequential(
        [keras.Input(shape=input_shape)]
        + first
        + [
            keras.layers.Conv2D(filters[1], 3, padding="same", activation="relu"),
            keras.layers.MaxPooling2D(),
            keras.layers.Flatten(),
            keras.layers.Dense(dense_units, activation="relu"),
            keras.layers.Dense(classes),
        ],
        name=name,
    )


def residual_net(width: int, blocks: int, name: str, input_shape: tuple = (8, 8, 1), classes: int = 10,
                 keras=None):  # fmt: skip
    """A small ResNet: a stem, basic residual blocks, global average pooling, a dense head.

    Each block is conv-BN-ReLU-conv-BN added to its input, then a ReLU (He et al., 2016).
    Inputs larger than 8x8 are max-pooled after the stem. The layers are named
    `stem`, `stem_bn`, `block{i}_conv1`, `block{i}_bn1`, `block{i}_conv2`, `block{i}_bn2`,
    `block{i}_add` and `logits`, so pruning results read clearly.

    Args:
      width: channels of every convolution.
      blocks: how many residual blocks; `name`, `input_shape`, `classes` and `keras` are as `conv_net` takes
        them.

    Returns:
      An uncompiled functional model that outputs `classes` logits.

    Examples:
      >>> residual_net(16, 3, "resnet").count_params()
      14698
    """
    keras = keras or keras_of(None)
    inputs = keras.Input(shape=input_shape)
    x = keras.layers.Conv2D(width, 3, padding="same", name="stem")(inputs)
    x = keras.layers.ReLU()(keras.layers.BatchNormalization(name="stem_bn")(x))
    if input_shape[0] > 8:
        x = keras.layers.MaxPooling2D()(x)
    for block in range(1, blocks + 1):
        branch = keras.layers.Conv2D(width, 3, padding="same", name=f"block{block}_conv1")(x)
        branch = keras.layers.ReLU()(keras.layers.BatchNormalization(name=f"block{block}_bn1")(branch))
        branch = keras.layers.Conv2D(width, 3, padding="same", name=f"block{block}_conv2")(branch)
        branch = keras.layers.BatchNormalization(name=f"block{block}_bn2")(branch)
        x = keras.layers.ReLU()(keras.layers.Add(name=f"block{block}_add")([x, branch]))
    x = keras.layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, keras.layers.Dense(classes, name="logits")(x), name=name)


def builtin(name: str, input_shape: tuple = (8, 8, 1), classes: int = 10, keras=None):
    """Builds one of the built-in models, untrained.

    Args:
      name: "builtin:teacher" (CNN, 416k parameters on digits), "builtin:student" (the
        same CNN with a quarter of the parameters) or "builtin:resnet" (three residual
        blocks of width 16).
      input_shape: shape of one image, `(height, width, channels)`.
      classes: how many logits it outputs.
      keras: the Keras module to build it with: tf_keras by default, or `import keras` for Keras 3.

    Returns:
      An uncompiled model of that Keras, named after the part after "builtin:".

    Raises:
      ValueError: `name` is not a built-in model.

    Examples:
      >>> builtin("builtin:student").count_params()
      105226
    """
    if name not in BUILTIN_MODELS:
        raise ValueError(f"`{name}` is not a built-in model; those are {list(BUILTIN_MODELS)}.")
    short, input_shape = name.split(":", 1)[1], tuple(input_shape)
    if short == "resnet":
        return residual_net(16, 3, short, input_shape, classes=classes, keras=keras)
    filters, units = {"teacher": ((32, 64), 384), "student": ((16, 32), 192)}[short]
    return conv_net(filters, units, short, input_shape, classes=classes, keras=keras)
