"""Integer-only int8 beyond min-max: each range and rounding method against the converter and the LiteRT quantizer.

For each model, post-training files from the same 500 calibration examples, measured in
LiteRT on held-out examples: the raw TFLite converter (min-max, what a tutorial writes);
the LiteRT quantizer's `static_wi8_ai8` recipe with its min-max, MSE and OCTAV algorithms
and its `static_wi8_ai16` (int16 activations); and tfcompress's `to_tflite` with each
`calibration` method, MSE weight ranges (`weight_calibration`), AdaRound rounding, int16
activations in the layer `layer_errors` ranks noisiest (and the layers reading it), int4
weights in the largest Dense/Conv kernel (both through the LiteRT quantizer, float32 I/O),
and int16x8. Columns: accuracy and its drop
from the Keras model (labelled models), the share of decisions alike with the Keras
model, file bytes, whether every op computes in integers, whether every computing op
runs on XNNPACK, and 1-thread latency against tfcompress's min-max file, timed side by
side (median ratio, 95% interval).

Models: the benchmarks' MNIST CNN (../shared/data/mnist, else the built-in digits); the
same CNN with four hidden Dense units 100x larger and read 100x weaker (the same float
function); the same with a BatchNormalization after the hidden ReLU undoing them (which
cross-layer equalization cannot pass); the built-in ResNet (three residual blocks, BatchNorm)
on MNIST; the zoo's MobileNetV2, MobileNetV3-Small and EfficientNetB0, trained briefly on
digits (64x64 RGB; tests/zoo.py); and the zoo's text (embedding) and keyword-spotting audio
(Conv1D) models, random weights and random inputs, which have no labels: agreement only.
(ResNet50 at 64x64 is left out: its int16 files take minutes per hundred examples on two
cores.)

Targets: on the outlier model an integer-only file within 1 point of float; on every
labelled classifier the best tfcompress integer-only file within 0.5 points of float, or
at least as close as the best anchor; tfcompress's min-max file never below the raw
converter's agreement.

Run: python benchmarks/integer_quantization.py [--models=mnist_cnn,outliers] [--write]
"""

import contextlib
import io
import os
import pathlib
import sys
import tempfile
import warnings

import numpy as np
from absl import flags, logging

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))  # tests/zoo.py
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))

import _common  # noqa: E402

import tfcompress as tfc  # noqa: E402
from tests import zoo  # noqa: E402
from tfcompress import _tasks, keras  # noqa: E402
from tfcompress._keras import tf  # noqa: E402
from tfcompress.export.layer_precision import takes_int4  # noqa: E402

MODELS = ("mnist_cnn", "outliers", "outliers_behind_batchnorm", "resnet", "mobilenet_v2", "mobilenet_v3_small",
          "efficientnet_b0", "text_embedding", "kws_conv1d")  # fmt: skip
_MNIST_MODELS = MODELS[:4]
flags.DEFINE_list("models", list(MODELS), "Models to measure.")
flags.DEFINE_integer("epochs", 2, "Training epochs of the MNIST CNN.")
FLAGS = flags.FLAGS

_CALIBRATION = 500
_HELD_OUT = 2000  # MNIST test images measured; the zoo's image models have the 773 digits they did not train on
_BASELINE = "tfcompress min-max"


def _mnist_models(name):
    """`(model, x_cal, (x, y))` for the MNIST CNN, its two outlier variants (the same float function), the ResNet."""
    ((x_train, y_train), (x_test, y_test)), _ = _common.load_data()
    if name == "resnet":
        keras.utils.set_random_seed(0)
        model = _common.compile_classifier(tfc.models.builtin("builtin:resnet", x_train.shape[1:]), 1e-3)
        model.fit(x_train, y_train, batch_size=128, epochs=FLAGS.epochs, verbose=0)
        return model, x_train[:_CALIBRATION], (x_test[:_HELD_OUT], y_test[:_HELD_OUT])
    if not hasattr(_mnist_models, "trained"):
        keras.utils.set_random_seed(0)
        model = _common.compile_classifier(_common.mnist_cnn(x_train.shape[1:]), 1e-3)
        model.fit(x_train, y_train, batch_size=128, epochs=FLAGS.epochs, verbose=0)
        _mnist_models.trained = model
    model = _mnist_models.trained
    if name == "outliers":
        model = _with_outliers(model)
    elif name == "outliers_behind_batchnorm":
        model = _outliers_behind_batchnorm(model)
    return model, x_train[:_CALIBRATION], (x_test[:_HELD_OUT], y_test[:_HELD_OUT])


