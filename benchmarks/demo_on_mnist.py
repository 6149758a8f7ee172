"""The demo's path (distill -> prune 80% -> int8 QAT -> export -> verify) on the full MNIST.

Reads ../shared/data/mnist (or --mnist_dir) when it is there, else falls back to the
built-in digits, and prints the same table as `tfcompress demo`, measured in one run:
parameters, non-zero parameters, .tflite bytes, gzip bytes and LiteRT accuracy per
stage, with the int8-vs-float32 size ratio, the gzip reduction against the float32
teacher, and top-1 agreement of the int8 file with its Keras model on the test set.

Run: python benchmarks/demo_on_mnist.py [--output_dir=DIR] [--epochs=N]
"""

import os
import pathlib
import sys
import tempfile

from absl import app, flags, logging

import tfcompress as tfc
from tfcompress import demo

_DEFAULT_MNIST = pathlib.Path(__file__).resolve().parents[2] / "shared" / "data" / "mnist"

flags.DEFINE_string("mnist_dir", str(_DEFAULT_MNIST), "Folder with MNIST's four IDX files.")
flags.DEFINE_string("output_dir", None, "Where to write the files; a new temporary folder by default.")
flags.DEFINE_integer("epochs", 3, "Epochs of each stage (pruning: this many to reach 80%, then 1 more).")
FLAGS = flags.FLAGS


def main(argv):
    del argv
    # The converter logs every temporary SavedModel at INFO; the table says enough.
    logging.set_verbosity(logging.WARNING)
    if os.path.isdir(FLAGS.mnist_dir):
        dataset, name = tfc.data.load_mnist(FLAGS.mnist_dir), f"MNIST ({FLAGS.mnist_dir})"
    else:
        dataset, name = tfc.data.load_digits(), "built-in digits (MNIST folder not found)"
    epochs = FLAGS.epochs
    settings = demo.DemoSettings(
        teacher_epochs=epochs,
        distill_epochs=epochs,
        prune_epochs=epochs,
        prune_finetune_epochs=1,
        qat_epochs=1,
        batch_size=64,
    )
    output_dir = FLAGS.output_dir or tempfile.mkdtemp(prefix="tfcompress_mnist_")
    print(f"data: {name}; {len(dataset[0][0])} training and {len(dataset[1][0])} test images", flush=True)
    report = demo.run(output_dir, settings, dataset=dataset, progress=lambda line: print(line, flush=True))
    print()
    print(demo.render(report))
    return 0


if __name__ == "__main__":
    sys.exit(app.run(main))
