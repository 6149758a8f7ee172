"""Accuracy-controlled int8: measure files against the float model; integer-only wherever that meets the target.

What costs nothing on the phone is tried first: the plain int8 file; the same with each
activation range picked by percentile, MSE or KL (`range_search`); all of them after
cross-layer equalization (exact, and still all int8); the closest after bias correction,
and, while none meets the target, with weight ranges of least error (`clip_weights`) and
after learned rounding (AdaRound). Then int16 activations,
first in the fewest layers (`layer_precision`, through the LiteRT quantizer), then in the
whole file: integer files still, but off XNNPACK, so slower (their latency is measured).
Only if none meets the target and the caller allows float, the fewest layers kept in float.
Layers are ranked by how much int8 noise each adds to its channels, and every candidate
file is measured in LiteRT on the validation data. A budget (bytes, latency against the
plain int8 file) limits the choice; where no int8 file fits its bytes, int4 weights in the
fewest layers make one that does. Every file tried is reported with its size and latency.

Everything is measured in the task's own terms (`tfcompress._tasks`): accuracy and the
agreement of decisions for classifiers (top-1, the side of a binary threshold, each
label), and for regression the mean absolute error, whose relative rise is the drop.
"""

import collections
import dataclasses
import functools

import numpy as np

from tfcompress import _errors, _tasks
from tfcompress._checks import check_number
from tfcompress._choices import CALIBRATION_METHODS
from tfcompress._graph import flat_copy, nested_models
from tfcompress._keras import keras
from tfcompress._results import Result
from tfcompress.data.arrays import input_arrays, input_specs
from tfcompress.export import layer_precision
from tfcompress.export.quantization_errors import Calibration
from tfcompress.litert.inspection import costly_undelegated_ops, float_compute_ops, operators
from tfcompress.litert.interpreter import LiteRTModel, load_interpreter
from tfcompress.litert.side_by_side import time_side_by_side
from tfcompress.prune.compute_cost import cost
from tfcompress.quantize.bias_correction import correct_bias
from tfcompress.quantize.equalization import equalize
from tfcompress.quantize.learned_rounding import adaround
from tfcompress.quantize.weight_clipping import clip_weights

# A float fallback that slows the file by more than this makes QAT the better fix.
QAT_ADVICE_SLOWDOWN = 1.25
# Trying to drop layers one by one from the chosen set costs one conversion each.
_MOST_LAYERS_TO_THIN = 8
# Beyond this many layers in int16, the whole-file int16x8 file is tried instead.
_MOST_INT16_LAYERS = 8
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
      int16_layers, int4_layers: the layers whose activations the chosen file keeps in int16, and whose weights
        it stores in int4 (per layer; a whole-file int16x8 file lists none).
      int8_mac_share: the share of multiply-accumulates that stay int8.
      bytes: the chosen file's size.
      trials: every file measured, in order.
      latency_ms: 1-thread latency of the plain int8 and the chosen file, timed side by side.
      calibration: how the chosen file's activation ranges were picked ("minmax", "percentile", "mse", "kl").
      integer_only: the chosen file computes in integers only (no layer in float).
      op_types: the chosen file's operators and how many of each.
      on_xnnpack: every op of the chosen file that costs time runs on XNNPACK (int16 activations do not).
      budget: the budget as a dict (`bytes`, `latency`), or None.
      frontier: every file tried with its `bytes`, `latency_ratio` (to the plain int8 file), `integer_only`,
        `on_xnnpack`, `int16_layers`, `int4_layers`, `agreement`, `accuracy_drop`, `met` and `within_budget`.
      skipped: what was not tried and why (int16 or int4 per layer without the LiteRT quantizer).
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
    int16_layers: list
    int4_layers: list
    int8_mac_share: float
    bytes: int
    trials: list
    latency_ms: dict
    calibration: str
    integer_only: bool
    op_types: dict
    on_xnnpack: bool
    budget: dict
    frontier: list
    skipped: list
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


