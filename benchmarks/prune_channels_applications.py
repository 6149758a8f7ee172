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

import pathlib
import platform
import subprocess
import warnings

import numpy as np
from absl import app, flags

import tfcompress as tfc
from tfcompress import keras

flags.DEFINE_integer("rounds", 5, "Alternating timing rounds per pair of files.")
_SHAPE = (96, 96, 3)


def _cpu() -> str:
    try:
        lines = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=10).stdout.splitlines()
        fields = dict(line.split(":", 1) for line in lines if ":" in line)
        flags_ = fields.get("Flags", "").split()
        features = [name for name in ("avx2", "avx512f", "avx512_vnni", "avx_vnni") if name in flags_]
        return f"{fields.get('Model name', '').strip()} ({', '.join(features)})"
    except (OSError, subprocess.SubprocessError):
        return platform.processor()


def _latencies(paths, rounds):
    """Median over rounds of each file's median latency (ms), the files timed in turn every round."""
    medians = {path: [] for path in paths}
    for _ in range(rounds):
        for path in paths:
            (timing,) = tfc.export.benchmark(path, threads=1, xnnpack=True, runs=100, max_seconds=5)["latency"]
            medians[path].append(timing["median_ms"])
    return {path: float(np.median(values)) for path, values in medians.items()}


def main(argv):
    del argv
    folder = pathlib.Path("channels_applications")
    folder.mkdir(exist_ok=True)
    images = np.random.default_rng(0).uniform(0, 255, (200,) + _SHAPE).astype(np.float32)
    print(f"CPU: {_cpu()}")
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
            latency = _latencies(list(paths.values()), flags.FLAGS.rounds)
            for label in ("dense", "half"):
                title = name if label == "dense" else f"{name}, channels 50%"
                speedup = latency[paths["dense"]] / latency[paths[label]]
                print(f"| {title} | {costs[label]['parameters']:,} | {costs[label]['macs']:,} | {mode} | "
                      f"{1000 * latency[paths[label]]:,.0f} | {speedup:.2f}× |", flush=True)  # fmt: skip


if __name__ == "__main__":
    app.run(main)
