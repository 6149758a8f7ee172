"""Activation ranges chosen by a method other than min-max, written into the converter's calibrated file.

The converter calibrates a float file (each activation tensor's min and max), then
quantizes it. Between the two steps each tensor's range is replaced by the one the method
picks from the tensor's histogram, measured in LiteRT on the same examples; the
converter's own quantizer then builds the int8 file from those ranges, so biases, zero
points and requantization are the converter's. The model's inputs and outputs, and the
scores a softmax or sigmoid reads, keep their min-max ranges: the inputs and outputs fix the
file's I/O scales, and clipped logits tie the top classes.

"mse" weighs each channel's error by how strongly the layers reading the tensor read that
channel (the squared norm of their weights on it, BatchNorm already folded in): a channel
that is large but read weakly may be clipped, as its error barely reaches the next output.
Where a reader has no weights (an add, a concatenation), every channel weighs the same.
"""

import numpy as np
from ai_edge_litert import schema_py_generated as schema
from ai_edge_litert.interpreter import Interpreter, OpResolverType
from tensorflow.lite.python import convert

from tfcompress._choices import CALIBRATION_METHODS
from tfcompress._keras import tf
from tfcompress.export import graph_edit
from tfcompress.litert.interpreter import named_io

# Examples whose activations make the histograms; ranges from fewer miss the tails the methods weigh.
MIN_EXAMPLES = 100
_HISTOGRAM_EXAMPLES = 256
_BINS = 4096
_PERCENTILE = 99.99
_SHRINK = np.geomspace(0.02, 1.0, 160)  # the share of the min-max range each search tries
_CHANNEL_BINS = 512
# Operators whose second input is a weight tensor read channel by channel, and those that keep channels in place.
_WEIGHTED = {"FULLY_CONNECTED", "CONV_2D", "DEPTHWISE_CONV_2D"}
_CHANNELS_KEPT = {"MAX_POOL_2D", "AVERAGE_POOL_2D", "RESHAPE", "PAD", "MEAN"}
_SCORE_OPS = {"SOFTMAX", "LOGISTIC", "ARG_MAX"}


def check_method(calibration: str) -> None:
    """A clear error for a calibration method that is not one of `CALIBRATION_METHODS`."""
    if calibration not in CALIBRATION_METHODS:
        raise ValueError(
            f"`calibration` must be one of {CALIBRATION_METHODS}: min-max (the converter's own), the 99.99th "
            f"percentile, the range of least mean squared error, or of least KL divergence. "
            f"Received: calibration={calibration!r}"
        )


def check_examples(calibration: str, count: int) -> None:
    """A clear error when `count` calibration examples are too few for the method's histograms."""
    if calibration != "minmax" and count < MIN_EXAMPLES:
        raise ValueError(
            f'calibration="{calibration}" picks each range from a histogram of the layer\'s values, which needs '
            f"at least {MIN_EXAMPLES} calibration examples; `representative_data` has {count}. Pass more "
            'examples (a few hundred typical ones), or use calibration="minmax".'
        )


def quantized(converter, calibration: str, samples, names, io_dtype) -> bytes:
    """The int8 file of a configured converter, its activation ranges chosen by `calibration`."""
    converter._experimental_calibrate_only = True  # what TFLite's QuantizationDebugger sets, for the same reason
    calibrated = with_ranges(converter.convert(), calibration, samples, names)
    # The converter's own passes after calibration, as tf.lite.TFLiteConverter.convert calls them.
    io = tf.as_dtype(io_dtype)
    return convert.mlir_quantize(calibrated, input_data_type=io, output_data_type=io)


def with_ranges(calibrated: bytes, calibration: str, samples, names) -> bytes:
    """The calibrated file with each inner activation's min and max replaced by the method's range.

    `samples` holds one array per model input, in the order of `names`, the inputs' names.
    """
    if calibration == "minmax":
        return calibrated
    model = graph_edit.load(calibrated)
    graph = model.subgraphs[0]
    ends = set(graph.inputs) | set(graph.outputs)
    # A softmax's or sigmoid's input is the model's scores before it: clipped, the top classes tie.
    scores = {int(op.inputs[0]) for op in graph.operators if schema_name(model, op) in _SCORE_OPS}
    ranged = {index: (float(tensor.quantization.min[0]), float(tensor.quantization.max[0]))
              for index, tensor in enumerate(graph.tensors)
              if index not in ends and _has_range(tensor)}  # fmt: skip
    ranged = {index: (low, high) for index, (low, high) in ranged.items() if high > low and index not in scores}
    weights = channel_weights(model, graph, ranged) if calibration == "mse" else {}
    for index, histogram in histograms(calibrated, ranged, dict(zip(names, samples))).items():
        if not histogram.counts.any():  # only zeros seen: nothing to pick a range from, min-max it stays
            continue
        low, high = choose(histogram, calibration, weights.get(index))
        graph.tensors[index].quantization.min = np.array([low], np.float32)
        graph.tensors[index].quantization.max = np.array([high], np.float32)
    return graph_edit.save(model)


