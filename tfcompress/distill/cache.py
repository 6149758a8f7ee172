"""The cached teacher: the teacher's outputs computed once and stored with the inputs they belong to.

A cached dataset yields `(features, labels[, sample_weight])` batches whose features are a
dict holding the inputs under `INPUTS`, the teachers' logits under `LOGITS` (stacked on
axis 1, one slice per teacher) and any hinted teacher layers under `FEATURE_PREFIX + name`.
The Distiller recognises that dict and skips the teacher's forward pass.
"""

import hashlib
import json
import os
import shutil
import tempfile

import numpy as np
import tensorflow as tf

from tfcompress._checks import check_positive_integer
from tfcompress._models import all_layers

INPUTS = "tfcompress_inputs"
LOGITS = "tfcompress_teacher_logits"
FEATURE_PREFIX = "tfcompress_teacher_feature/"
_FINGERPRINT = "tfcompress_fingerprint.json"


def is_cached(x) -> bool:
    """Whether a batch's inputs come from a cached-teacher dataset."""
    return isinstance(x, dict) and INPUTS in x


def split(x):
    """Splits a cached batch's inputs into `(inputs, teacher_logits_list, teacher_features)`."""
    features = {key[len(FEATURE_PREFIX) :]: value for key, value in x.items() if key.startswith(FEATURE_PREFIX)}
    return x[INPUTS], tf.unstack(x[LOGITS], axis=1), features


def build(teacher_forward, teachers, x, y, sample_weight, batch_size, shuffle, seed, path):
    """Runs the teachers once over the data and returns a shuffled, batched dataset of the results."""
    check_positive_integer("batch_size", batch_size)
    batches = _input_batches(x, y, sample_weight)
    if path is None:
        examples = _compute(tf.function(teacher_forward), batches)
    elif os.path.exists(path):
        examples = _load(path, _fingerprint(teachers, batches))
    else:
        examples = _compute(tf.function(teacher_forward), batches)
        _save(examples, path, _fingerprint(teachers, batches))
    count = int(examples.cardinality())
    if shuffle:
        examples = examples.shuffle(count, seed=seed, reshuffle_each_iteration=True)
    return examples.batch(batch_size).prefetch(tf.data.AUTOTUNE)


def _input_batches(x, y, sample_weight):
    if isinstance(x, tf.data.Dataset):
        if y is not None or sample_weight is not None:
            raise ValueError(
                "`y` and `sample_weight` must be None when `x` is a tf.data.Dataset: the dataset yields them."
            )
        _check_deterministic(x)
        return x
    x = np.asarray(x)
    if y is None:
        raise ValueError("cache_teacher needs labels: pass `y` with array inputs.")
    arrays = [x, np.asarray(y)] + ([] if sample_weight is None else [np.asarray(sample_weight, np.float32)])
    lengths = {len(array) for array in arrays}
    if len(lengths) != 1 or not len(x):
        raise ValueError(
            "`x`, `y` (and `sample_weight`) must be non-empty with one entry per example. "
            f"Received lengths {[len(array) for array in arrays]}."
        )
    return tf.data.Dataset.from_tensor_slices(tuple(arrays)).batch(256)


def _check_deterministic(dataset):
    first, second = (next(iter(dataset)) for _ in range(2))
    if not all(np.array_equal(a, b) for a, b in zip(tf.nest.flatten(first), tf.nest.flatten(second))):
        raise ValueError(
            "The dataset yields different data on two passes, so it shuffles or augments at random. "
            "A cached teacher's outputs belong to one fixed view of each example: with random "
            "augmentation the student would see other views than the ones the teacher was cached on. "
            "Pass the dataset before `.shuffle()` and random augmentation (cache_teacher shuffles the "
            "cached examples itself), or keep the teacher live (call fit on the plain data) to augment."
        )


def check_student_does_not_augment(student):
    """Raises ValueError if the student has random-augmentation layers, which a cached teacher cannot follow."""
    augmenting = [layer.name for layer in all_layers(student) if type(layer).__name__.startswith("Random")]
    if augmenting:
        raise ValueError(
            f"The student augments its inputs at random in training (layers {augmenting}), but a cached "
            "teacher's outputs were computed on the unaugmented inputs, so teacher and student would see "
            "different views. Move augmentation out of the student and keep the teacher live (call fit on "
            "the plain data), or remove those layers."
        )


def _compute(teacher_forward, batches):
    columns = {}
    for batch in batches:
        inputs, labels, weights = _unpacked(batch)
        if labels is None:
            raise ValueError("The dataset yields inputs only; cache_teacher needs (inputs, labels) batches.")
        logits, features = teacher_forward(inputs)
        row = {INPUTS: inputs, LOGITS: tf.stack(logits, axis=1), "labels": labels}
        row.update({FEATURE_PREFIX + name: value for name, value in features.items()})
        if weights is not None:
            row["sample_weight"] = weights
        for key, value in row.items():
            columns.setdefault(key, []).append(np.asarray(value))
    columns = {key: np.concatenate(parts) for key, parts in columns.items()}
    labels, weights = columns.pop("labels"), columns.pop("sample_weight", None)
    return tf.data.Dataset.from_tensor_slices((columns, labels) if weights is None else (columns, labels, weights))


def _unpacked(batch):
    """`(x, y, sample_weight)` of a dataset's element, as Keras reads one (either Keras)."""
    parts = tuple(batch) if isinstance(batch, (list, tuple)) else (batch,)
    return parts + (None,) * (3 - len(parts))


def _fingerprint(teachers, batches):
    digest = hashlib.sha256()
    for teacher in teachers:
        for weight in teacher.get_weights():
            digest.update(np.ascontiguousarray(weight).tobytes())
    teacher_digest = digest.hexdigest()
    for batch in batches:
        for part in tf.nest.flatten(batch):
            digest.update(np.ascontiguousarray(part).tobytes())
    return {"teachers": teacher_digest, "teachers_and_data": digest.hexdigest()}


def _save(examples, path, fingerprint):
    parent = os.path.dirname(os.path.abspath(path))
    os.makedirs(parent, exist_ok=True)
    staging = tempfile.mkdtemp(prefix=".tfcompress-cache-", dir=parent)
    try:
        examples.save(staging)
        with open(os.path.join(staging, _FINGERPRINT), "w") as file:
            json.dump(fingerprint, file)
        os.rename(staging, path)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def _load(path, fingerprint):
    try:
        with open(os.path.join(path, _FINGERPRINT)) as file:
            stored = json.load(file)
    except (OSError, ValueError) as error:
        raise ValueError(
            f"{path!r} exists but is not a teacher cache written by tfcompress ({error}). "
            "Pass a new path, or delete it to write the cache there."
        ) from None
    if stored != fingerprint:
        what = "teacher's weights" if stored.get("teachers") != fingerprint["teachers"] else "data"
        raise ValueError(
            f"The teacher cache at {path!r} was computed for other {what} than these, so its outputs "
            "would be wrong. Delete it, or pass another path, to cache again."
        )
    return tf.data.Dataset.load(path)
