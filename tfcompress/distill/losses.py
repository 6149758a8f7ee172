"""Soft-target losses for knowledge distillation, computed in float32 from logits."""

from tfcompress._keras import keras, tf

# Losses recognised as "KL divergence between softened distributions": for these the
# stable log-softmax form below replaces softmax-then-log.
_KL_NAMES = ("kl_divergence", "kld", "kullback_leibler_divergence", "KLDivergence")


def is_kl_divergence(loss_fn) -> bool:
    """Whether `loss_fn` is Keras's KL divergence (as a class, instance, function or name).

    Args:
      loss_fn: a Keras loss instance, loss function or loss name.

    Returns:
      True for `keras.losses.KLDivergence()`, `keras.losses.kl_divergence` and their names.

    Example:
      >>> is_kl_divergence(keras.losses.KLDivergence())
      True
    """
    if isinstance(loss_fn, str):
        return loss_fn in _KL_NAMES
    if isinstance(loss_fn, keras.losses.KLDivergence):
        return True
    return getattr(loss_fn, "__name__", None) in _KL_NAMES


def soft_target_kl(teacher_logits, student_logits, temperature):
    """Per-example KL(softmax(t / T) || softmax(s / T)) * T², in float32.

    Hinton et al. (2015) scale by T² so that the soft-target gradients keep their size
    as the temperature changes. Working from logits with log-softmax stays finite where
    `KLDivergence` on probabilities clips tiny probabilities.

    Args:
      teacher_logits: teacher outputs before softmax, shape `(batch, classes)`.
      student_logits: student outputs before softmax, same shape.
      temperature: the softening temperature T > 0.

    Returns:
      A float32 tensor of shape `(batch,)`.

    Example:
      >>> soft_target_kl(tf.constant([[2.0, 0.0]]), tf.constant([[0.0, 2.0]]), 2.0)
    """
    temperature = tf.cast(temperature, tf.float32)
    teacher_log_probs = tf.nn.log_softmax(tf.cast(teacher_logits, tf.float32) / temperature, axis=-1)
    student_log_probs = tf.nn.log_softmax(tf.cast(student_logits, tf.float32) / temperature, axis=-1)
    kl = tf.reduce_sum(tf.exp(teacher_log_probs) * (teacher_log_probs - student_log_probs), axis=-1)
    return kl * temperature**2


def per_example(loss_fn, y_true, y_pred):
    """Calls a Keras loss without reduction, returning one value per example.

    Args:
      loss_fn: a `keras.losses.Loss` instance, a loss function, or a loss name.
      y_true: targets.
      y_pred: predictions.

    Returns:
      A float32 tensor with one loss per example (reduced over any further axes).

    Example:
      >>> per_example(keras.losses.SparseCategoricalCrossentropy(from_logits=True), y, logits)
    """
    if isinstance(loss_fn, str):
        loss_fn = keras.losses.get(loss_fn)
    # Loss.call skips the reduction that Loss.__call__ would apply.
    values = loss_fn.call(y_true, y_pred) if isinstance(loss_fn, keras.losses.Loss) else loss_fn(y_true, y_pred)
    values = tf.cast(values, tf.float32)
    if values.shape.rank and values.shape.rank > 1:
        values = tf.reduce_mean(values, axis=list(range(1, values.shape.rank)))
    return values


def distillation_per_example(loss_fn, teacher_logits, student_logits, temperature):
    """Per-example distillation loss between softened teacher and student, times T², in float32.

    Keras's KL divergence (the default) takes the stable log-softmax path of
    `soft_target_kl`; any other loss is called, as in the keras.io example, on
    `(softmax(teacher / T), softmax(student / T))`.

    Args:
      loss_fn: a Keras loss instance, loss function or loss name.
      teacher_logits: teacher outputs before softmax, shape `(batch, classes)`.
      student_logits: student outputs before softmax, same shape.
      temperature: the softening temperature T > 0 (a float or a scalar tensor).

    Returns:
      A float32 tensor of shape `(batch,)`.

    Example:
      >>> distillation_per_example(keras.losses.KLDivergence(), teacher_logits, student_logits, 4.0)
    """
    if is_kl_divergence(loss_fn):
        return soft_target_kl(teacher_logits, student_logits, temperature)
    temperature = tf.cast(temperature, tf.float32)
    soft_teacher = tf.nn.softmax(tf.cast(teacher_logits, tf.float32) / temperature, axis=-1)
    soft_student = tf.nn.softmax(tf.cast(student_logits, tf.float32) / temperature, axis=-1)
    return per_example(loss_fn, soft_teacher, soft_student) * temperature**2
