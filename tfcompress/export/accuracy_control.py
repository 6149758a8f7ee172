"""Accuracy-controlled int8: measure the file against the float model, and keep it int8 wherever the target allows.

What costs nothing on the phone is tried first, all of it: the plain int8 file, the
same after cross-layer equalization (exact, and still all int8), and after bias
correction; the one closest to the float model is kept. Only if none meets the target,
the fewest layers kept in float, ranked by how much int8 noise each adds to its channels and confirmed by
measuring each candidate file in LiteRT on the validation data.

Everything is measured in the task's own terms (`tfcompress._tasks`): accuracy and the
agreement of decisions for classifiers (top-1, the side of a binary threshold, each
label), and for regression the mean absolute error, whose relative rise is the drop.
"""

import dataclasses

import numpy as np

from tfcompress import _tasks
from tfcompress._checks import check_number
from tfcompress._graph import flat_copy, nested_models
from tfcompress._keras import keras
from tfcompress._results import Result
from tfcompress.data.arrays import input_arrays, input_specs
from tfcompress.export.quantization_errors import Calibration
from tfcompress.litert.interpreter import LiteRTModel
from tfcompress.litert.side_by_side import time_side_by_side
from tfcompress.prune.compute_cost import cost
from tfcompress.quantize.bias_correction import correct_bias
from tfcompress.quantize.equalization import equalize

# A float fallback that slows the file by more than this makes QAT the better fix.
QAT_ADVICE_SLOWDOWN = 1.25
# Trying to drop layers one by one from the chosen set costs one conversion each.
_MOST_LAYERS_TO_THIN = 8
_NOISE_EXAMPLES = 256


@dataclasses.dataclass(frozen=True)
class AccuracyControl(Result):
    """What accuracy control measured, tried and chose (`ExportResult.accuracy_control`).

    Attributes:
      target: the target as a dict (`max_accuracy_drop`, `min_agreement`, `regression`).
      task, measure: the first output's task and its measure ("accuracy" or "mae").
      validation_examples: how many examples every candidate was measured on.
      float_accuracy, float_score: the Keras model's accuracy (None for regression) and score in the measure.
      plain, equalized, bias_corrected: each candidate's figures (`agreement`, `score`, `accuracy`,
        `accuracy_drop`, `relative_error`, `met`, `float_layers`, `equalized`); None where not tried.
      equalized_pairs: the layer pairs equalization rescaled.
      chosen: the chosen file's figures, with its `candidate` name.
      float_layers: the layers the chosen file keeps in float.
      int8_mac_share: the share of multiply-accumulates that stay int8.
      bytes: the chosen file's size.
      trials: every file measured, in order.
      latency_ms: 1-thread latency of the plain int8 and the chosen file, timed side by side.
      advice: QAT advice when the float layers cost speed, or None.
      summary: the lines `verbose=True` prints.
    """

    target: dict
    task: str
    measure: str
    validation_examples: int
    float_accuracy: float
    float_score: float
    plain: dict
    equalized: dict
    equalized_pairs: list
    bias_corrected: dict
    chosen: dict
    float_layers: list
    int8_mac_share: float
    bytes: int
    trials: list
    latency_ms: dict
    advice: str
    summary: str


class AccuracyTargetError(RuntimeError):
    """No int8 file tried met the accuracy target; nothing was written."""


@dataclasses.dataclass(frozen=True)
class Target:
    """What the int8 file must keep, measured on validation data against the float Keras model.

    Attributes:
      max_accuracy_drop: the largest loss allowed in the task's primary measure: accuracy
        (0.005 = half a point), or for regression the mean absolute error's relative rise
        (0.005 = 0.5% larger); or None.
      min_agreement: the smallest share of decisions that must equal the float model's
        (top-1 class, side of the threshold, each label), or None.
      regression: the output is a regression, whose drop is the MAE's rise.
    """

    max_accuracy_drop: float = None
    min_agreement: float = None
    regression: bool = False

    def met(self, measured: dict) -> bool:
        """Whether a measurement (`accuracy_drop`, `agreement`) meets every part of the target."""
        drop_ok = self.max_accuracy_drop is None or measured["accuracy_drop"] <= self.max_accuracy_drop + 1e-12
        agreement_ok = self.min_agreement is None or measured["agreement"] >= self.min_agreement - 1e-12
        return drop_ok and agreement_ok

    def describe(self) -> str:
        """The target in words, e.g. "accuracy drop <= 0.50%" or "MAE rise <= 1.00%"."""
        parts = []
        if self.max_accuracy_drop is not None:
            parts.append(f"{'MAE rise' if self.regression else 'accuracy drop'} <= {self.max_accuracy_drop:.2%}")
        if self.min_agreement is not None:
            parts.append(f"agreement >= {self.min_agreement:.2%}")
        return " and ".join(parts)


