"""Every zoo model (tests/zoo.py) through every entry point, each measured in its task's terms.

Table 1, every zoo model: magnitude pruning to 50% (layers pruned, layers left dense), QAT
(layers left in float) then one training step and the int8 export compared with the QAT
model in LiteRT; post-training int8 export verified against the float model; channel
pruning at 50% (parameters before and after). Agreement is over 200 held-out inputs (digits
for the image models), and over the decided answers (`tests/zoo.decided`): where the
answer is clear (the top score beats the runner-up, a binary score its threshold, by more
than 15% of the output's range) and holds when the inputs move by less than half an int8
step. It is top-1 for multi-class outputs, the side of the threshold for binary ones, each
label for multi-label; a regression reports its relative error instead.

Table 2, the models of other tasks and Keras 3 user files (loaded by path): the task as
tfcompress tells it, the post-training int8 file, its figures against the Keras model in the
task's measure, accuracy control to 1 point, distillation into a small student, and the
Android bundle. A cell is ✓ with its figures, or the error in full.

With --write, the tables measured replace those of docs/results/zoo.md (between their markers),
each headed by the command, the date, the versions and the CPU.

Usage: python benchmarks/zoo.py [--tables=zoo,tasks] [--models=lstm,gru] [--write]
(writes its .tflite files to ./zoo_benchmark)
"""

import datetime
import pathlib
import sys
import time
import warnings

import numpy as np
from absl import app, flags

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))  # tests/zoo.py
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))

import _common  # noqa: E402

import tfcompress as tfc  # noqa: E402
from tests import zoo  # noqa: E402
from tfcompress import _model_files, _tasks, keras  # noqa: E402

TASK_MODELS = ("transfer_tutorial", "binary_sigmoid", "multilabel", "regression", *zoo.KERAS3_FILES)
TABLE_MODELS = {"zoo": tuple(zoo.BUILDERS), "tasks": TASK_MODELS}
flags.DEFINE_list("tables", list(TABLE_MODELS), "Tables to measure: zoo, tasks.")
flags.DEFINE_list("models", None, "Models to run (default: every model of the tables).")
# Each table lies between these two lines in docs/results/zoo.md.
MARKERS = {key: (f"<!-- {key} table: written by python benchmarks/zoo.py --write -->", f"<!-- end of {key} table -->")
           for key in ("zoo", "tasks")}  # fmt: skip


def _as_list(outputs):
    return outputs if isinstance(outputs, list) else [outputs]


def _cell(function):
    try:
        return "✓ " + function()
    except Exception as error:  # the table shows every failure as it reached the user
        return f"✗ {type(error).__name__}: {str(error).splitlines()[0][:160]}"


def _first_output(model, outputs):
    names = [name.removeprefix("quant_") for name in model.output_names]
    return [outputs[name] for name in names][0] if isinstance(outputs, dict) else outputs


def _agreement_words(tflite_output, model, x, task):
    """"agrees 99.5% (100.0% of 180 decided)", or a regression's relative error."""
    keras_output = _as_list(model.predict(x, verbose=0))[0]
    if task.kind == "regression":
        return f"relative error {task.compare(tflite_output, keras_output)['relative_error']:.2%}"
    every, decided, count = zoo.agreement(tflite_output, keras_output, zoo.decided(model, x, tasks=[task])[0], task)
    return f"agrees {every:.1%} ({decided:.1%} of {count} decided)"


def _load(name, folder):
    """`(model, x, y, calibration)`: the zoo model trained, or a Keras 3 user's file loaded by its path."""
    if name in zoo.KERAS3_FILES:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model = _model_files.load(zoo.keras3_file(name, folder))
    else:
        model = zoo.build(name, trained=True)
    if name in zoo.IMAGE_CLASSIFIERS or name in zoo.KERAS3_FILES:
        (x, y), calibration = zoo.digit_images(name, 200, offset=1200), zoo.digit_images(name, 128, offset=1400)[0]
    else:
        x, y, calibration = zoo.inputs_for(name, model, 200, seed=1), None, zoo.inputs_for(name, model, 128, seed=2)
    return model, x, y, calibration


def _zoo_row(name, folder):
    model, x, _, calibration = _load(name, folder)
    task = _tasks.infer_all(model, task=zoo.TASKS.get(name))[0]
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
        output = _first_output(quantized, tfc.litert.LiteRTModel(path).predict(by_name))
        return f"{len(quantized.float_layers)} float; int8 {_agreement_words(output, quantized, x, task)}"

    def export():
        result = tfc.export.to_tflite(model, folder / f"{name}.tflite", representative_data=calibration,
                                      overwrite=True)  # fmt: skip
        check = tfc.litert.verify(result.path, model, x, task=zoo.TASKS.get(name))
        output = _first_output(model, tfc.litert.LiteRTModel(result.path).predict(by_name))
        first = check["outputs"][model.output_names[0]]
        return (f"{result.bytes / 1024:,.0f} KB, {result.input_dtype} in; {_agreement_words(output, model, x, task)}, "
                f"max error {first['max_abs_error']:.3g}")  # fmt: skip

    def channels():
        smaller = tfc.prune.channels(model, 0.5)
        return f"{model.count_params():,} → {smaller.count_params():,} parameters"

    start = time.perf_counter()
    cells = [_cell(magnitude), _cell(qat), _cell(export), _cell(channels)]
    words = task.kind + (" per position" if task.positions else "")
    return [name, words] + cells + [f"{time.perf_counter() - start:.0f}"]


