"""Soft-target losses for knowledge distillation, computed in float32 from logits."""

import tensorflow as tf

from tfcompress._checks import check_number
from tfcompress._keras3 import keras_of

# Losses recognised as "KL divergence between softened distributions": for these the
# stable log-softmax form below replaces softmax-then-log.
_KL_NAMES = ("kl_divergence", "kld", "kullback_leibler_divergence", "KLDivergence")
# Probabilities are clipped this far from 0 and 1 before they are turned back into logits.
_SMALLEST = 1e-7


def is_kl_divergence(loss_fn) -> bool:
    """Whether `loss_fn` is Keras's KL divergence (either Keras's; as a class, instance, function or name)."""
    if isinstance(loss_fn, str):
        return loss_fn in _KL_NAMES
    if type(loss_fn).__name__ == "KLDivergence":  # either Keras's
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

    Examples:
      >>> soft_target_kl(tf.constant([[2.0, 0.0]]), tf.constant([[0.0, 2.0]]), 2.0)
    """
    temperature = tf.cast(temperature, tf.float32)
    teacher_log_probs = tf.nn.log_softmax(tf.cast(teacher_logits, tf.float32) / temperature, axis=-1)
    student_log_probs = tf.nn.log_softmax(tf.cast(student_logits, tf.float32) / temperature, axis=-1)
    return _kl_from_log_probs(teacher_log_probs, student_log_probs) * temperature**2


def per_example(loss_fn, y_true, y_pred):
    """Calls a Keras loss without reduction, returning one value per example."""
    if isinstance(loss_fn, str):
        loss_fn = keras_of(None).losses.get(loss_fn)  # a name: the same function in either Keras
    # Loss.call skips the reduction that Loss.__call__ would apply (in either Keras).
    is_loss = isinstance(loss_fn, keras_of(loss_fn).losses.Loss)
    values = loss_fn.call(y_true, y_pred) if is_loss else loss_fn(y_true, y_pred)
    values = tf.cast(values, tf.float32)
    if values.shape.rank and values.shape.rank > 1:
        values = tf.reduce_mean(values, axis=list(range(1, values.shape.rank)))
    return values


def soft_target_binary_kl(teacher_logits, student_logits, temperature):
    """Per-example KL between each label's softened yes/no, sigmoid(t / T) against sigmoid(s / T), times T²."""
    temperature = tf.cast(temperature, tf.float32)
    teacher = tf.cast(teacher_logits, tf.float32) / temperature
    student = tf.cast(student_logits, tf.float32) / temperature
    yes, no = tf.math.log_sigmoid(teacher), tf.math.log_sigmoid(-teacher)
    kl = tf.exp(yes) * (yes - tf.math.log_sigmoid(student)) + tf.exp(no) * (no - tf.math.log_sigmoid(-student))
    return _per_example_mean(kl) * temperature**2


def as_logits(outputs, kind: str, probabilities: bool):
    """A head's outputs as logits, in float32: probabilities are turned back (log for softmax, logit for sigmoid)."""
    outputs = tf.cast(outputs, tf.float32)
    if not probabilities or kind == "regression":
        return outputs
    clipped = tf.clip_by_value(outputs, _SMALLEST, 1.0 - _SMALLEST)
    if kind == "multiclass":  # softmax(log p) = p, and softmax(log p / T) is p softened by T
        return tf.math.log(clipped)
    return tf.math.log(clipped) - tf.math.log1p(-clipped)


def distillation_per_example(loss_fn, teacher_logits, student_logits, temperature, labels=None,
                             kind: str = "multiclass"):  # fmt: skip
    """Per-example distillation loss between softened teacher and student, times T², in float32."""
    if kind == "regression":
        return per_example(loss_fn, tf.cast(teacher_logits, tf.float32), tf.cast(student_logits, tf.float32))
    if isinstance(loss_fn, DecoupledKD):
        return loss_fn.per_example(labels, teacher_logits, student_logits, temperature)
    if is_kl_divergence(loss_fn):
        if kind == "multiclass":
            return soft_target_kl(teacher_logits, student_logits, temperature)
        return soft_target_binary_kl(teacher_logits, student_logits, temperature)
    temperature = tf.cast(temperature, tf.float32)
    soften = (lambda logits: tf.nn.softmax(logits, axis=-1)) if kind == "multiclass" else tf.math.sigmoid
    soft_teacher = soften(tf.cast(teacher_logits, tf.float32) / temperature)
    soft_student = soften(tf.cast(student_logits, tf.float32) / temperature)
    return per_example(loss_fn, soft_teacher, soft_student) * temperature**2


