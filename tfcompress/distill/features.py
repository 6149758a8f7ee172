"""Feature distillation: losses between a student layer's output and a teacher layer's output."""

import tensorflow as tf

from tfcompress._checks import check_number
from tfcompress._keras3 import keras_of


class FeatureLoss:
    """A loss between the outputs of a named student layer and a named teacher layer.

    Passed to `Distiller.compile(feature_losses=[...])`. With `fn` it is the hook for a
    feature-level method of your own; `Hint` and `AttentionTransfer` are the built-in ones.
    The term added to the Distiller's loss is `weight * mean over the batch of fn(...)`,
    independent of `alpha`, and it is logged under `name`.

    Args:
      student_layer: the name of a layer of the student (see `student.summary()`).
      teacher_layer: the name of a layer of the teacher.
      fn: `fn(student_feature, teacher_feature)` returning one loss per example (shape
        `(batch,)`) or a scalar; both features arrive as float32.
      weight: the term's weight, >= 0.
      name: the name the term is logged under; defaults to `"<student_layer>_loss"`.

    Raises:
      ValueError: a layer name is empty or `weight` is negative.
      TypeError: `fn` is given but not callable.

    Examples:
      >>> cosine = tfc.distill.FeatureLoss(
      ...     "student_dense", "teacher_dense",
      ...     fn=lambda s, t: 1 - tf.reduce_sum(tf.nn.l2_normalize(s, -1) * tf.nn.l2_normalize(t, -1), -1))
      >>> distiller.compile(optimizer="adam", feature_losses=[cosine])
    """

    def __init__(self, student_layer: str, teacher_layer: str, fn=None, weight: float = 1.0, name=None):
        for argument, value in (("student_layer", student_layer), ("teacher_layer", teacher_layer)):
            if not isinstance(value, str) or not value:
                raise ValueError(f"`{argument}` must be a layer name (a non-empty string). Received: {value!r}")
        if fn is not None and not callable(fn):
            raise TypeError(f"`fn` must be callable as fn(student_feature, teacher_feature). Received: {fn!r}")
        check_number("weight", weight, low=0)
        self.student_layer = student_layer
        self.teacher_layer = teacher_layer
        self.fn = fn
        self.weight = float(weight)
        self.name = name or f"{student_layer}_loss"

    def __repr__(self):
        return f"{type(self).__name__}({self.student_layer!r}, {self.teacher_layer!r}, weight={self.weight})"

    def make_adapter(self, student_shape, teacher_shape, keras=None):
        """Returns a trainable layer that maps the student feature to the teacher's shape, or None.

        Args:
          student_shape: the student layer's output shape, batch included.
          teacher_shape: the teacher layer's output shape, batch included.
          keras: the Keras module to build the layer with (the student's); tf_keras by default.

        Returns:
          None here: a custom `fn` receives the features as they are.

        Examples:
          >>> FeatureLoss("a", "b", fn=my_fn).make_adapter((None, 8), (None, 16)) is None
          True
        """
        del student_shape, teacher_shape, keras
        return None

    def per_example(self, student_feature, teacher_feature):
        """The loss for each example of the batch, in float32.

        Args:
          student_feature: the student layer's output (after the adapter, if any).
          teacher_feature: the teacher layer's output.

        Returns:
          A float32 tensor of shape `(batch,)` (or a scalar from a custom `fn`).

        Examples:
          >>> loss.per_example(student_feature, teacher_feature)
        """
        if self.fn is None:
            raise NotImplementedError(f"{type(self).__name__} needs `fn` or a `per_example` of its own.")
        return tf.cast(self.fn(student_feature, teacher_feature), tf.float32)


