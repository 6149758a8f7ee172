"""CI, step 1 of the Android check: bundles an Android app would ship, and what LiteRT answers for them.

Writes into the folder given: the demo's bundle (a one-channel digits model, given an RGB
front by `android_bundle`) and an RGB bundle (a small CNN on coloured digits), each with
a batch of uint8 RGB images and LiteRT's top-1 label for each. `.ci/mediapipe_check.py`
then loads the bundles with MediaPipe's ImageClassifier, in a virtual environment of its
own (MediaPipe needs absl-py >= 2; TF-MOT pins < 2).

Usage: python .ci/android_bundles.py FOLDER
"""

import json
import os
import sys

import numpy as np

import tfcompress as tfc
from tfcompress import keras

DIGITS = [str(digit) for digit in range(10)]


def _case(folder, name, tflite, pixels, labels):
    bundle = tfc.export.android_bundle(tflite, os.path.join(folder, name), labels=labels)
    scores = tfc.export.LiteRTModel(bundle["model"]).predict(pixels.astype(np.float32) / 255.0)
    images = os.path.join(folder, f"{name}_images.npy")
    np.save(images, pixels)
    return {"model": bundle["model"], "images": images, "top1": [labels[i] for i in np.argmax(scores, -1)]}


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
    keras.utils.set_random_seed(0)
    model = keras.Sequential([
        keras.Input((32, 32, 3)),
        keras.layers.Conv2D(16, 3, activation="relu"), keras.layers.MaxPooling2D(),
        keras.layers.Conv2D(32, 3, activation="relu"), keras.layers.GlobalAveragePooling2D(),
        keras.layers.Dense(10),
    ])  # fmt: skip
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
    model.fit(train, y_train, epochs=8, batch_size=32, verbose=0)
    path = tfc.export.to_tflite(model, os.path.join(folder, "rgb.tflite"), representative_data=train[:300]).path
    cases.append(_case(folder, "rgb_bundle", path, np.round(test * 255).astype(np.uint8), DIGITS))

    with open(os.path.join(folder, "cases.json"), "w") as file:
        json.dump(cases, file, indent=2)
    print(f"Wrote {len(cases)} bundles and their LiteRT answers to {folder}")


if __name__ == "__main__":
    main(sys.argv[1])