def control(model, samples, target: Target, x, y, convert, task, allow_float=False, budget=None):
    """Finds the int8 file closest to `model` that meets `target` (and `budget`), integer-only wherever one does.

    `convert(candidate, calibration, mode)` builds a file; every file is measured by the same judge. What costs
    nothing at run time comes first (ranges, equalization, bias correction, learned rounding), then int16
    activations in the fewest layers and in the whole file (off XNNPACK: slower), then, with `allow_float`, the
    fewest layers in float. Where no int8 file fits the budget's bytes, int4 weights in the fewest layers.
    """
    if nested_models(model):  # the debugger names a nested base's ops after the base: fall back by its layers
        model = flat_copy(model)
    budget = budget or Budget()
    judge = _Judge(model, x, y, target, task)
    search = _Search(judge, convert, budget)
    layers = _Layers(model, samples, convert)
    search.try_file("plain int8", model, "minmax")
    equalized, pairs = equalize(model)
    bases = {"": model, "equalized ": equalized} if pairs else {"": model}
    for prefix, base in bases.items():
        for method in CALIBRATION_METHODS:
            if prefix or method != "minmax":
                search.try_file(f"{prefix}int8, {method} ranges" if method != "minmax" else "equalized int8",
                                base, method, equalized=bool(prefix))  # fmt: skip
    if budget.bytes is not None and not search.fits_bytes():
        # Nothing else tried here makes an int8 file smaller (bias correction, rounding, int16, float layers).
        layers.attempt("int4 weights per layer", _int4_search, search, budget.bytes)
        if not search.fits_bytes():
            raise AccuracyTargetError(search.failure(allow_float, layers.skipped))
    else:
        _improve(search, layers, samples, allow_float)
    search.time_every_file()
    chosen = search.best(within_budget=True)
    if not chosen.measured["met"] or not search.within(chosen):
        raise AccuracyTargetError(search.failure(allow_float, layers.skipped))
    plain = search.files["plain int8"]
    report = {
        "target": dataclasses.asdict(target),
        "task": task.kind,
        "measure": task.measure,
        "validation_examples": len(x[0]),
        "float_accuracy": judge.float_score if task.measure == "accuracy" else None,
        "float_score": judge.float_score,
        "plain": plain.measured,
        "equalized": search.files["equalized int8"].measured if pairs else None,
        "equalized_pairs": pairs,
        "bias_corrected": next((f.measured for n, f in search.files.items() if n.startswith("bias-corrected")), None),
        "chosen": dict(chosen.measured, candidate=chosen.name),
        "float_layers": chosen.measured["float_layers"],
        "int16_layers": chosen.measured["int16_layers"],
        "int4_layers": chosen.measured["int4_layers"],
        "int8_mac_share": _int8_mac_share(chosen.base, chosen.measured["float_layers"]),
        "bytes": len(chosen.content),
        "trials": judge.trials,
        "latency_ms": {"plain int8": plain.latency_ms, "chosen": chosen.latency_ms},
        "calibration": chosen.calibration,
        "integer_only": chosen.integer_only,
        "op_types": chosen.op_types,
        "on_xnnpack": chosen.on_xnnpack,
        "budget": budget.to_dict(),
        "frontier": search.frontier(),
        "skipped": layers.skipped,
    }
    report["advice"] = _advice(report)
    report["summary"] = summary(report)
    return chosen.content, AccuracyControl(**report)


