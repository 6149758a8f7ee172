"""How far apart identical work times: three same-shape models, one at a time vs side by side.

The three files are the conv32-conv64-dense128 MNIST CNN (float32) built with three weight
seeds: the same ops on the same shapes, so any gap between them is measurement noise. Each
repeat times them twice, in the same order: one file after another with
`tfc.litert.benchmark` (what a latency table made row by row does), then together with
`tfc.litert.time_side_by_side` (interleaved rounds). It prints each way's gap between the slowest
and the fastest of the three, per repeat and overall. Each repeat also times six
interpreters of the first file side by side, one each (`interpreters=1`): their gap is an
interpreter's own speed, which `time_side_by_side`'s several interpreters per file average over.

Target: `time_side_by_side` keeps identical files within 5% of each other.

Usage: python benchmarks/latency_noise.py [--repeats=5] [--rounds=200]
"""

import os
import sys
import tempfile

from absl import flags

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import _common  # noqa: E402

import tfcompress as tfc  # noqa: E402
from tfcompress import keras  # noqa: E402
from tfcompress.report import format_table  # noqa: E402

flags.DEFINE_integer("repeats", 5, "How many times to time the three files each way.")
flags.DEFINE_integer("rounds", 200, "time_side_by_side: interleaved rounds.")
FLAGS = flags.FLAGS


def main(argv):
    del argv
    folder = tempfile.mkdtemp(prefix="tfcompress_noise_")
    paths = {}
    for seed in range(3):
        keras.utils.set_random_seed(seed)
        model = _common.mnist_cnn((28, 28, 1))
        paths[f"seed {seed}"] = tfc.export.to_tflite(model, os.path.join(folder, f"seed{seed}.tflite"),
                                                     mode="float32").path  # fmt: skip
    print(f"CPU: {tfc.litert.cpu()}; LiteRT, batch 1, 1 thread, XNNPACK; three same-shape float32 CNNs")
    rows = []
    for repeat in range(FLAGS.repeats):
        alone = {
            label: tfc.litert.benchmark(path, threads=1, xnnpack=True, runs=100)["latency"][0]["median_ms"]
            for label, path in paths.items()
        }
        together = tfc.litert.time_side_by_side(paths, rounds=FLAGS.rounds)
        side = {row["label"]: row["median_ms"] for row in together.files}
        copies = {f"interpreter {index}": paths["seed 0"] for index in range(6)}
        apart = tfc.litert.time_side_by_side(copies, rounds=FLAGS.rounds, interpreters=1)
        one_file = [row["median_ms"] for row in apart.files]
        rows.append(
            {
                "repeat": str(repeat + 1),
                "alone_us": " / ".join(f"{1000 * alone[label]:.1f}" for label in paths),
                "alone_gap": _gap(alone.values()),
                "compare_us": " / ".join(f"{1000 * side[label]:.1f}" for label in paths),
                "compare_gap": _gap(side.values()),
                "verdicts": ", ".join(row["verdict"] for row in together.files[1:]),
                "one_file_us": " / ".join(f"{1000 * value:.1f}" for value in one_file),
                "one_file_gap": _gap(one_file),
            }
        )
    shown = [{key: f"{value:.1%}" if key.endswith("_gap") else value for key, value in row.items()} for row in rows]
    print(format_table(shown, [
        ("repeat", "repeat"), ("alone_us", "one at a time, us"), ("alone_gap", "gap"),
        ("compare_us", "side by side, us"), ("compare_gap", "gap"), ("verdicts", "seeds 1, 2 vs seed 0"),
        ("one_file_us", "six interpreters of seed 0, us"), ("one_file_gap", "gap"),
    ]))  # fmt: skip
    worst = {key: max(row[key] for row in rows) for key in ("alone_gap", "compare_gap", "one_file_gap")}
    print(f"largest gap between identical files: one at a time {worst['alone_gap']:.1%}, side by side "
          f"{worst['compare_gap']:.1%} (target <= 5%: {'met' if worst['compare_gap'] <= 0.05 else 'NOT met'}); "
          f"between interpreters of one file {worst['one_file_gap']:.1%}")  # fmt: skip


def _gap(latencies) -> float:
    """How much slower the slowest of identical work ran than the fastest, as a share."""
    latencies = list(latencies)
    return max(latencies) / min(latencies) - 1


if __name__ == "__main__":
    _common.run(main)