def _task_row(name, folder):
    model, x, y, calibration = _load(name, folder)
    task = _tasks.infer(model)
    measure = "MAE" if task.measure == "mae" else "accuracy"
    path = folder / f"{name}_task.tflite"

    def int8_file():
        result = tfc.export.to_tflite(model, path, representative_data=calibration, overwrite=True)
        floating = tfc.litert.inspect(result.path)["float_ops"]
        return f"{result.bytes / 1024:,.0f} KB, {'integer-only' if not floating else f'{len(floating)} float ops'}"

    def verify():
        check = tfc.litert.verify(path, model, x, y)
        output = tfc.litert.LiteRTModel(path).predict(x)
        return (f"{measure} {check[f'keras_{task.measure}']:.3f} → {check[f'tflite_{task.measure}']:.3f}; "
                f"{_agreement_words(output, model, x, task)}")  # fmt: skip

    def control():
        path = folder / f"{name}_controlled.tflite"
        result = tfc.export.with_accuracy_control(model, path, representative_data=calibration,
                                      validation_data=(x, y), max_accuracy_drop=0.01, overwrite=True)  # fmt: skip
        chosen = result.accuracy_control.chosen
        return f"{chosen['candidate']}, {len(chosen['float_layers'])} float; {task.drop_words(chosen['accuracy_drop'])}"

    def distill():
        x_train, y_train = zoo.digit_images(name, 800)
        keras.utils.set_random_seed(0)
        student = zoo.student_for(model)
        distiller = tfc.Distiller(student=student, teacher=model)
        distiller.compile(optimizer=keras.optimizers.Adam(2e-3), alpha=0.5, temperature=2.0)
        distiller.fit(x_train, y_train, epochs=4, batch_size=32, verbose=0)
        after, teacher = _tasks.evaluate(student, x, y, task), _tasks.evaluate(model, x, y, task)
        return f"{student.count_params():,} parameters, {measure} {after:.3f} (teacher {teacher:.3f})"

    def bundle():
        if task.kind == "regression":
            return "— (no labels to show; refused with the reason)"
        labels = {"binary": ["even", "odd"], "multilabel": ["odd", "five or more", "has a loop"]}.get(task.kind)
        made = tfc.export.android_bundle(path, folder / f"{name}_android", labels=labels or list("0123456789"),
                                         pixel_range=(0, 255), task=task.kind, overwrite=True)  # fmt: skip
        report = tfc.litert.inspect(made["model"])
        scores = tfc.litert.LiteRTModel(made["model"]).predict(x)
        answers = task.decisions(tfc.litert.LiteRTModel(path).predict(x))
        shown = {"binary": scores[:, 1] > 0.5, "multilabel": scores > 0.5}.get(task.kind, scores.argmax(-1))
        kind = "integer-only" if not report["float_ops"] else "float ops"
        same = np.mean(shown == answers)
        return f"scores {report['outputs'][0]['shape']}, {kind}; shows LiteRT's answer on {same:.1%}"

    start = time.perf_counter()
    cells = [_cell(int8_file), _cell(verify), _cell(control), _cell(distill), _cell(bundle)]
    return [name, f"{task.describe()}: {task.source}"] + cells + [f"{time.perf_counter() - start:.0f}"]


def _heading() -> str:
    tables = flags.FLAGS.tables
    command = "python benchmarks/zoo.py" + ("" if tables == list(TABLE_MODELS) else f" --tables={','.join(tables)}")
    versions = _common.heading("zoo").split("\n\n", 1)[1].split(": ", 1)[1].strip()
    return f"Written by `{command} --write` on {datetime.date.today().isoformat()}: {versions} One run."


def main(argv):
    del argv
    folder = pathlib.Path("zoo_benchmark")
    folder.mkdir(exist_ok=True)
    unknown = sorted(set(flags.FLAGS.tables) - set(TABLE_MODELS))
    if unknown:
        raise SystemExit(f"--tables: no table {unknown}; the tables are {list(TABLE_MODELS)}.")
    wanted = {key: TABLE_MODELS[key] for key in flags.FLAGS.tables}
    everything = list(dict.fromkeys(name for models in wanted.values() for name in models))
    names = flags.FLAGS.models or everything
    if flags.FLAGS.write and set(names) != set(everything):
        raise SystemExit("--write replaces whole tables: run every model of them (leave --models out).")
    zoo_header = ["model", "task", "prune.magnitude", "quantize.qat → int8", "export.to_tflite int8 + verify",
                  "prune.channels 50%", "s"]  # fmt: skip
    task_header = ["model", "task, as tfcompress tells it", "int8 file", "export.verify vs Keras",
                   "accuracy control ≤ 1 point", "Distiller, small student", "android_bundle", "s"]  # fmt: skip
    zoo_rows, task_rows = [], []
    for name in names:
        if name in wanted.get("zoo", ()):
            zoo_rows.append(_zoo_row(name, folder))
            print("| " + " | ".join(zoo_rows[-1]) + " |", flush=True)
        if name in wanted.get("tasks", ()):
            task_rows.append(_task_row(name, folder))
            print("| " + " | ".join(task_rows[-1]) + " |", flush=True)
    tables = {"zoo": f"{_heading()}\n\n{_common.markdown_table(zoo_header, zoo_rows)}",
              "tasks": f"{_heading()}\n\n{_common.markdown_table(task_header, task_rows)}"}  # fmt: skip
    tables = {key: table for key, table in tables.items() if key in wanted}
    print("\n\n".join(tables.values()))
    if flags.FLAGS.write:
        for key, table in tables.items():
            _common.write_results("zoo", table, between=MARKERS[key])


if __name__ == "__main__":
    app.run(main)