def check_request(max_accuracy_drop, min_agreement, validation_data, model, task=None):
    """The checked target, validation arrays and task: `(target, x, y, task)`; y is None without labels."""
    for name, value in (("max_accuracy_drop", max_accuracy_drop), ("min_agreement", min_agreement)):
        if value is not None:
            check_number(name, value, low=0, high=1, low_open=True, high_open=True)
    if validation_data is None:
        raise ValueError(
            "Accuracy control measures the int8 file against the float model: pass "
            "validation_data=(x_val, y_val), held-out examples with labels (a few hundred or more)."
        )
    labelled = isinstance(validation_data, tuple) and len(validation_data) == 2
    x, y = validation_data if labelled else (validation_data, None)
    x = input_arrays(x, input_specs(model), argument="validation_data")
    if y is None and max_accuracy_drop is not None:
        raise ValueError(
            "`max_accuracy_drop` compares accuracies, so `validation_data` needs labels: pass (x_val, y_val). "
            "Without labels, use min_agreement= (the share of answers the int8 file must keep)."
        )
    if y is not None and len(y) != len(x[0]):
        raise ValueError(f"`validation_data` has {len(x[0])} examples but {len(y)} labels; they must match.")
    task = _tasks.infer(model, task=task, labels=y)
    if y is not None:
        y = task.labels(y, model.outputs[0].shape[1:], argument="validation_data")
    if task.kind == "regression" and min_agreement is not None:
        raise ValueError(
            f"`min_agreement` counts decisions the int8 file makes as the float model does, and the output of "
            f"{model.name!r} is a regression, which decides nothing. Use max_accuracy_drop= with labels: the "
            "largest relative rise of its mean absolute error (0.01 = 1%)."
        )
    return Target(max_accuracy_drop, min_agreement, task.kind == "regression"), x, y, task


def control(model, samples, target: Target, x, y, convert, task):
    """Finds the int8 file that meets `target` at the least cost in float layers."""
    if nested_models(model):  # the debugger names a nested base's ops after the base: fall back by its layers
        model = flat_copy(model)
    judge = _Judge(model, x, y, target, task)
    plain = convert(model)
    tried = {"plain int8": (plain, model, judge.measure(plain, []))}
    equalized, pairs = equalize(model)
    if pairs:
        content = convert(equalized)
        tried["equalized int8"] = (content, equalized, judge.measure(content, [], equalized=True))
    best = max(tried.values(), key=lambda tried_: judge.rank(tried_[2]))
    corrected, layers = correct_bias(best[1], samples if len(samples) > 1 else samples[0])
    if layers:
        content = convert(corrected)
        label = "bias-corrected" + (" equalized" if best[1] is equalized else "") + " int8"
        tried[label] = (content, corrected, judge.measure(content, [], equalized=best[1] is equalized))
    name, (content, base, chosen) = max(tried.items(), key=lambda item: judge.rank(item[1][2]))
    chosen["candidate"] = name
    if not target.met(chosen):
        content, chosen = _fallback_search(base, samples, judge, equalized="equalized" in name)
        chosen["candidate"] = name
    report = {
        "target": dataclasses.asdict(target),
        "task": task.kind,
        "measure": task.measure,
        "validation_examples": len(x[0]),
        "float_accuracy": judge.float_score if task.measure == "accuracy" else None,
        "float_score": judge.float_score,
        "plain": tried["plain int8"][2],
        "equalized": tried["equalized int8"][2] if pairs else None,
        "equalized_pairs": pairs,
        "bias_corrected": tried[label][2] if layers else None,
        "chosen": chosen,
        "float_layers": chosen["float_layers"],
        "int8_mac_share": _int8_mac_share(base, chosen["float_layers"]),
        "bytes": len(content),
        "trials": judge.trials,
    }
    # Side by side: a slowdown read off two separate timing windows would be mostly noise.
    timed = time_side_by_side({"plain int8": plain, "chosen": content}, max_seconds=10.0).files
    report["latency_ms"] = {row["label"]: row["median_ms"] for row in timed}
    report["advice"] = _advice(report)
    report["summary"] = summary(report)
    return content, AccuracyControl(**report)


