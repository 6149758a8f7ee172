"""Activation ranges of a quantization-aware model measured on data, instead of TF-MOT's starting [-6, 6].

TF-MOT starts every activation range at [-6, 6] and moves it by an exponential moving
average with decay 0.999 during training: a range needs thousands of steps to reach the
values the layer produces. Until then outputs past 6 are clipped there (the tests' digits
CNN, fed pixels of 0..20, reaches 75 in its Dense layer), and small outputs get few of the
256 int8 steps: a short fine-tune trains, and the int8 export uses, ranges far from the model's.

TF-MOT offers no way to set them, so they are measured through its own update: with the
range at `r`, a training-mode pass over a batch whose range is `b` leaves
`0.999 r + 0.001 b` in the variable, from which `b` is read back. Each pass is quantized
with the ranges found by the pass before, so a few passes settle ranges that downstream
layers measured behind wrong upstream ones. The passes run in training mode (TF-MOT updates
ranges only then) with BatchNormalization and dropout as in inference, so the ranges are
those of the graph the int8 export converts.
"""

import contextlib

import numpy as np

from tfcompress import _errors
from tfcompress._keras import keras, tfmot
from tfcompress.data.arrays import input_arrays, input_specs

# The decay TF-MOT 0.8's MovingAverageQuantizer passes to its moving-average update.
_TFMOT_EMA_DECAY = 0.999
_MAX_PASSES = 5
_SETTLED = 0.01  # a pass that moves no range by more than 1% of its width ends the search
_BATCH = 128

_MovingAverage = tfmot.quantization.keras.quantizers.MovingAverageQuantizer


def initialize_ranges(model, representative_data, *, samples: int = 512) -> int:
    """Sets the activation ranges of a quantization-aware model to those of `representative_data`."""
    arrays = input_arrays(representative_data, input_specs(model), limit=samples, argument="representative_data")
    named = _moving_average_ranges(model)
    if not named:
        return 0
    ranges = [pair for _, pair in named]
    measured = {id(variable) for _, pair in named + _ranges_set_by_training(model) for variable in pair}
    others = [(variable, variable.numpy()) for variable in model.variables if id(variable) not in measured]
    estimate = [(low.numpy(), high.numpy()) for low, high in ranges]
    with _as_in_inference(model):
        for _ in range(_MAX_PASSES):
            found = _one_pass(model, ranges, estimate, arrays)
            moved = max(float(np.max(np.abs(new - old) / np.maximum(hi - lo, 1e-6)))
                        for (lo, hi), pair in zip(estimate, found) for new, old in zip(pair, (lo, hi)))  # fmt: skip
            estimate = found
            if moved < _SETTLED:
                break
    _check_finite(model, [name for name, _ in named], estimate)
    for (low, high), (low_value, high_value) in zip(ranges, estimate):
        low.assign(np.minimum(low_value, 0.0))
        high.assign(np.maximum(high_value, 0.0))
    # The passes ran in training mode: whatever else that moves (optimizer steps, the statistics of layers other
    # than BatchNormalization) is put back; the weight ranges and the input's all-values range were set from the
    # weights and the data, and are kept (the model then predicts as it will once trained).
    for variable, value in others:
        variable.assign(value)
    return len(ranges)


@contextlib.contextmanager
def _as_in_inference(model):
    """BatchNormalization on its moving statistics and dropout off, though the passes run in training mode."""
    layers = [layer for wrapper in model.layers for layer in (wrapper, getattr(wrapper, "layer", None)) if layer]
    batchnorms = [layer for layer in layers if isinstance(layer, keras.layers.BatchNormalization)]
    dropouts = [layer for layer in layers if isinstance(layer, keras.layers.Dropout)]
    trainable, rates = [layer.trainable for layer in batchnorms], [layer.rate for layer in dropouts]
    try:
        for layer in batchnorms:  # a frozen BatchNormalization normalizes with its moving statistics
            layer.trainable = False
        for layer in dropouts:
            layer.rate = 0.0
        yield
    finally:
        for layer, value in zip(batchnorms, trainable):
            layer.trainable = value
        for layer, value in zip(dropouts, rates):
            layer.rate = value