def _improve(search, layers, samples, allow_float):
    """Bias correction on the closest file; then, while none meets the target, weight ranges, rounding, int16
    activations and float layers."""
    best = search.best()
    corrected, corrected_layers = correct_bias(best.base, samples if len(samples) > 1 else samples[0])
    if corrected_layers:
        search.try_file(f"bias-corrected {best.name.removeprefix('plain ')}", corrected, best.calibration,
                        equalized=best.equalized)  # fmt: skip
    if not search.met():
        best = search.best()
        clipped, clipped_layers = clip_weights(best.base)
        if clipped_layers:
            search.try_file(f"mse weights, {best.name.removeprefix('plain ')}", clipped, best.calibration,
                            equalized=best.equalized)  # fmt: skip
    if not search.met():
        best = search.best()
        rounded, _ = adaround(best.base, samples if len(samples) > 1 else samples[0])
        search.try_file(f"adaround {best.name.removeprefix('plain ')}", rounded, best.calibration,
                        equalized=best.equalized)  # fmt: skip
    if not search.met():
        layers.attempt("int16 activations per layer", _int16_search, search)
    if not search.met():
        search.try_file("int16 activations (int16x8)", layers.model, "minmax", mode="int16x8")
    if not search.met() and allow_float:
        best = search.best(integer_only=True, mode="int8")
        content, measured = _fallback_search(best.base, samples, search.judge, best.equalized, best.calibration)
        search.add(f"{best.name}, with layers in float", best.base, best.calibration, content, measured,
                   equalized=best.equalized)  # fmt: skip


class _Layers:
    """The model's layers ranked by int8 noise, and its files with per-layer precision; each made when first asked."""

    def __init__(self, model, samples, convert):
        self.model, self.samples, self.convert, self.skipped = model, samples, convert, []

    def attempt(self, what, search_function, search, *arguments):
        """Runs a per-layer search; where the LiteRT quantizer or LiteRT refuses the model, says so in `skipped`."""
        try:
            search_function(search, self, *arguments)
        except Exception as error:  # the quantizer raises many kinds; the other files still stand
            self.skipped.append(f"{what}: the LiteRT quantizer's file failed ({_errors.summary(error)})")

    @functools.cached_property
    def ranking(self) -> list:
        return _noise_ranking(self.model, Calibration(self.model, self.samples).errors, self.samples)

    @functools.cached_property
    def precision(self):
        """A `layer_precision.LayerPrecision` of the model, or None without the LiteRT quantizer (then skipped)."""
        if not layer_precision.available():
            self.skipped.append(
                'int16 activations and int4 weights per layer: they need the LiteRT quantizer, pip install '
                '"tfcompress[quantizer]"'
            )
            return None
        return layer_precision.LayerPrecision(self.model, self.convert(self.model, "minmax", "float32"), self.samples)


def _int16_search(search, layers):
    """The fewest of the noisiest layers whose activations in int16 meet the target; else the closest such file."""
    precision = layers.precision
    if precision is None:
        return
    ranking = [name for name in layers.ranking if name in precision.ops][:_MOST_INT16_LAYERS]

    def attempt(names):
        names = precision.with_readers(names)
        content = _integer_only(precision.convert(int16_layers=names))
        return content, search.judge.measure(content, [], int16_layers=names)

    found, tried = _fewest_layers(ranking, attempt)
    if not tried:  # no layer of the ranking has an op of its own in the file
        return
    content, measured = found or max(tried.values(), key=lambda pair: search.judge.rank(pair[1]))
    name = f"int16 activations in {_layers_words(len(measured['int16_layers']))}"
    measured["candidate"] = name
    search.add(name, layers.model, "minmax", content, measured, mode="mixed")


def _int4_search(search, layers, most_bytes):
    """Files whose int4 weights in the fewest layers fit `most_bytes`: the least noisy layers first, the largest."""
    precision = layers.precision
    if precision is None:
        return
    sizes = {name: _kernel_size(layers.model, name) for name in precision.int4_layers()}
    quietest = [name for name in reversed(layers.ranking) if name in sizes]
    quietest += [name for name in sizes if name not in quietest]
    largest = sorted(sizes, key=lambda name: -sizes[name])
    made = {}
    for order, words in ((quietest, "least int8 noise first"), (largest, "largest first")):
        for count in range(1, len(order) + 1):
            names = tuple(order[:count])
            if names not in made:
                made[names] = _integer_only(precision.convert(int4_layers=names))
            if len(made[names]) <= most_bytes or count == len(order):  # the smallest is reported when none fits
                if not any(f.measured["int4_layers"] == list(names) for f in search.files.values()):
                    name = f"int4 weights in {_layers_words(count)} ({words})"
                    measured = search.judge.measure(made[names], [], int4_layers=names, candidate=name)
                    search.add(name, layers.model, "minmax", made[names], measured, mode="mixed")
                break


