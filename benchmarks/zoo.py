"""Every zoo model (tests/zoo.py) through every entry point, with what each measured: README's zoo table.

For each model: magnitude pruning to 50% (layers pruned, layers left dense), QAT (layers
left in float) then one training step and the int8 export, compared with the QAT model in
LiteRT; post-training int8 export verified against the float model; channel pruning at
50% (parameters before and after). Agreement is top-1 on 200 held-out inputs (digits for
the image classifiers), and on the decided ones (`tests/zoo.decided`): where the top score
beats the runner-up by more than 15% of the output's range and stays on top when the
inputs move by less than half an int8 step. A cell is ✓ with its figures, or the error in
full.

Usage: python benchmarks/zoo.py [--models=lstm,gru]   (writes its .tflite files to ./zoo_benchmark)
"""

import pathlib
import sys
import time
import warnings

from absl import app, flags

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))  # tests/zoo.py

import tfcompress as tfc  # noqa: E402
from tests import zoo  # noqa: E402
from tfcompress import keras  # noqa: E402

flags.DEFINE_list("models", list(zoo.BUILDERS), "Zoo models to run.")


def _as_list(outputs):
    return outputs if isinstance(outputs, list) else [outputs]


def _agreement(tflite_output, model, x):
    keras_output = _as_list(model.predict(x, verbose=0))[0]
    return zoo.top1_agreement(tflite_output, keras_output, zoo.decided(model, x)[0])


def _first_class_output(model, outputs):
    names = [name.removeprefix("quant_") for name in model.output_names]
    outputs = [outputs[name] for name in names] if isinstance(outputs, dict) else [outputs]
    return outputs[0]


def _cell(function):
    try:
        return "✓ " + function()
    except Exception as error:  # the table shows every failure as it reached the user
        return f"✗ {type(error).__name__}: {str(error).splitlines()[0][:160]}"


def _row(name, folder):
    model = zoo.build(name, trained=True)
    if name in zoo.IMAGE_CLASSIFIERS:
        x, calibration = zoo.digit_images(name, 200, offset=1200)[0], zoo.digit_images(name, 128, offset=1400)[0]
    else:
        x, calibration = zoo.inputs_for(name, model, 200, seed=1), zoo.inputs_for(name, model, 128, seed=2)
    by_name = dict(zip(model.input_names, x if isinstance(x, list) else [x]))

    def magnitude():
        pruned = tfc.prune.magnitude(model, 0.5, end_step=1, schedule="constant")
        wrapped = sum(type(layer).__name__ == "PruneLowMagnitude" for layer in pruned.layers)
        return f"{wrapped} pruned, {len(pruned.dense_layers)} dense"

    def qat():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            quantized = tfc.quantize.qat(model, representative_data=calibration)
        targets = _as_list(model.predict(x, verbose=0))
        quantized.compile(optimizer=keras.optimizers.Adam(1e-4), loss="mse")
        quantized.fit(x, targets if len(targets) > 1 else targets[0], batch_size=200, epochs=1, verbose=0)
        path = tfc.export.to_tflite(quantized, folder / f"{name}_qat.tflite", representative_data=calibration,
                                    overwrite=True).path  # fmt: skip
        every, decided, count = _agreement(
            _first_class_output(quantized, tfc.export.LiteRTModel(path).predict(by_name)), quantized, x
        )
        return f"{len(quantized.float_layers)} float; int8 agrees {every:.1%} ({decided:.1%} of {count} decided)"

    def export():
        result = tfc.export.to_tflite(model, folder / f"{name}.tflite", representative_data=calibration,
                                      overwrite=True)  # fmt: skip
        check = tfc.export.verify(result.path, model, x)
        every, decided, count = _agreement(
            _first_class_output(model, tfc.export.LiteRTModel(result.path).predict(by_name)), model, x
        )
        first = check["outputs"][model.output_names[0]]
        return (f"{result.bytes / 1024:,.0f} KB, {result.input_dtype} in; agrees {every:.1%} ({decided:.1%} of "
                f"{count} decided), "
                f"max error {first['max_abs_error']:.3g}")  # fmt: skip

    def channels():
        smaller = tfc.prune.channels(model, 0.5)
        return f"{model.count_params():,} → {smaller.count_params():,} parameters"

    start = time.perf_counter()
    cells = [_cell(magnitude), _cell(qat), _cell(export), _cell(channels)]
    return [name] + cells + [f"{time.perf_counter() - start:.0f}"]


def main(argv):
    del argv
    folder = pathlib.Path("zoo_benchmark")
    folder.mkdir(exist_ok=True)
    header = ["model", "prune.magnitude", "quantize.qat → int8", "export.to_tflite int8 + verify", "prune.channels 50%",
              "s"]  # fmt: skip
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for name in flags.FLAGS.models:
        print("| " + " | ".join(_row(name, folder)) + " |", flush=True)


if __name__ == "__main__":
    app.run(main)
