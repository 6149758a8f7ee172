"""AdaRound: learn, per layer, whether each weight rounds up or down to its int8 step.

Rounding every weight to its nearest int8 step is best weight by weight, not for the
layer's output: the errors add up over a channel's inputs. AdaRound (Nagel et al., 2020,
as in AIMET) relaxes each choice to a soft value h(V) in [0, 1] and learns V so that the
layer's output on calibration inputs stays close to the float one, with a regularizer
that drives every h to 0 or 1. The rounded weights sit exactly on the converter's grid
(symmetric int8 per output channel, scale = largest |weight| / 127), so the int8 file
stores exactly them; BatchNormalization folded in later scales whole output channels,
which changes neither the grid nor the choice.
"""

import numpy as np

from tfcompress._graph import clone_with_weights, flat_copy, nested_models
from tfcompress._keras import keras, tf
from tfcompress._model_guards import ensure_graph_model
from tfcompress.data.arrays import input_arrays, input_specs

_L = keras.layers
_ROUNDED = (_L.Conv1D, _L.Conv2D, _L.DepthwiseConv2D, _L.Dense)
_TRANSPOSED = (_L.Conv1DTranspose, _L.Conv2DTranspose)
_STEPS = 127  # narrow range: weights use [-127, 127]
_ZETA, _GAMMA = 1.1, -0.1  # the rectified sigmoid's stretch (AdaRound's defaults)
_REGULARIZATION = 0.01
_BETA = (20.0, 2.0)  # the regularizer's sharpness, annealed after the first 20% of the steps
_WARM_UP = 0.2
_BATCH = 32
MIN_EXAMPLES = 64


def adaround(model, representative_data, *, iterations: int = 500, examples: int = 256):
    """A copy of `model` whose Conv, DepthwiseConv and Dense kernels are rounded to int8 steps by AdaRound.

    Args:
      model: a built Sequential or functional Keras 2 model; a nested base is flattened.
      representative_data: calibration inputs, as `tfc.export.to_tflite` takes them (at least 64 examples).
      iterations: optimization steps per layer.
      examples: use at most this many examples.

    Returns:
      `(rounded, layers)`: the new model, whose kernels the int8 converter stores exactly, and the names of
      the layers rounded. `model` is not modified.

    Raises:
      TypeError: `model` is not a Keras 2 model.
      ValueError: fewer than 64 examples, or data that does not fit the model.

    Examples:
      >>> rounded, layers = tfc.quantize.adaround(model, x_train[:500])
      >>> tfc.export.to_tflite(rounded, "model.tflite", representative_data=x_train[:500])
    """
    model = ensure_graph_model(model)
    if not (isinstance(iterations, int) and iterations >= 1):
        raise ValueError(f"`iterations` must be a positive int. Received: iterations={iterations!r}")
    samples = input_arrays(representative_data, input_specs(model), limit=examples, argument="representative_data")
    if len(samples[0]) < MIN_EXAMPLES:
        raise ValueError(
            f"AdaRound learns each layer's rounding from its inputs on calibration data and needs at least "
            f"{MIN_EXAMPLES} examples; `representative_data` has {len(samples[0])}. Pass a few hundred typical "
            "examples."
        )
    copy = flat_copy(model) if nested_models(model) else clone_with_weights(model)
    layers = rounded_layers(copy)
    batch = samples if len(samples) > 1 else samples[0]
    for layer in layers:
        inputs = keras.Model(copy.inputs, layer.input).predict(batch, batch_size=64, verbose=0)
        weights = layer.get_weights()
        weights[0] = _rounded_kernel(layer, weights[0], inputs.astype(np.float32), iterations)
        layer.set_weights(weights)
    return copy, [layer.name for layer in layers]