class _Judge:
    """Measures candidate files in LiteRT on the validation data, in the task's terms, and keeps every trial."""

    def __init__(self, model, x, y, target, task):
        self.target, self.x, self.y, self.task, self.trials = target, x, y, task, []
        self.output_name = model.output_names[0]
        self.reference = _first(model.predict(x if len(x) > 1 else x[0], batch_size=256, verbose=0))
        self.float_score = task.score(self.reference, y)[task.measure] if y is not None else None

    def measure(self, content, float_layers, equalized=False) -> dict:
        outputs = LiteRTModel(content).predict(self.x if len(self.x) > 1 else self.x[0])
        outputs = outputs[self.output_name] if isinstance(outputs, dict) else outputs
        compared = self.task.compare(outputs, self.reference)
        score = self.task.score(outputs, self.y)[self.task.measure] if self.y is not None else None
        measured = {
            "float_layers": list(float_layers),
            "equalized": equalized,
            "agreement": compared["agreement"],
            "relative_error": compared.get("relative_error"),
            "score": score,
            "accuracy": score if self.task.measure == "accuracy" else None,
            "accuracy_drop": self.task.drop(self.float_score, score) if score is not None else 0.0,
        }
        measured["met"] = self.target.met(measured)
        self.trials.append(measured)
        return measured

    def rank(self, measured):
        """Order of preference: meets the target, then fewer float layers, then closer to the float model."""
        closeness = measured["agreement"] if measured["agreement"] is not None else -measured["relative_error"]
        return (measured["met"], -len(measured["float_layers"]), closeness, -measured["accuracy_drop"])



def _fallback_search(model, samples, judge, equalized):
    """The shortest prefix of the layers ranked by int8 noise that meets the target, then thinned."""
    calibration = Calibration(model, samples)
    ranking = _noise_ranking(model, calibration.errors, samples)
    results = {}

    def attempt(names):
        key = tuple(names)
        if key not in results:
            content = calibration.convert(list(names))
            results[key] = (content, judge.measure(content, names, equalized))
        return results[key]

    # The debugger needs one quantized op left to compare; all in float is the float32 file, not int8.
    most = len(ranking) - 1
    count, failed = 1, 0
    while most < 1 or not attempt(ranking[:count])[1]["met"]:
        if count >= most:
            tried = [measured for _, measured in results.values()]
            best = max(tried, key=judge.rank) if tried else judge.trials[-1]
            raise AccuracyTargetError(
                f"No int8 file meets the target ({judge.target.describe()}). The closest, with "
                f"{len(best['float_layers'])} of the {len(ranking)} quantized layers in float, measured on the "
                f"{len(judge.reference)} validation examples: {measured_words(best, judge.task.kind)}. "
                "Fine-tune with quantization-aware training (tfc.quantize.qat, or a `qat` stage in the recipe), "
                "export float16 or dynamic instead, or loosen the target. Nothing was written."
            )
        failed, count = count, min(2 * count, most)
    low, high = failed + 1, count  # ranking[:high] meets the target
    while low < high:
        middle = (low + high) // 2
        if attempt(ranking[:middle])[1]["met"]:
            high = middle
        else:
            low = middle + 1
    names = ranking[:high]
    if len(names) <= _MOST_LAYERS_TO_THIN:
        for name in reversed(list(names)):
            fewer = [other for other in names if other != name]
            if fewer and attempt(fewer)[1]["met"]:
                names = fewer
    return attempt(names)


def _noise_ranking(model, errors, samples) -> list:
    """Quantized layers, noisiest first: the int8 error as a share of each output channel's own signal."""
    rows = errors["layers"]
    names = [row["layer"] for row in rows]
    known = [name for name in dict.fromkeys(names) if _has_layer(model, name)]
    energy = _channel_energy(model, known, samples)
    noise = {}
    for row in rows:
        mse = (row["rmse_per_scale"] * row["scale"]) ** 2
        signal = energy.get(row["layer"])
        if signal is None:
            share = min(row["rmse_per_scale"] ** 2, 1.0)
        else:
            live = signal > signal.max() * 1e-6
            share = float(np.mean(np.minimum(mse / signal[live], 1.0))) if live.any() else 0.0
        noise[row["layer"]] = max(noise.get(row["layer"], 0.0), share)
    return sorted(noise, key=lambda name: -noise[name])