def _one_pass(model, ranges, estimate, arrays):
    """The range each quantizer sees over `arrays`, every quantizer set to `estimate`."""
    found = [(np.full_like(low, np.inf), np.full_like(high, -np.inf)) for low, high in estimate]
    count = len(arrays[0])
    for start in range(0, count, _BATCH):
        for (low, high), (low_value, high_value) in zip(ranges, estimate):
            low.assign(low_value)
            high.assign(high_value)
        batch = [array[start : start + _BATCH] for array in arrays]
        model(batch if len(batch) > 1 else batch[0], training=True)
        for index, ((low, high), (low_value, high_value)) in enumerate(zip(ranges, estimate)):
            seen_low = (low.numpy() - _TFMOT_EMA_DECAY * low_value) / (1 - _TFMOT_EMA_DECAY)
            seen_high = (high.numpy() - _TFMOT_EMA_DECAY * high_value) / (1 - _TFMOT_EMA_DECAY)
            found[index] = (np.minimum(found[index][0], seen_low), np.maximum(found[index][1], seen_high))
    return found


def not_finite(model) -> list:
    """Names of the layers of a quantization-aware model whose quantization ranges hold NaN or infinity."""
    named = _moving_average_ranges(model) + _ranges_set_by_training(model)
    return _holding_nan((name, (low.numpy(), high.numpy())) for name, (low, high) in named)


def _holding_nan(named_ranges) -> list:
    """The names (each once, in order) of `(name, (low, high))` ranges with a value that is not finite."""
    return list(dict.fromkeys(name for name, (low, high) in named_ranges
                              if not (np.all(np.isfinite(low)) and np.all(np.isfinite(high)))))  # fmt: skip


def _check_finite(model, names, estimate):
    broken = _holding_nan(zip(names, estimate))
    if broken:
        # Seen on keras.applications.MobileNetV2 with random weights: its activations shrink block by block
        # (1e-6 wide by block 7), TF-MOT's fake quantization returns NaN there, and every range after it is NaN;
        # the int8 file built from such a model crashes LiteRT at allocate_tensors.
        shown = _errors.first_few(map(repr, broken), 3)
        raise ValueError(
            f"Measuring activation ranges of {model.name!r} on `representative_data` gave NaN at {shown}: TF-MOT's "
            "fake quantization breaks down where a layer's outputs are all (nearly) zero, and an int8 file of it "
            "would not load. An untrained model does this (random keras.applications weights shrink activations "
            "layer by layer). Train the float model, or load its trained weights, before `tfc.quantize.qat`; or "
            "call it without `representative_data` to start from TF-MOT's [-6, 6] ranges."
        )


def _moving_average_ranges(model):
    """`(layer name, (min, max))` for every moving-average quantizer in the model's TF-MOT wrappers."""
    ranges = []
    for layer in model.layers:
        quantized = []
        if isinstance(getattr(layer, "quantizer", None), _MovingAverage):  # QuantizeLayer, on the inputs
            quantized.append(layer.quantizer_vars)
        for activation in getattr(layer, "_quantize_activations", []):
            if isinstance(activation.quantizer, _MovingAverage):
                quantized += [getattr(activation, name) for name in ("_pre_activation_vars", "_post_activation_vars")
                              if hasattr(activation, name)]  # fmt: skip
        outputs = getattr(layer, "_output_quantizers", None)
        if outputs and isinstance(outputs[0], _MovingAverage):
            quantized.append(layer._output_quantizer_vars)
        ranges += [(_name(layer), (variables["min_var"], variables["max_var"])) for variables in quantized]
    return ranges


def _ranges_set_by_training(model):
    """`(layer name, (min, max))` that a training-mode pass sets outright: weight ranges, and the input's range."""
    found = [(_name(layer), variables)
             for layer in model.layers for _, _, variables in getattr(layer, "_weight_vars", [])]  # fmt: skip
    found += [(_name(layer), layer.quantizer_vars) for layer in model.layers if hasattr(layer, "quantizer_vars")]
    return [(name, (variables["min_var"], variables["max_var"])) for name, variables in found if "min_var" in variables]


def _name(layer) -> str:
    """A TF-MOT wrapper's name is its layer's with "quant_" before it: the user's name is the layer's."""
    return getattr(getattr(layer, "layer", None), "name", layer.name)