def _integer_only(content) -> bytes:
    """`content`, or an error naming the ops the LiteRT quantizer left in float (accuracy control's files are
    integer-only unless float is allowed)."""
    floating = float_compute_ops(load_interpreter(content, xnnpack=False))
    if floating:
        raise ValueError(f"it leaves {sorted({op for op, _ in floating})} in float")
    return content


def _layers_words(count) -> str:
    return f"{count} layer" + ("s" if count != 1 else "")


def _kernel_size(model, name) -> int:
    kernel = getattr(model.get_layer(name), "kernel", None)
    return int(np.prod(kernel.shape)) if kernel is not None else 0


@dataclasses.dataclass
class _File:
    """One candidate file: how it was made, what it measured, and (once timed) its latency."""

    name: str
    base: object
    calibration: str
    mode: str
    content: bytes
    measured: dict
    equalized: bool
    latency_ms: float = None
    latency_ratio: float = None

    @property
    def integer_only(self) -> bool:
        return not self.measured["float_layers"]  # per-layer files with a float op are never added

    @property
    def op_types(self) -> dict:
        return dict(collections.Counter(op["op"] for op in operators(load_interpreter(self.content))))

    @property
    def on_xnnpack(self) -> bool:
        return not costly_undelegated_ops(load_interpreter(self.content))


class _Search:
    """The files tried, in order, and the choice among them."""

    def __init__(self, judge, convert, budget):
        self.judge, self.convert, self.budget, self.files = judge, convert, budget, {}

    def try_file(self, name, base, calibration, equalized=False, mode="int8"):
        content = self.convert(base, calibration, mode)
        measured = self.judge.measure(content, [], equalized=equalized, candidate=name)
        self.add(name, base, calibration, content, measured, equalized, mode)

    def add(self, name, base, calibration, content, measured, equalized=False, mode="int8"):
        added = self.files[name] = _File(name, base, calibration, mode, content, measured, equalized)
        if self.budget.latency is not None and (mode != "int8" or measured["float_layers"]):
            # Slower than the int8 files by design: whether it fits a latency budget decides what is tried next.
            plain = self.files["plain int8"].content
            timed = time_side_by_side({"plain int8": plain, name: content}, max_seconds=5.0).files
            added.latency_ratio = timed[1]["median_ms"] / timed[0]["median_ms"]

    def met(self) -> bool:
        return any(f.measured["met"] and self.within(f) for f in self.files.values())

    def fits_bytes(self) -> bool:
        return any(len(f.content) <= self.budget.bytes for f in self.files.values())

    def within(self, file) -> bool:
        """Within the budget, as far as measured: an int8 file's latency is timed with all the others at the end."""
        return self.budget.allows(len(file.content), file.latency_ratio)

    def best(self, within_budget=False, integer_only=False, mode=None):
        files = [f for f in self.files.values()
                 if (not within_budget or self.within(f)) and (not integer_only or f.integer_only)
                 and (mode is None or f.mode == mode)]  # fmt: skip
        files = files or list(self.files.values())
        return max(files, key=lambda f: self.judge.rank(f.measured))

    def time_every_file(self):
        # Side by side: a slowdown read off separate timing windows would be mostly noise.
        timed = time_side_by_side({name: f.content for name, f in self.files.items()}, max_seconds=10.0).files
        for row in timed:
            self.files[row["label"]].latency_ms = row["median_ms"]
        plain = self.files["plain int8"].latency_ms
        for f in self.files.values():
            f.latency_ratio = f.latency_ms / plain

    def frontier(self) -> list:
        """Every file tried: its size, latency against the plain int8 file, and measured figures."""
        return [{"candidate": f.name, "bytes": len(f.content), "latency_ratio": round(f.latency_ratio, 3),
                 "integer_only": f.integer_only, "on_xnnpack": f.on_xnnpack,
                 "int16_layers": f.measured["int16_layers"], "int4_layers": f.measured["int4_layers"],
                 "agreement": f.measured["agreement"],
                 "accuracy_drop": f.measured["accuracy_drop"], "met": f.measured["met"],
                 "within_budget": self.within(f)} for f in self.files.values()]  # fmt: skip

    def failure(self, allow_float, skipped=()) -> str:
        best = self.best()
        words = measured_words(best.measured, self.judge.task.kind)
        tried = ", ".join(self.files)
        if not self.budget.empty and not any(self.within(f) for f in self.files.values()):
            ratios = [f.latency_ratio for f in self.files.values() if f.latency_ratio is not None]
            fastest = f", the fastest {min(ratios):.2f}x the plain int8 file's latency" if ratios else ""
            return (
                f"No file tried fits the budget ({self.budget.describe()}): the smallest is "
                f"{min(len(f.content) for f in self.files.values()):,} bytes{fastest}. "
                f"Tried: {tried}.{_skipped_words(skipped)} Loosen the budget, or prune the model first (tfc.prune). "
                "Nothing was written."
            )
        float_words = "" if allow_float else " allow_float=True lets layers stay in float where int8 costs too much;"
        return (
            f"No int8 file meets the target ({self.judge.target.describe()})"
            + (f" within the budget ({self.budget.describe()})" if not self.budget.empty else "")
            + f". The closest, {best.name!r}, measured on the {len(self.judge.reference)} validation examples: "
            f"{words}. Tried: {tried}.{_skipped_words(skipped)}{float_words} Fine-tune with quantization-aware "
            "training (tfc.quantize.qat, or a `qat` stage in the recipe), export float16 or dynamic instead, or "
            "loosen the target. Nothing was written."
        )


