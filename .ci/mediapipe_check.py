"""CI, step 2 of the Android check: MediaPipe's ImageClassifier loads each bundle and answers as LiteRT did.

Runs in a virtual environment with MediaPipe and numpy only (no tfcompress). Reads the
`cases.json` that `.ci/android_bundles.py` wrote; labels come from each bundle's metadata.
Exits 1 if a bundle does not load, agrees with LiteRT's top label on fewer than 99% of its
images, or (binary and multi-label bundles) does not return every label with LiteRT's score.

Usage: python .ci/mediapipe_check.py FOLDER
"""

import json
import os
import sys

import mediapipe as mp
import numpy as np
from mediapipe.tasks import python as tasks
from mediapipe.tasks.python import vision

_MIN_AGREEMENT = 0.99
# Two int8 steps of a probability (1/256 each): MediaPipe and LiteRT run the same int8 file.
_SCORE_TOLERANCE = 2 / 256


def main(folder):
    with open(os.path.join(folder, "cases.json")) as file:
        cases = json.load(file)
    failed = False
    for case in cases:
        options = vision.ImageClassifierOptions(base_options=tasks.BaseOptions(model_asset_path=case["model"]))
        with vision.ImageClassifier.create_from_options(options) as classifier:
            answers = [
                classifier.classify(mp.Image(image_format=mp.ImageFormat.SRGB, data=np.ascontiguousarray(image)))
                .classifications[0]
                .categories
                for image in np.load(case["images"])
            ]
        scores, labels = np.load(case["scores"]), case["labels"]
        top1 = np.array([labels[index] for index in np.argmax(scores, -1)])
        agreement = float(np.mean(np.array([categories[0].category_name for categories in answers]) == top1))
        # Every label with its score, as LiteRT gave it, in the bundle's label order.
        returned = np.array([[{c.category_name: c.score for c in categories}.get(label, np.nan) for label in labels]
                             for categories in answers])  # fmt: skip
        error = float(np.nanmax(np.abs(returned - scores))) if not np.isnan(returned).all() else float("inf")
        every_label = not np.isnan(returned).any()
        print(f"MediaPipe {mp.__version__} on {os.path.basename(case['model'])} ({case['task']}): {len(answers)} "
              f"images, top-1 agreement with LiteRT {agreement:.1%}; every label returned: {every_label}; "
              f"largest score difference {error:.4f}")  # fmt: skip
        failed |= agreement < _MIN_AGREEMENT
        if case["task"] != "multiclass":
            failed |= not every_label or error > _SCORE_TOLERANCE
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main(sys.argv[1])
