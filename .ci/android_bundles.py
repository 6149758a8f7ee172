"""CI, step 1 of the Android check: bundles an Android app would ship, and what LiteRT answers for them.

Writes into the folder given: the demo's bundle (a one-channel digits model, given an RGB
front by `android_bundle`), an RGB bundle (a small CNN on coloured digits), a binary one
(one logit: odd or even, turned into two scores inside the file) and a multi-label one
(three logits, turned into probabilities), each with a batch of uint8 RGB images and
LiteRT's scores for each. `.ci/mediapipe_check.py` then loads the bundles with
MediaPipe's ImageClassifier, in a virtual environment of its own (MediaPipe needs absl-py
>= 2; TF-MOT pins < 2).

Usage: python .ci/android_bundles.py FOLDER
"""

import json
import os
import sys

import numpy as np

import tfcompress as tfc
from tfcompress import keras

DIGITS = [str(digit) for digit in range(10)]


def _case(folder, name, tflite, pixels, labels, task=None):
    bundle = tfc.export.android_bundle(tflite, os.path.join(folder, name), labels=labels, task=task)
    scores = tfc.litert.LiteRTModel(bundle["model"]).predict(pixels.astype(np.float32) / 255.0)
    images, scores_path = os.path.join(folder, f"{name}_images.npy"), os.path.join(folder, f"{name}_scores.npy")
    np.save(images, pixels)
    np.save(scores_path, scores)
    task = json.load(open(bundle["json"]))["task"]
    return {"model": bundle["model"], "images": images, "scores": scores_path, "labels": labels, "task": task}


def _small_cnn(outputs):
    return keras.Sequential([
        keras.Input((32, 32, 3)),
        keras.layers.Conv2D(16, 3, activation="relu"), keras.layers.MaxPooling2D(),
        keras.layers.Conv2D(32, 3, activation="relu"), keras.layers.GlobalAveragePooling2D(),
        keras.layers.Dense(outputs),
    ])  # fmt: skip


def _coloured(images, rng):
    """Digits drawn in a random colour on a random background: RGB that a gray model could not read."""
    ink, paper = rng.uniform(0, 1, (2, len(images), 1, 1, 3))
    return images * ink + (1 - images) * paper


def main(folder):
    os.makedirs(folder, exist_ok=True)
    cases = []

    # The demo's int8 student: one gray channel, 8x8.
    report = tfc.demo.run(os.path.join(folder, "demo"), progress=print)
    (_, _), (x_test, _) = tfc.data.load_digits()
    gray = np.repeat(np.round(x_test * 255).astype(np.uint8), 3, axis=-1)
    cases.append(_case(folder, "demo_bundle", report["files"]["model"], gray, DIGITS))

    # An RGB classifier: coloured digits at 32x32.
    rng = np.random.default_rng(0)
    (x_train, y_train), (x_test, _) = tfc.data.load_digits()
    upsample = lambda x: x.repeat(4, axis=1).repeat(4, axis=2)  # noqa: E731
    train, test = _coloured(upsample(x_train), rng), _coloured(upsample(x_test), rng)
    pixels = np.round(test * 255).astype(np.uint8)
    tasks = {
        "rgb": (10, y_train, keras.losses.SparseCategoricalCrossentropy(from_logits=True), DIGITS),
        # One logit, as TensorFlow's transfer-learning tutorial's head: is the digit odd?
        "binary": (1, (y_train % 2).astype(np.float32), keras.losses.BinaryCrossentropy(from_logits=True),
                   ["even", "odd"]),
        # Three independent yes/nos, logits.
        "multilabel": (3, np.stack([y_train % 2, y_train >= 5, np.isin(y_train, (0, 6, 8, 9))], -1).astype(np.float32),
                       keras.losses.BinaryCrossentropy(from_logits=True), ["odd", "five or more", "has a loop"]),
    }  # fmt: skip
    for name, (outputs, labels, loss, names) in tasks.items():
        keras.utils.set_random_seed(0)
        model = _small_cnn(outputs)
        model.compile("adam", loss)
        model.fit(train, labels, epochs=8, batch_size=32, verbose=0)
        path = tfc.export.to_tflite(model, os.path.join(folder, f"{name}.tflite"), representative_data=train[:300]).path
        # Logits of several labels read as a multi-class classifier's unless the task is said.
        task = "multilabel" if name == "multilabel" else None
        cases.append(_case(folder, f"{name}_bundle", path, pixels, names, task))

    with open(os.path.join(folder, "cases.json"), "w") as file:
        json.dump(cases, file, indent=2)
    print(f"Wrote {len(cases)} bundles and their LiteRT answers to {folder}")


if __name__ == "__main__":
    main(sys.argv[1])
