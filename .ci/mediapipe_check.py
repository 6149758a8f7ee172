"""CI, step 2 of the Android check: MediaPipe's ImageClassifier loads each bundle and answers as LiteRT did.

Runs in a virtual environment with MediaPipe and numpy only (no tfcompress). Reads the
`cases.json` that `.ci/android_bundles.py` wrote; labels come from each bundle's metadata.
Exits 1 if a bundle does not load or agrees with LiteRT on fewer than 99% of its images.

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


def main(folder):
    with open(os.path.join(folder, "cases.json")) as file:
        cases = json.load(file)
    failed = False
    for case in cases:
        options = vision.ImageClassifierOptions(
            base_options=tasks.BaseOptions(model_asset_path=case["model"]), max_results=1
        )
        with vision.ImageClassifier.create_from_options(options) as classifier:
            answers = [
                classifier.classify(mp.Image(image_format=mp.ImageFormat.SRGB, data=np.ascontiguousarray(image)))
                .classifications[0]
                .categories[0]
                .category_name
                for image in np.load(case["images"])
            ]
        agreement = float(np.mean(np.array(answers) == np.array(case["top1"])))
        print(f"MediaPipe {mp.__version__} on {os.path.basename(case['model'])}: {len(answers)} images, "
              f"top-1 agreement with LiteRT {agreement:.1%}")  # fmt: skip
        failed |= agreement < _MIN_AGREEMENT
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main(sys.argv[1])
