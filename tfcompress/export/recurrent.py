"""Recurrent layers made convertible: a fixed batch, and unrolled loops where the converter cannot calibrate one.

What the converter does with each recurrent layer: docs/design/export.md.
"""

from tfcompress._graph import flat_copy
from tfcompress._keras import keras
from tfcompress.quantize import quantize_scope

# The converter fuses these into one kernel; other RNNs stay a loop.
_FUSED = (keras.layers.LSTM,)


def recurrent_layers(model) -> list:
    """The RNN layers of `model` (LSTM, GRU, SimpleRNN, any `keras.layers.RNN`), Bidirectional ones included."""
    found = []
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            found.extend(recurrent_layers(layer))
        elif isinstance(layer, (keras.layers.RNN, keras.layers.Bidirectional)):
            found.append(layer)
    return found


def prepare(model, calibrated: bool, batch_size):
    """`(model, batch_size, notes)` the converter can handle: the batch fixed, loops unrolled where calibrated."""
    layers = recurrent_layers(model)
    if not layers:
        return model, batch_size, []
    notes = []
    if any(isinstance(_cell_layer(layer), _FUSED) for layer in layers):
        notes.append((
            "The fused LSTM kernels keep their state in variable tensors between invocations: reset them before "
            "each new sequence (interpreter.reset_all_variables(); on Android, Interpreter.resetVariableTensors()).",
            True,
        ))  # fmt: skip
    if batch_size is None:
        batch_size = 1
        notes.append((
            f"The batch is fixed to 1: the converter lowers the loops of {[layer.name for layer in layers]} "
            "only with a static batch.",
            False,
        ))  # fmt: skip
    loops = [layer for layer in layers if not isinstance(_cell_layer(layer), _FUSED)] if calibrated else []
    variable = [layer.name for layer in loops if layer.input_shape[1] is None]
    if variable:
        raise ValueError(
            f"Layers {variable} run a loop over a variable number of time steps. TFLite has no fused kernel "
            "for them, and the converter crashes when it calibrates such a loop, so they must be unrolled, which "
            "needs a fixed length. Give the input a fixed number of steps (keras.Input((steps, features))), or "
            "export with mode='dynamic' or 'float32'."
        )
    steps = {layer.name: layer.input_shape[1] for layer in loops}
    if steps:
        notes.append((
            f"{sorted(steps)} unrolled over their time steps {sorted(set(steps.values()))}: TFLite has no fused "
            "kernel for them and the converter crashes calibrating their loop. The int8 file holds their weights "
            "once per step.",
            True,
        ))  # fmt: skip
    # A copy with the batch fixed in its inputs, so every converter path (the QuantizationDebugger's too) sees it.
    with quantize_scope():  # a quantization-aware model's wrappers are rebuilt from their configs too
        copy = flat_copy(
            model, substitute=lambda layer, args, kwargs: _unrolled(layer, loops, args, kwargs), batch_size=batch_size
        )
    return copy, batch_size, notes


def _cell_layer(layer):
    return layer.forward_layer if isinstance(layer, keras.layers.Bidirectional) else layer


def _unrolled(layer, loops, args, kwargs):
    if not any(layer is loop for loop in loops):
        return None
    config = layer.get_config()
    for part in ("layer", "backward_layer") if isinstance(layer, keras.layers.Bidirectional) else (None,):
        target = config if part is None else (config.get(part) or {}).get("config")
        if target is not None:
            target["unroll"] = True
    return layer.__class__.from_config(config), args, kwargs