def fuse_teachers(teacher_logits, weights, temperature, kind: str = "multiclass"):
    """Fuses several teachers into the logits of their weighted average soft targets."""
    if len(teacher_logits) == 1:
        return tf.cast(teacher_logits[0], tf.float32)
    teacher_logits = [tf.cast(logits, tf.float32) for logits in teacher_logits]
    temperature = tf.cast(temperature, tf.float32)
    if kind == "regression":
        return tf.add_n([logits * float(weight) for logits, weight in zip(teacher_logits, weights)])
    if kind != "multiclass":
        mean = tf.add_n([tf.math.sigmoid(logits / temperature) * float(weight)
                         for logits, weight in zip(teacher_logits, weights)])  # fmt: skip
        return temperature * as_logits(mean, kind, probabilities=True)
    log_probs = [
        tf.nn.log_softmax(logits / temperature, axis=-1) + tf.math.log(float(weight))
        for logits, weight in zip(teacher_logits, weights)
    ]
    return temperature * tf.reduce_logsumexp(tf.stack(log_probs), axis=0)


def one_hot_labels(labels, classes):
    """Labels as a float32 one-hot matrix, from class indices or one-hot rows."""
    if labels.shape.rank == 2 and labels.shape[-1] == classes and classes != 1:
        return tf.cast(labels, tf.float32)
    return tf.one_hot(tf.reshape(tf.cast(labels, tf.int32), [-1]), classes, dtype=tf.float32)


class DecoupledKD:
    """Decoupled knowledge distillation (Zhao et al., CVPR 2022), as a `distillation_loss_fn`.

    Splits the classic KL into target-class KD (TCKD: the binary "right class or not"
    distribution) and non-target-class KD (NCKD: the distribution among the wrong classes),
    and weighs them separately: `alpha * TCKD + beta * NCKD`, each times T². Classic KD
    weighs NCKD by the teacher's `1 - p_target`, which shrinks it exactly where the teacher
    is confident; DKD gives it its own weight. The paper's defaults are alpha=1, beta=8, T=4.

    Args:
      alpha: weight of the target-class term, >= 0.
      beta: weight of the non-target-class term, >= 0.

    Raises:
      ValueError: a weight is negative or not a number.

    Examples:
      >>> distiller.compile(optimizer="adam", distillation_loss_fn=tfc.distill.DecoupledKD(beta=8.0),
      ...                   alpha=0.5, temperature=4.0)
    """

    def __init__(self, alpha: float = 1.0, beta: float = 8.0):
        check_number("alpha", alpha, low=0)
        check_number("beta", beta, low=0)
        self.alpha = float(alpha)
        self.beta = float(beta)

    def __repr__(self):
        return f"DecoupledKD(alpha={self.alpha}, beta={self.beta})"

    def per_example(self, labels, teacher_logits, student_logits, temperature):
        """Per-example `alpha * TCKD + beta * NCKD`, each times T², in float32, shape `(batch,)`.

        Args:
          labels: class indices or one-hot labels; the other arguments as `soft_target_kl` takes them.

        Examples:
          >>> DecoupledKD().per_example(y, teacher_logits, student_logits, 4.0)
        """
        temperature = tf.cast(temperature, tf.float32)
        teacher = tf.cast(teacher_logits, tf.float32) / temperature
        student = tf.cast(student_logits, tf.float32) / temperature
        target = one_hot_labels(labels, student.shape[-1])
        target_kl = _binary_kl(_target_log_probs(teacher, target), _target_log_probs(student, target))
        # Pushing the target logit far down leaves the softmax over the other classes.
        non_target_kl = _kl_from_log_probs(
            tf.nn.log_softmax(teacher - 1e9 * target, axis=-1), tf.nn.log_softmax(student - 1e9 * target, axis=-1)
        )
        return (self.alpha * target_kl + self.beta * non_target_kl) * temperature**2


def _target_log_probs(logits, target):
    """log p(target) and log(1 - p(target)), stably, from softened logits."""
    log_probs = tf.nn.log_softmax(logits, axis=-1)
    log_target = tf.reduce_sum(log_probs * target, axis=-1)
    log_rest = tf.reduce_logsumexp(log_probs - 1e9 * target, axis=-1)
    return log_target, log_rest


def _binary_kl(teacher, student):
    (teacher_target, teacher_rest), (student_target, student_rest) = teacher, student
    return tf.exp(teacher_target) * (teacher_target - student_target) + tf.exp(teacher_rest) * (
        teacher_rest - student_rest
    )


def _per_example_mean(values):
    return tf.reduce_mean(tf.reshape(values, [tf.shape(values)[0], -1]), axis=-1)


def _kl_from_log_probs(teacher_log_probs, student_log_probs):
    return tf.reduce_sum(tf.exp(teacher_log_probs) * (teacher_log_probs - student_log_probs), axis=-1)