def _with_outliers(model, units=4, factor=100.0):
    """Four hidden Dense units `factor` times larger, read `factor` times weaker: the same function."""
    copy = keras.models.clone_model(model)
    copy.set_weights(model.get_weights())
    hidden, logits = [layer for layer in copy.layers if isinstance(layer, keras.layers.Dense)]
    kernel, bias = hidden.get_weights()
    kernel[:, :units], bias[:units] = kernel[:, :units] * factor, bias[:units] * factor
    hidden.set_weights([kernel, bias])
    weights = logits.get_weights()
    weights[0][:units] /= factor
    logits.set_weights(weights)
    return copy


def _outliers_behind_batchnorm(model, units=4, factor=100.0):
    """The CNN with a BatchNormalization after the hidden ReLU that divides four 100x units back."""
    inputs = keras.Input(model.input_shape[1:])
    x = inputs
    for layer in model.layers[:-1]:
        x = layer.__class__.from_config(layer.get_config())(x)
    x = keras.layers.BatchNormalization(epsilon=1e-3, name="after_relu")(x)
    copy = keras.Model(inputs, keras.layers.Dense(10, name="logits")(x), name="outliers_behind_batchnorm")
    for source, target in zip(model.layers[:-1], copy.layers[1:]):
        target.set_weights(source.get_weights())
    copy.get_layer("logits").set_weights(model.layers[-1].get_weights())
    hidden = copy.layers[-3]
    kernel, bias = hidden.get_weights()
    kernel[:, :units], bias[:units] = kernel[:, :units] * factor, bias[:units] * factor
    hidden.set_weights([kernel, bias])
    scale = np.ones(len(bias))
    scale[:units] = factor
    copy.get_layer("after_relu").set_weights([np.ones(len(bias)), np.zeros(len(bias)), np.zeros(len(bias)),
                                              scale**2 - 1e-3])  # fmt: skip
    return copy


def _zoo_model(name):
    """`(model, x_cal, (x, y))`: images trained on digits with their 773 held-out digits; else random inputs."""
    if name in zoo.IMAGE_CLASSIFIERS:
        model = zoo.build(name, trained=True)
        x_cal, _ = zoo.digit_images(name, _CALIBRATION)
        x, y = zoo.digit_images(name, 1797 - 1024, offset=1024)
        return model, x_cal, (x, y % model.output_shape[-1])
    model = zoo.build(name)
    data = zoo.inputs_for(name, model, _CALIBRATION + 500, seed=3)
    return model, data[:_CALIBRATION], (data[_CALIBRATION:], None)


def _raw_converter(model, x_cal):
    """What the TFLite guide's full-integer recipe writes."""
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    examples = x_cal if np.issubdtype(x_cal.dtype, np.integer) else x_cal.astype(np.float32)  # token ids stay ints
    converter.representative_dataset = lambda: ([examples[i : i + 1]] for i in range(len(examples)))
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    return converter.convert()


def _litert_quantizer(float_content, recipe_name, algorithm, x_cal):
    """The LiteRT quantizer's static recipe on the float32 file, calibrated on the same examples."""
    from ai_edge_litert.interpreter import Interpreter
    from litert_quantizer import quantizer, recipe
    from litert_quantizer.algorithm_manager import AlgorithmName

    engine = quantizer.Quantizer(float_content)
    engine.load_quantization_recipe(getattr(recipe, recipe_name)(algorithm_key=AlgorithmName[algorithm]))
    interpreter = Interpreter(model_content=float_content)
    signature = next(iter(interpreter.get_signature_list()))
    name = next(iter(interpreter.get_signature_runner(signature).get_input_details()))
    data = [{name: x_cal[i : i + 1]} for i in range(len(x_cal))]
    with contextlib.redirect_stderr(io.StringIO()):  # its progress bar
        calibration = engine.calibrate({signature: data})
        result = engine.quantize(calibration, enable_progress_bar=False, enable_progress_report=False)
    return bytes(result.quantized_model)