def _rounded_kernel(layer, kernel, inputs, iterations):
    """The kernel on its int8 grid, each weight rounded up or down as AdaRound learned."""
    channels = channels_last(layer, kernel)  # (..., channels): one scale per last-axis entry
    largest = np.abs(channels.reshape(-1, channels.shape[-1])).max(axis=0)
    scale = np.where(largest > 0, largest / _STEPS, 1.0).astype(np.float32)
    steps = channels / scale
    floor = np.floor(steps)
    # The largest weight of each channel stays exactly on +-127: it fixes the scale the converter picks.
    fixed = np.isclose(np.abs(steps), _STEPS)
    rest = np.clip(steps - floor, 0.01, 0.99)
    start = np.log((rest - _GAMMA) / (_ZETA - rest))  # h(start) = rest
    v = tf.Variable(np.where(fixed, 0.0, start).astype(np.float32))
    floor_, scale_, fixed_ = (tf.constant(a, tf.float32) for a in (floor, scale, fixed))
    nearest = np.clip(np.round(steps), -_STEPS, _STEPS)

    def kernel_of(grid):
        return tf.reshape(grid * scale_, kernel.shape)

    def soft():
        h = tf.clip_by_value(tf.sigmoid(v) * (_ZETA - _GAMMA) + _GAMMA, 0.0, 1.0)
        h = tf.where(fixed_ > 0, tf.round(steps - floor), h)
        return h, tf.clip_by_value(floor_ + h, -_STEPS, _STEPS)

    optimizer = keras.optimizers.Adam(0.01)
    float_kernel = tf.constant(kernel)

    @tf.function
    def learn(x, beta, regularized):
        target = _output(layer, x, float_kernel)
        with tf.GradientTape() as tape:
            h, grid = soft()
            error = tf.reduce_mean(tf.square(_output(layer, x, kernel_of(grid)) - target))
            regularizer = tf.reduce_mean(1 - tf.pow(tf.abs(2 * h - 1), beta))
            loss = error + regularized * _REGULARIZATION * regularizer
        optimizer.apply_gradients([(tape.gradient(loss, v), v)])

    rng = np.random.default_rng(0)
    for step in range(iterations):
        x = tf.constant(inputs[rng.choice(len(inputs), min(_BATCH, len(inputs)), replace=False)])
        progress = max(0.0, (step / iterations - _WARM_UP) / (1 - _WARM_UP))
        beta = _BETA[0] + (_BETA[1] - _BETA[0]) * progress
        learn(x, tf.constant(beta, tf.float32), tf.constant(float(progress > 0), tf.float32))
    h, _ = soft()
    learned = np.clip(floor + (h.numpy() >= 0.5), -_STEPS, _STEPS)
    x = tf.constant(inputs[: 4 * _BATCH])
    target = _output(layer, x, float_kernel)
    errors = [float(tf.reduce_mean(tf.square(_output(layer, x, kernel_of(grid)) - target)))
              for grid in (learned.astype(np.float32), nearest.astype(np.float32))]  # fmt: skip
    # Never worse than rounding to nearest on the layer's own output.
    grid = learned if errors[0] <= errors[1] else nearest
    return (grid * scale).reshape(kernel.shape).astype(kernel.dtype)


def rounded_layers(model) -> list:
    """The layers whose kernels the converter quantizes per output channel: Conv1D/2D, DepthwiseConv2D, Dense."""
    return [layer for layer in model.layers
            if has_channel_kernel(layer) and len(layer.inbound_nodes) == 1 and getattr(layer, "groups", 1) == 1]


def has_channel_kernel(layer) -> bool:
    """A Conv1D, Conv2D, DepthwiseConv2D or Dense layer (not a transposed convolution)."""
    return isinstance(layer, _ROUNDED) and not isinstance(layer, _TRANSPOSED)


def channels_last(layer, kernel):
    """The kernel with its output channels on the last axis: a depthwise kernel's (in, multiplier) as one."""
    if isinstance(layer, _L.DepthwiseConv2D):
        return kernel.reshape(kernel.shape[:-2] + (-1,))
    return kernel


def _output(layer, x, kernel):
    """The layer's linear output (no bias, no activation) with `kernel`."""
    if isinstance(layer, _L.Dense):
        return tf.tensordot(x, kernel, axes=[[-1], [0]])
    if isinstance(layer, _L.DepthwiseConv2D):
        return tf.nn.depthwise_conv2d(x, kernel, strides=(1,) + tuple(layer.strides) + (1,),
                                      padding=layer.padding.upper(), dilations=layer.dilation_rate)  # fmt: skip
    return layer.convolution_op(x, kernel)
