"""Half the channels of MobileNetV3Small and EfficientNetB0: parameters, MACs and LiteRT latency, in one run.

keras.applications builds both with random weights (nothing can be downloaded here), at
96x96 with 10 classes; `tfc.prune.channels(model, 0.5)` removes half of every prunable
channel group by L1 norm (squeeze-excite gates coupled to their trunk, hard-swish and
Rescaling passed through). Each model is exported in float32 and in int8 (calibrated on
random images; latency does not depend on the weights' values) and timed at batch 1,
1 thread, XNNPACK, in alternating rounds, so that both files of a pair share the
machine's state. Latency is the median of the rounds' medians.

Usage: python benchmarks/prune_channels_applications.py [--rounds=5]
"""

import os
import pathlib
import sys
import warnings

import numpy as np
from absl import app, flags

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import _common  # noqa: E402

import tfcompress as tfc  # noqa: E402
from tfcompress import keras  # noqa: E402

flags.DEFINE_integer("rounds", 5, "Alternating timing rounds per pair of files.")
_SHAPE = (96, 96, 3)


def main(argv):
    del argv
    folder = pathlib.Path("channels_applications")
    folder.mkdir(exist_ok=True)
    images = np.random.default_rng(0).uniform(0, 255, (200,) + _SHAPE).astype(np.float32)
    print(f"CPU: {_common.cpu()}")
    print("| model | parameters | MACs | mode | µs, 1 thread | speed-up |")
    print("|---|---:|---:|---|---:|---:|")
    builders = {
        "MobileNetV3Small": keras.applications.MobileNetV3Small,
        "EfficientNetB0": keras.applications.EfficientNetB0,
    }
    for name, builder in builders.items():
        keras.utils.set_random_seed(0)
        model = builder(input_shape=_SHAPE, weights=None, classes=10)
        smaller = tfc.prune.channels(model, 0.5)
        costs = {"dense": tfc.prune.cost(model), "half": tfc.prune.cost(smaller)}
        for mode in ("float32", "int8"):
            paths = {}
            for label, candidate in (("dense", model), ("half", smaller)):
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    paths[label] = tfc.export.to_tflite(
                        candidate, folder / f"{name}_{label}_{mode}.tflite", mode=mode, overwrite=True,
                        representative_data=images if mode == "int8" else None,
                    ).path  # fmt: skip
            latency = _common.alternating_latencies(list(paths.values()), flags.FLAGS.rounds)
            for label in ("dense", "half"):
                title = name if label == "dense" else f"{name}, channels 50%"
                speedup = latency[paths["dense"]] / latency[paths[label]]
                print(f"| {title} | {costs[label]['parameters']:,} | {costs[label]['macs']:,} | {mode} | "
                      f"{1000 * latency[paths[label]]:,.0f} | {speedup:.2f}× |", flush=True)  # fmt: skip


if __name__ == "__main__":
    app.run(main)
