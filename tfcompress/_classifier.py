"""Classifiers as every stage trains and scores them: logits or probabilities, one compile step, accuracy."""

import numpy as np

from tfcompress._keras import keras


def outputs_logits(model) -> bool:
    """Whether a classifier's output is logits (True) or softmax probabilities (False).

    Args:
      model: a Keras 2 model whose last layer makes its output.

    Returns:
      False when the last layer is a Softmax or has a softmax activation, else True.

    Example:
      >>> loss = keras.losses.SparseCategoricalCrossentropy(from_logits=outputs_logits(model))
    """
    last = model.layers[-1]
    activation = getattr(last, "activation", None)
    return not (isinstance(last, keras.layers.Softmax) or getattr(activation, "__name__", "") == "softmax")


def compile_classifier(model, learning_rate=1e-3):
    """Compiles a classifier the way every tfcompress stage trains one.

    Adam, sparse categorical cross-entropy (from logits unless the model ends in a
    softmax) and accuracy.

    Args:
      model: a Keras 2 classifier with one score per class.
      learning_rate: Adam's learning rate, or a Keras `LearningRateSchedule`.

    Returns:
      `model`, compiled.

    Example:
      >>> compile_classifier(model, 1e-3).fit(x_train, y_train, epochs=2)
    """
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=outputs_logits(model)),
        metrics=["accuracy"],
    )
    return model


def accuracy(model, x, y) -> float:
    """Top-1 accuracy of a Keras classifier on arrays.

    Args:
      model: a Keras 2 classifier (one score per class).
      x: inputs.
      y: integer labels, one per example.

    Returns:
      The share of examples whose highest score is their label.

    Example:
      >>> accuracy(model, x_test, y_test)
    """
    predictions = model.predict(x, batch_size=256, verbose=0)
    return float(np.mean(np.argmax(predictions, axis=-1) == np.asarray(y).reshape(-1)))