def _files(model, x_cal, folder):
    """`{label: path or error}`: every file of the table, written to `folder`."""
    files = {}

    def write(label, make):
        path = os.path.join(folder, label.replace(" ", "_").replace(",", "").replace("/", "_") + ".tflite")
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                content = make(path)
            if content is not None:
                with open(path, "wb") as file:
                    file.write(content)
            files[label] = path
        except Exception as error:  # the table shows what failed, as it reached the user
            files[label] = f"{type(error).__name__}: {str(error).splitlines()[0][:120]}"

    def tfcompress(**options):
        return lambda path: tfc.export.to_tflite(model, path, representative_data=x_cal, io_dtype="float32",
                                                 overwrite=True, **options) and None  # fmt: skip

    write(_BASELINE, tfcompress())
    write("converter min-max", lambda path: _raw_converter(model, x_cal))
    float_path = os.path.join(folder, "float32.tflite")
    tfc.export.to_tflite(model, float_path, mode="float32", overwrite=True)
    float_content = open(float_path, "rb").read()
    for label, recipe_name, algorithm in (
        ("LiteRT quantizer wi8/ai8 min-max", "static_wi8_ai8", "MIN_MAX_UNIFORM_QUANT"),
        ("LiteRT quantizer wi8/ai8 MSE", "static_wi8_ai8", "MSE"),
        ("LiteRT quantizer wi8/ai8 OCTAV", "static_wi8_ai8", "OCTAV"),
        ("LiteRT quantizer wi8/ai16", "static_wi8_ai16", "MIN_MAX_UNIFORM_QUANT"),
    ):
        write(label, lambda path, r=recipe_name, a=algorithm: _litert_quantizer(float_content, r, a, x_cal))
    for method in ("percentile", "mse", "kl"):
        write(f"tfcompress {method}", tfcompress(calibration=method))
    write("tfcompress mse weights", tfcompress(weight_calibration="mse"))
    write("tfcompress mse, mse weights", tfcompress(calibration="mse", weight_calibration="mse"))
    write("tfcompress AdaRound, min-max", tfcompress(rounding="adaround"))
    write("tfcompress AdaRound, kl", tfcompress(rounding="adaround", calibration="kl"))
    noisiest = tfc.export.layer_errors(model, x_cal)["worst"][0]
    write("tfcompress int16 in the noisiest layer", tfcompress(int16_layers=[noisiest]))
    kernels = {layer.name: layer.kernel.shape.num_elements() for layer in model.layers if takes_int4(layer)}
    write("tfcompress int4 weights in the largest layer", tfcompress(int4_layers=[max(kernels, key=kernels.get)]))
    write("tfcompress int16x8", lambda path: tfc.export.to_tflite(model, path, mode="int16x8",
                                                                  representative_data=x_cal, overwrite=True) and None)
    return files


def _measure(model, files, held_out):
    """The table's rows for one model: each file's figures, and latency side by side."""
    x, y = held_out
    task = _tasks.infer(model)
    keras_outputs = model.predict(x, batch_size=64, verbose=0)
    float_score = task.score(keras_outputs, y)["accuracy"] if y is not None else None
    rows = []
    for label, path in files.items():
        row = {"file": label, "accuracy": "", "drop (points)": "", "agreement": "", "bytes": "",
               "integer-only": "", "on XNNPACK": "", "latency vs min-max": ""}  # fmt: skip
        if not os.path.isfile(path):
            rows.append(dict(row, accuracy="✗ " + path))
            continue
        try:
            outputs = tfc.litert.LiteRTModel(path).predict(x)
            inspected = tfc.litert.inspect(path)
        except Exception as error:  # a file LiteRT refuses is a row of the table, as it reached the user
            rows.append(dict(row, accuracy="✗ " + str(error).split(" could not be loaded")[-1][:160]))
            continue
        row.update({
            "agreement": f"{task.compare(outputs, keras_outputs)['agreement']:.4f}",
            "bytes": f"{os.path.getsize(path):,}",
            "integer-only": "yes" if not inspected["float_ops"] else "no",
            # A final softmax or logistic off XNNPACK costs next to nothing: the ops that multiply count.
            "on XNNPACK": "yes" if all(op["delegated"] for op in inspected["ops"] if op["macs"]) else "no",
        })  # fmt: skip
        if y is not None:
            accuracy = task.score(outputs, y)["accuracy"]
            row.update({"accuracy": f"{accuracy:.4f}", "drop (points)": f"{100 * (float_score - accuracy):+.2f}"})
        rows.append(row)
    timed = {row["file"]: files[row["file"]] for row in rows if row["bytes"]}
    result = tfc.litert.time_side_by_side(timed, baseline=_BASELINE, max_seconds=30)
    for timing in result.files:
        row = next(row for row in rows if row["file"] == timing["label"])
        row["latency vs min-max"] = (f"{1 / timing['speedup']:.2f}x ({1 / timing['speedup_high']:.2f}-"
                                     f"{1 / timing['speedup_low']:.2f})")  # fmt: skip
    return rows, float_score


