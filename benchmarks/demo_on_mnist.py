"""The demo's recipe (distill -> prune 80% -> int8 QAT -> export -> verify) on the full MNIST.

Reads ../shared/data/mnist (or --mnist_dir) when it is there, else falls back to the
built-in digits, and prints the same table as `tfcompress demo`, measured in one run:
parameters, non-zero parameters, accuracy, .tflite bytes, gzip bytes, LiteRT accuracy
and latency per stage, with the int8-vs-float32 size ratio, the gzip reduction against
the float32 teacher, and top-1 agreement of the int8 file with its Keras model.

Run: python benchmarks/demo_on_mnist.py [--output_dir=DIR] [--epochs=N]
"""

import os
import sys
import tempfile

from absl import flags, logging

from tfcompress import demo

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _common  # noqa: E402

flags.DEFINE_string("output_dir", None, "Where to write the files; a new temporary folder by default.")
flags.DEFINE_integer("epochs", 3, "Epochs of each stage (pruning: this many to reach 80%, then 1 more).")
FLAGS = flags.FLAGS


def main(argv):
    del argv
    # The converter logs every temporary SavedModel at INFO; the table says enough.
    logging.set_verbosity(logging.WARNING)
    epochs = FLAGS.epochs
    overrides = [
        f"stages.distill.teacher_epochs={epochs}",
        f"stages.distill.epochs={epochs}",
        f"stages.prune.epochs={epochs}",
        "stages.prune.finetune_epochs=1",
        "stages.qat.epochs=1",
        "batch_size=64",
    ]
    if os.path.isdir(FLAGS.mnist_dir):
        overrides.append(f"data={{source: mnist, path: '{FLAGS.mnist_dir}'}}")
        print(f"data: MNIST ({FLAGS.mnist_dir})", flush=True)
    else:
        print("data: built-in digits (MNIST folder not found)", flush=True)
    output_dir = FLAGS.output_dir or tempfile.mkdtemp(prefix="tfcompress_mnist_")
    report = demo.run(output_dir, overrides=overrides, progress=lambda line: print(line, flush=True))
    print()
    print(demo.render(report))
    return 0


if __name__ == "__main__":
    _common.run(main)