def _has_range(tensor) -> bool:
    quantization = tensor.quantization
    return quantization is not None and quantization.min is not None and len(quantization.min) == 1


def channel_weights(model, graph, ranged) -> dict:
    """Per tensor index, how strongly its readers read each channel (last axis); absent where that is unknown."""
    readers = {}
    for op in graph.operators:
        for position, index in enumerate(op.inputs):
            readers.setdefault(int(index), []).append((op, position))
    found = {}
    for index in ranged:
        channels = int(graph.tensors[index].shape[-1])
        total = _read_strength(model, graph, readers, index, channels, depth=0)
        if total is not None and np.any(total > 0):
            found[index] = total / total.mean()
    return found


def _read_strength(model, graph, readers, index, channels, depth):
    """Sum over the ops reading tensor `index` of their squared weights per channel, or None if one has none."""
    total = np.zeros(channels)
    for op, position in readers.get(index, []):
        name = schema_name(model, op)
        if name in _WEIGHTED and position == 0:
            weights = _constant(model, graph, op.inputs[1])
            if weights is None:
                return None
            if name == "DEPTHWISE_CONV_2D":  # (1, h, w, channels * multiplier)
                strength = np.square(weights).reshape(-1, channels, weights.shape[-1] // channels).sum(axis=(0, 2))
            else:  # (out, ..., in), a flattened input's features channel by channel
                strength = np.square(weights).reshape(-1, weights.shape[-1]).sum(axis=0)
                if len(strength) % channels:
                    return None
                strength = strength.reshape(-1, channels).sum(axis=0)
            total += strength
        elif name in _CHANNELS_KEPT and position == 0 and depth < 4:
            passed = _read_strength(model, graph, readers, int(op.outputs[0]), channels, depth + 1)
            if passed is None:
                return None
            total += passed
        else:
            return None
    return total if readers.get(index) else None


def _constant(model, graph, index):
    tensor = graph.tensors[index]
    data = model.buffers[tensor.buffer].data
    if data is None or tensor.type != 0:  # FLOAT32 constants only
        return None
    return np.frombuffer(bytes(data), np.float32).reshape(tensor.shape)


def schema_name(model, op) -> str:
    """The operator's builtin name, e.g. "CONV_2D"."""
    code = graph_edit.builtin(model, op)
    return next(name for name, value in vars(schema.BuiltinOperator).items() if value == code)


class Histogram:
    """The values one tensor took: counts in equal bins over its min-max range, and its exact zeros apart.

    Each channel (last axis) also has coarser counts of its own, which "mse" weighs by its readers.
    """

    def __init__(self, low, high, channels):
        self.low, self.high = min(low, 0.0), max(high, 0.0)
        self.edges = np.linspace(self.low, self.high, _BINS + 1)
        self.counts = np.zeros(_BINS)
        self.zeros = 0
        self.channel_edges = np.linspace(self.low, self.high, _CHANNEL_BINS + 1)
        self.channel_counts = np.zeros((channels, _CHANNEL_BINS))

    def add(self, values):
        by_channel = values.reshape(-1, self.channel_counts.shape[0])
        values = values.ravel()
        exact_zeros = values == 0  # a ReLU's zeros sit on the zero point: no rounding error, whatever the range
        self.zeros += int(exact_zeros.sum())
        self.counts += np.histogram(values[~exact_zeros], self.edges)[0]
        width = (self.high - self.low) / _CHANNEL_BINS or 1.0
        bins = np.clip(((by_channel - self.low) / width).astype(np.int64), 0, _CHANNEL_BINS - 1)
        flat = (bins + _CHANNEL_BINS * np.arange(by_channel.shape[1]))[by_channel != 0]
        self.channel_counts += np.bincount(flat, minlength=self.channel_counts.size).reshape(self.channel_counts.shape)

    @property
    def centers(self):
        return (self.edges[:-1] + self.edges[1:]) / 2


def histograms(calibrated: bytes, ranged: dict, samples: dict) -> dict:
    """A `Histogram` per tensor index in `ranged`, of its values in LiteRT on the first calibration examples.

    `samples` maps each input's name to its examples.
    """
    interpreter = Interpreter(
        model_content=calibrated,
        experimental_preserve_all_tensors=True,
        experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES,
    )
    interpreter.allocate_tensors()
    inputs, _ = named_io(interpreter)
    if set(inputs) != set(samples):  # a file whose inputs are not named after the model's: by position
        samples = dict(zip(inputs, samples.values()))
    shapes = {detail["index"]: detail["shape"] for detail in interpreter.get_tensor_details()}
    found = {index: Histogram(*bounds, channels=int(shapes[index][-1]) if len(shapes[index]) else 1)
             for index, bounds in ranged.items()}  # fmt: skip
    for example in range(min(len(next(iter(samples.values()))), _HISTOGRAM_EXAMPLES)):
        interpreter.reset_all_variables()
        for name, detail in inputs.items():
            interpreter.set_tensor(detail["index"], samples[name][example : example + 1].astype(detail["dtype"]))
        interpreter.invoke()
        for index, histogram in found.items():
            histogram.add(interpreter.get_tensor(index))
    return found


def choose(histogram: Histogram, calibration: str, weights=None):
    """`(low, high)`: the range `calibration` picks for the values in `histogram` (channels weighed by `weights`)."""
    if calibration == "percentile":
        return _percentile(histogram)
    shrinks = _SHRINK if calibration == "mse" else _SHRINK[_SHRINK * _BINS >= 2 * 255]
    if calibration == "mse":
        weights = np.ones(len(histogram.channel_counts)) if weights is None else weights
        errors = [_squared_error(histogram, shrink, weights) for shrink in shrinks]
    else:
        # KL weighs the shape of the values, not the rare large ones: unbounded, it clipped the first layers of
        # digit models (mostly background) to a fraction of their range. It clips no more than the percentile.
        low, high = _percentile(histogram)
        floor = max(high / histogram.high if histogram.high > 0 else 0.0,
                    low / histogram.low if histogram.low < 0 else 0.0)  # fmt: skip
        shrinks = shrinks[shrinks >= floor * (1 - 1e-9)]
        if not len(shrinks):
            return histogram.low, histogram.high
        errors = [_kl_divergence(histogram, shrink) for shrink in shrinks]
    best = float(shrinks[int(np.argmin(errors))])
    return histogram.low * best, histogram.high * best


def _percentile(histogram):
    cumulative = np.cumsum(histogram.counts) / max(histogram.counts.sum(), 1)
    tail = 1 - _PERCENTILE / 100
    low = histogram.edges[np.searchsorted(cumulative, tail)] if histogram.low < 0 else 0.0
    high = histogram.edges[min(np.searchsorted(cumulative, 1 - tail) + 1, _BINS)]
    return min(float(low), 0.0), max(float(high), 0.0)


def _squared_error(histogram, shrink, weights):
    """The squared error of 8-bit rounding over [shrink * low, shrink * high] and of clipping outside it, each
    channel's weighed by `weights`."""
    low, high = histogram.low * shrink, histogram.high * shrink
    step = (high - low) / 255
    edges = histogram.channel_edges
    centers = (edges[:-1] + edges[1:]) / 2
    inside = (centers >= low) & (centers <= high)
    clipped = np.where(centers > high, centers - high, np.where(centers < low, low - centers, 0.0))
    per_channel = histogram.channel_counts @ (inside * step**2 / 12 + clipped**2)
    return float(weights @ per_channel)


def _kl_divergence(histogram, shrink):
    """KL(P || Q): P the values clipped to the range, Q the same merged into 255 levels (TensorRT's entropy search).

    `choose` searches only ranges at least as wide as the 99.99th percentile's.
    """
    centers, counts = histogram.centers, histogram.counts
    low, high = histogram.low * shrink, histogram.high * shrink
    inside = np.flatnonzero((centers >= low) & (centers <= high))
    if len(inside) < 255 or counts.sum() == 0:
        return np.inf
    kept = counts[inside].astype(np.float64)
    reference = kept.copy()
    reference[0] += counts[: inside[0]].sum()  # what clipping folds onto the range's ends
    reference[-1] += counts[inside[-1] + 1 :].sum()
    # Q is the kept values alone, merged into the levels: the clipped mass is what it misses.
    merged = np.zeros_like(kept)
    for group in np.array_split(np.arange(len(kept)), 255):
        used = group[kept[group] > 0]
        if len(used):
            merged[used] = kept[group].sum() / len(used)
    present = reference > 0
    p = reference[present] / reference.sum()
    q = np.maximum(merged[present], 1e-4) / merged.sum()  # a bin Q leaves empty costs much, not infinitely much
    return float(np.sum(p * np.log(p / q)))