def _channel_energy(model, names, samples) -> dict:
    """Mean square of every named layer's output, per channel (last axis), on a few calibration examples."""
    if not names:
        return {}
    outputs = [model.get_layer(name).output for name in names]
    probe = keras.Model(model.inputs, outputs)
    inputs = [array[:_NOISE_EXAMPLES] for array in samples]
    values = probe.predict(inputs if len(inputs) > 1 else inputs[0], batch_size=64, verbose=0)
    values = values if isinstance(values, list) else [values]
    return {
        name: np.mean(np.square(value.reshape(-1, value.shape[-1]).astype(np.float64)), axis=0)
        for name, value in zip(names, values)
    }


def _has_layer(model, name) -> bool:
    try:
        layer = model.get_layer(name)
        return len(layer.inbound_nodes) == 1 and not isinstance(layer.output, (list, tuple))
    except (ValueError, AttributeError):
        return False


def _int8_mac_share(model, float_layers) -> float:
    counted = cost(model)
    if not counted["macs"]:
        return 1.0
    in_float = sum(row["macs"] for row in counted["layers"] if row["layer"] in set(float_layers))
    return 1.0 - in_float / counted["macs"]


def _advice(report):
    slower = report["latency_ms"]["chosen"] / report["latency_ms"]["plain int8"]
    if not report["float_layers"] or slower <= QAT_ADVICE_SLOWDOWN:
        return None
    return (
        f"Keeping {len(report['float_layers'])} layers in float makes the file {slower:.2f}x slower than all-int8 "
        f"at 1 thread ({report['int8_mac_share']:.0%} of its MACs stay int8). Quantization-aware training keeps "
        "every layer int8 and usually recovers the accuracy: q = tfc.quantize.qat(model, "
        "representative_data=x_train[:500]); compile and fit q for 1-2 epochs at a low learning rate; export q "
        "(in a recipe: a `qat` stage before `export`)."
    )


def summary(report) -> str:
    """The lines `to_tflite` prints for an accuracy-controlled export."""
    chosen, plain, kind = report["chosen"], report["plain"], report["task"]
    lines = [
        f"Accuracy control ({report['validation_examples']} validation examples, {_tasks.Task(kind).describe()}, "
        f"target: {Target(**report['target']).describe()}):",
        f"  plain int8:     {measured_words(plain, kind)}",
    ]
    if report["equalized"]:
        lines.append(
            f"  equalized int8: {measured_words(report['equalized'], kind)}"
            f" ({len(report['equalized_pairs'])} layer pairs rescaled)"
        )
    if report["bias_corrected"]:
        lines.append(f"  bias-corrected: {measured_words(report['bias_corrected'], kind)}")
    layers = ", ".join(chosen["float_layers"]) or "none"
    lines += [
        f"  chosen: {chosen['candidate']}{', with layers in float' if chosen['float_layers'] else ''}; "
        f"layers in float: {layers}",
        f"  {measured_words(chosen, kind)}; {report['bytes']:,} bytes; "
        f"{report['int8_mac_share']:.1%} of MACs in int8; 1-thread latency "
        f"{report['latency_ms']['chosen']:.3f} ms (plain int8 {report['latency_ms']['plain int8']:.3f} ms)",
    ]
    if report["advice"]:
        lines.append("  " + report["advice"])
    return "\n".join(lines)


def measured_words(measured, kind: str) -> str:
    """One measured file in words: its agreement (a regression's relative error) and primary measure with its drop."""
    if measured["agreement"] is not None:
        words = f"agreement {measured['agreement']:.2%}"
    else:
        words = f"relative error {measured['relative_error']:.2%}"
    if measured["score"] is None:
        return words
    task = _tasks.Task(kind)
    name = "accuracy" if task.measure == "accuracy" else "MAE"
    return words + f", {name} {measured['score']:.4f} ({task.drop_words(measured['accuracy_drop'])})"


def _first(outputs):
    return outputs[0] if isinstance(outputs, (list, tuple)) else outputs