class Hint(FeatureLoss):
    """FitNets hint loss (Romero et al., 2015): the student's feature regresses the teacher's.

    The loss is the mean squared difference between the teacher's feature and the
    student's, after a trainable adapter (a 1x1 convolution for feature maps, a dense layer
    for vectors) that maps the student's channels to the teacher's. The adapter is trained
    with the student and is not part of `distiller.student`.

    Args:
      student_layer: the name of a student layer (the "guided" layer).
      teacher_layer: the name of a teacher layer (the "hint" layer).
      weight: the term's weight, >= 0.
      adapter: "auto" adds one only when the shapes differ; True always; False never
        (the shapes must then be equal).
      name: the name the term is logged under; defaults to `"<student_layer>_hint"`.

    Raises:
      ValueError: an argument is out of range; at compile, the feature maps differ in
        spatial size, or their ranks differ.

    Examples:
      >>> hint = tfc.distill.Hint("student_conv", "teacher_conv", weight=0.5)
      >>> distiller.compile(optimizer="adam", feature_losses=[hint])
    """

    def __init__(self, student_layer: str, teacher_layer: str, weight: float = 1.0, adapter="auto", name=None):
        super().__init__(student_layer, teacher_layer, weight=weight, name=name or f"{student_layer}_hint")
        if adapter not in ("auto", True, False):
            raise ValueError(f'`adapter` must be "auto", True or False. Received: adapter={adapter!r}')
        self.adapter = adapter

    def make_adapter(self, student_shape, teacher_shape, keras=None):
        """A 1x1 Conv2D (feature maps) or Dense (vectors) to the teacher's channels, or None.

        Args:
          student_shape: the student layer's output shape, batch included.
          teacher_shape: the teacher layer's output shape, batch included.
          keras: the Keras module to build the layer with (the student's); tf_keras by default.

        Returns:
          A built, trainable Keras layer, or None when no adapter is needed.

        Raises:
          ValueError: the shapes cannot be matched by a channel mapping.

        Examples:
          >>> Hint("s", "t").make_adapter((None, 4, 4, 8), (None, 4, 4, 32))
        """
        student_shape, teacher_shape = tuple(student_shape), tuple(teacher_shape)
        if len(student_shape) != len(teacher_shape) or student_shape[1:-1] != teacher_shape[1:-1]:
            raise ValueError(
                f"{self!r}: the student layer outputs shape {student_shape[1:]} and the teacher layer "
                f"{teacher_shape[1:]} (batch left out). A hint maps channels only, so everything but the "
                "last axis must match: pick layers at the same resolution."
            )
        if self.adapter is False or (self.adapter == "auto" and student_shape == teacher_shape):
            if student_shape != teacher_shape:
                raise ValueError(f"{self!r}: adapter=False needs equal shapes; got {student_shape}, {teacher_shape}.")
            return None
        channels = teacher_shape[-1]
        keras = keras or keras_of(None)
        if len(teacher_shape) == 4:
            layer = keras.layers.Conv2D(channels, 1, name=f"{self.name}_adapter")
        elif len(teacher_shape) == 2:
            layer = keras.layers.Dense(channels, name=f"{self.name}_adapter")
        else:
            raise ValueError(f"{self!r}: adapters exist for (batch, features) and (batch, H, W, C) outputs only.")
        layer.build(student_shape)
        return layer

    def per_example(self, student_feature, teacher_feature):
        """Mean squared difference per example, over all feature axes.

        Args:
          student_feature: the adapted student feature.
          teacher_feature: the teacher feature, same shape.

        Returns:
          A float32 tensor of shape `(batch,)`.

        Examples:
          >>> Hint("s", "t").per_example(tf.zeros((2, 3)), tf.ones((2, 3)))
        """
        difference = tf.cast(student_feature, tf.float32) - tf.cast(teacher_feature, tf.float32)
        return tf.reduce_mean(tf.reshape(tf.square(difference), [tf.shape(difference)[0], -1]), axis=-1)


class AttentionTransfer(FeatureLoss):
    """Attention transfer (Zagoruyko & Komodakis, 2017) between two convolutional feature maps.

    A feature map's attention map is the mean over channels of its squared activations,
    flattened and L2-normalised; the loss is the mean squared difference between the
    student's and the teacher's attention maps, as in the authors' code. The channel counts
    may differ (no adapter is needed); the spatial sizes must match.

    Args:
      student_layer: the name of a student layer with output `(batch, H, W, C_s)`.
      teacher_layer: the name of a teacher layer with output `(batch, H, W, C_t)`.
      weight: the term's weight; the paper's β/2 with β = 1000, so 500 by default.
      name: the name the term is logged under; defaults to `"<student_layer>_attention"`.

    Raises:
      ValueError: at compile, a layer's output is not a 4-D feature map, or the spatial
        sizes differ.

    Examples:
      >>> at = tfc.distill.AttentionTransfer("student_conv", "teacher_conv")
      >>> distiller.compile(optimizer="adam", feature_losses=[at])
    """

    def __init__(self, student_layer: str, teacher_layer: str, weight: float = 500.0, name=None):
        super().__init__(student_layer, teacher_layer, weight=weight, name=name or f"{student_layer}_attention")

    def make_adapter(self, student_shape, teacher_shape, keras=None):
        """Checks that both are feature maps of the same spatial size; attention needs no adapter.

        Args:
          student_shape: the student layer's output shape, batch included.
          teacher_shape: the teacher layer's output shape, batch included.
          keras: unused: attention transfer has no adapter.

        Returns:
          None.

        Raises:
          ValueError: the shapes are not `(batch, H, W, C)` with equal H and W.

        Examples:
          >>> AttentionTransfer("s", "t").make_adapter((None, 4, 4, 8), (None, 4, 4, 32)) is None
          True
        """
        del keras
        student_shape, teacher_shape = tuple(student_shape), tuple(teacher_shape)
        if len(student_shape) != 4 or len(teacher_shape) != 4 or student_shape[1:3] != teacher_shape[1:3]:
            raise ValueError(
                f"{self!r}: attention transfer needs two feature maps (batch, H, W, C) with the same H and W; "
                f"the student layer outputs {student_shape[1:]} and the teacher layer {teacher_shape[1:]}."
            )
        return None

    def per_example(self, student_feature, teacher_feature):
        """Mean squared difference of the normalised attention maps, per example.

        Args:
          student_feature: the student feature map `(batch, H, W, C_s)`.
          teacher_feature: the teacher feature map `(batch, H, W, C_t)`.

        Returns:
          A float32 tensor of shape `(batch,)`.

        Examples:
          >>> AttentionTransfer("s", "t").per_example(tf.ones((2, 4, 4, 8)), tf.ones((2, 4, 4, 3)))
        """
        difference = _attention_map(student_feature) - _attention_map(teacher_feature)
        return tf.reduce_mean(tf.square(difference), axis=-1)


def _attention_map(feature):
    feature = tf.cast(feature, tf.float32)
    energy = tf.reduce_mean(tf.square(feature), axis=-1)
    return tf.math.l2_normalize(tf.reshape(energy, [tf.shape(feature)[0], -1]), axis=-1)