@dataclasses.dataclass(frozen=True)
class Budget:
    """The most bytes, and the most latency as a multiple of the plain int8 file's, a chosen file may have."""

    bytes: int = None
    latency: float = None

    @classmethod
    def checked(cls, budget):
        if budget is None:
            return cls()
        unknown = sorted(set(budget) - {"bytes", "latency"}) if isinstance(budget, dict) else None
        if unknown is None or unknown or not budget:
            raise ValueError(
                "`budget` must be a dict with `bytes` (the file's largest size) and/or `latency` (its largest "
                f"1-thread latency as a multiple of the plain int8 file's, e.g. 1.5). Received: budget={budget!r}"
            )
        if budget.get("bytes") is not None:
            check_number("budget['bytes']", budget["bytes"], low=0, low_open=True)
        if budget.get("latency") is not None:
            check_number("budget['latency']", budget["latency"], low=0, low_open=True)
        return cls(budget.get("bytes"), budget.get("latency"))

    @property
    def empty(self) -> bool:
        return self.bytes is None and self.latency is None

    def allows(self, size, latency_ratio) -> bool:
        fits = self.bytes is None or size <= self.bytes
        return fits and (self.latency is None or latency_ratio is None or latency_ratio <= self.latency + 1e-9)

    def describe(self) -> str:
        parts = [f"<= {self.bytes:,} bytes"] if self.bytes is not None else []
        parts += [f"<= {self.latency:g}x the plain int8 latency"] if self.latency is not None else []
        return " and ".join(parts)

    def to_dict(self):
        return None if self.empty else dataclasses.asdict(self)