def _verdict(rows, float_score):
    """Whether the model meets the targets, in words: over every integer-only file, and over those on XNNPACK."""
    figures = {row["file"]: row for row in rows if row["agreement"]}
    if _BASELINE in figures and "converter min-max" in figures:
        plain_ok = float(figures[_BASELINE]["agreement"]) >= float(figures["converter min-max"]["agreement"])
        lines = [f"tfcompress min-max agreement >= the raw converter's: {'yes' if plain_ok else 'NO'}"]
    else:
        lines = ["tfcompress min-max against the raw converter: one of the two files failed (its row says why)"]
    for scope, wanted in (("integer-only", lambda row: True), ("integer-only on XNNPACK",
                                                                lambda row: row["on XNNPACK"] == "yes")):  # fmt: skip
        eligible = {label: row for label, row in figures.items() if row["integer-only"] == "yes" and wanted(row)}
        ours = {label: row for label, row in eligible.items() if label.startswith("tfcompress")}
        anchors = {label: row for label, row in eligible.items() if not label.startswith("tfcompress")}
        if not ours or not anchors:
            lines.append(f"{scope}: {'no tfcompress file' if not ours else 'no anchor'} of that kind")
            continue
        if float_score is None:
            best = max(ours, key=lambda label: float(ours[label]["agreement"]))
            anchor = max(anchors, key=lambda label: float(anchors[label]["agreement"]))
            lines.append(f"closest {scope}: {best} (agreement {ours[best]['agreement']}); closest anchor: {anchor} "
                         f"(agreement {anchors[anchor]['agreement']})")  # fmt: skip
            continue
        best = min(ours, key=lambda label: float(ours[label]["drop (points)"]))
        anchor = min(anchors, key=lambda label: float(anchors[label]["drop (points)"]))
        ours_drop, anchor_drop = float(ours[best]["drop (points)"]), float(anchors[anchor]["drop (points)"])
        met = ours_drop <= 0.5 or ours_drop <= anchor_drop
        lines.append(f"best {scope}: {best} ({ours_drop:+.2f} points), best anchor: {anchor} ({anchor_drop:+.2f}); "
                     f"within 0.5 points or as close as the anchor: {'yes' if met else 'NO'}")  # fmt: skip
    return "\n".join(f"- {line}." for line in lines)


def main(argv):
    del argv
    logging.set_verbosity(logging.WARNING)
    unknown = sorted(set(FLAGS.models) - set(MODELS))
    if unknown:
        raise SystemExit(f"--models: unknown {unknown}; choose from {MODELS}.")
    _, data_name = _common.load_data()
    sections = [f"MNIST models: {data_name}. Calibration: {_CALIBRATION} training "
                "examples; measured on held-out examples in LiteRT (batch 1); latency at 1 thread, XNNPACK on, "
                f"against `{_BASELINE}` (ratio above 1: slower)."]  # fmt: skip
    for name in FLAGS.models:
        model, x_cal, held_out = _mnist_models(name) if name in _MNIST_MODELS else _zoo_model(name)
        with tempfile.TemporaryDirectory(prefix=f"tfcompress_{name}_") as folder:
            rows, float_score = _measure(model, _files(model, x_cal, folder), held_out)
        examples = len(held_out[0])
        accuracy = f"Keras accuracy {float_score:.4f}" if float_score is not None else "no labels: agreement only"
        table = _common.markdown_table(list(rows[0]), [list(row.values()) for row in rows])
        print(table, flush=True)
        section = (f"## {name}\n\n{model.count_params():,} parameters; {examples} held-out examples; {accuracy}.\n\n"
                   f"{table}\n\n{_verdict(rows, float_score)}\n")  # fmt: skip
        print(section, flush=True)
        sections.append(section)
    return "\n\n".join(sections)


if __name__ == "__main__":
    _common.run(main, partial_flags=("models",), packages=("litert-quantizer",))
