"""Half the channels of MobileNetV3Small and EfficientNetB0: parameters, MACs and LiteRT latency, in one run.

keras.applications builds both with random weights (nothing can be downloaded here), at
96x96 with 10 classes; `tfc.prune.channels(model, 0.5)` removes half of every prunable
channel group by L1 norm (squeeze-excite gates coupled to their trunk, hard-swish and
Rescaling passed through). Each model is exported in float32 and in int8 (calibrated on
random images; latency does not depend on the weights' values) and timed at batch 1,
1 thread, XNNPACK, side by side (`tfc.litert.time_side_by_side`: interleaved rounds, so that both
files of a pair share the machine's state). Latency is the median of the rounds' medians;
the speed-up has its 95% bootstrap interval.

Usage: python benchmarks/prune_channels_applications.py [--rounds=200]
"""

import os
import pathlib
import sys
import warnings

import numpy as np
from absl import flags

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import _common  # noqa: E402

import tfcompress as tfc  # noqa: E402
from tfcompress import keras  # noqa: E402

flags.DEFINE_integer("rounds", 200, "Interleaved timing rounds per pair of files.")
_SHAPE = (96, 96, 3)


def main(argv):
    del argv
    folder = pathlib.Path("channels_applications")
    folder.mkdir(exist_ok=True)
    images = np.random.default_rng(0).uniform(0, 255, (200,) + _SHAPE).astype(np.float32)
    print(f"CPU: {tfc.litert.cpu()}; dense and half timed side by side ({flags.FLAGS.rounds} interleaved rounds)")
    print("| model | parameters | MACs | mode | µs, 1 thread | speed-up (95% interval) |")
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
            rows = []
            for label, candidate in (("dense", model), ("half", smaller)):
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    path = tfc.export.to_tflite(
                        candidate, folder / f"{name}_{label}_{mode}.tflite", mode=mode, overwrite=True,
                        representative_data=images if mode == "int8" else None,
                    ).path  # fmt: skip
                rows.append({"model": label, "path": path})
            _common.side_by_side(rows, rounds=flags.FLAGS.rounds)
            for row in rows:
                label = row["model"]
                title = name if label == "dense" else f"{name}, channels 50%"
                print(f"| {title} | {costs[label]['parameters']:,} | {costs[label]['macs']:,} | {mode} | "
                      f"{row['us_1']:,.0f} | {row['x_1']} |", flush=True)  # fmt: skip


if __name__ == "__main__":
    _common.run(main)