class _Judge:
    """Measures candidate files in LiteRT on the validation data, in the task's terms, and keeps every trial."""

    def __init__(self, model, x, y, target, task):
        self.target, self.x, self.y, self.task, self.trials = target, x, y, task, []
        self.output_name = model.output_names[0]
        self.reference = _first(model.predict(x if len(x) > 1 else x[0], batch_size=256, verbose=0))
        self.float_score = task.score(self.reference, y)[task.measure] if y is not None else None

    def measure(self, content, float_layers, equalized=False, candidate=None, int16_layers=(), int4_layers=()) -> dict:
        outputs = LiteRTModel(content).predict(self.x if len(self.x) > 1 else self.x[0])
        outputs = outputs[self.output_name] if isinstance(outputs, dict) else outputs
        compared = self.task.compare(outputs, self.reference)
        score = self.task.score(outputs, self.y)[self.task.measure] if self.y is not None else None
        measured = {
            "candidate": candidate,
            "float_layers": list(float_layers),
            "int16_layers": list(int16_layers),
            "int4_layers": list(int4_layers),
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



def _fallback_search(model, samples, judge, equalized, method):
    """The shortest prefix of the layers ranked by int8 noise that meets the target in float, then thinned."""
    calibration = Calibration(model, samples, method)
    ranking = _noise_ranking(model, calibration.errors, samples)

    def attempt(names):
        content = calibration.convert(list(names))
        return content, judge.measure(content, names, equalized)

    # The debugger needs one quantized op left to compare; all in float is the float32 file, not int8.
    found, tried = _fewest_layers(ranking[: len(ranking) - 1], attempt)
    if found is None:
        best = max((measured for _, measured in tried.values()), key=judge.rank) if tried else judge.trials[-1]
        raise AccuracyTargetError(
            f"No int8 file meets the target ({judge.target.describe()}). The closest, with "
            f"{len(best['float_layers'])} of the {len(ranking)} quantized layers in float, measured on the "
            f"{len(judge.reference)} validation examples: {measured_words(best, judge.task.kind)}. "
            "Fine-tune with quantization-aware training (tfc.quantize.qat, or a `qat` stage in the recipe), "
            "export float16 or dynamic instead, or loosen the target. Nothing was written."
        )
    return found


def _fewest_layers(ranking, attempt):
    """`(found, tried)`: the file of the shortest prefix of `ranking` that meets the target, thinned (or None).

    `attempt(names)` builds and measures a file: `(content, measured)`. Prefixes are tried by doubling and
    bisection; then each layer is dropped again if the target still holds. `tried` maps each set tried to its file.
    """
    tried = {}

    def result(names):
        key = tuple(names)
        if key not in tried:
            tried[key] = attempt(list(names))
        return tried[key]

    most = len(ranking)
    if most < 1:
        return None, tried
    count, failed = 1, 0
    while not result(ranking[:count])[1]["met"]:
        if count >= most:
            return None, tried
        failed, count = count, min(2 * count, most)
    low, high = failed + 1, count  # ranking[:high] meets the target
    while low < high:
        middle = (low + high) // 2
        if result(ranking[:middle])[1]["met"]:
            high = middle
        else:
            low = middle + 1
    names = ranking[:high]
    if len(names) <= _MOST_LAYERS_TO_THIN:
        for name in reversed(list(names)):
            fewer = [other for other in names if other != name]
            if fewer and result(fewer)[1]["met"]:
                names = fewer
    return result(names), tried


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
    shown = {"plain int8", "equalized int8"}
    lines += [f"  {trial['candidate']}: {measured_words(trial, kind)}"
              for trial in report["trials"] if trial["candidate"] and trial["candidate"] not in shown]  # fmt: skip
    layers = ", ".join(chosen["float_layers"]) or "none"
    precise = "".join(f"; layers with {words}: {', '.join(report[key])}"
                      for key, words in (("int16_layers", "int16 activations"), ("int4_layers", "int4 weights"))
                      if report.get(key))  # fmt: skip
    lines += [
        f"  chosen: {chosen['candidate']}; layers in float: {layers}{precise}; "
        f"{'integer-only' if report['integer_only'] else 'not integer-only'}, "
        f"{'every op on XNNPACK' if report['on_xnnpack'] else 'some ops off XNNPACK'}",
        f"  {measured_words(chosen, kind)}; {report['bytes']:,} bytes; "
        f"{report['int8_mac_share']:.1%} of MACs in int8; 1-thread latency "
        f"{report['latency_ms']['chosen']:.3f} ms (plain int8 {report['latency_ms']['plain int8']:.3f} ms)",
    ]
    if report["advice"]:
        lines.append("  " + report["advice"])
    lines += [f"  not tried: {words}" for words in report.get("skipped") or []]
    return "\n".join(lines)


def _skipped_words(skipped) -> str:
    return "".join(f" Not tried: {words}." for words in skipped)


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
