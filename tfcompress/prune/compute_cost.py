"""What a Keras model costs to run: parameters and multiply-accumulates (MACs), layer by layer."""

import numpy as np

from tfcompress._graph import flat_copy, nested_models
from tfcompress._keras import keras
from tfcompress._model_guards import keras2_to_read


def cost(model) -> dict:
    """Parameters and MACs of one example's forward pass, counted from the layers' shapes.

    MACs are counted as the converter's `.tflite` file runs them (and as
    `tfc.litert.inspect` reports them): convolutions, depthwise convolutions and dense
    layers. BatchNormalization folds into the convolution before it, so costs no MACs.
    Recurrent layers count their matrix products at every time step, MultiHeadAttention
    its projections and its score and weighted-sum products (assuming self-attention).

    Args:
      model: a built Sequential or functional model of either Keras.

    Returns:
      A dict: `parameters`, `macs`, and `layers`, one `{"layer", "parameters", "macs"}`
      per layer with weights.

    Raises:
      TypeError: `model` is not a Keras model.
      ValueError: `model` is subclassed or not built.

    Examples:
      >>> tfc.prune.cost(model)["macs"]
      4241152  # the MNIST benchmark's CNN
    """
    model = keras2_to_read(model)
    if nested_models(model):  # count the base model's layers, as they run
        model = flat_copy(model)
    return total((layer, [w.shape for w in layer.get_weights()]) for layer in model.layers)


def total(layers_and_shapes) -> dict:
    """Sums `layer_cost` over `(layer, weight shapes)` pairs, as `cost` returns it."""
    rows = []
    for layer, shapes in layers_and_shapes:
        if shapes:
            parameters = int(sum(np.prod(shape) for shape in shapes))
            rows.append({"layer": layer.name, "parameters": parameters, "macs": layer_macs(layer, shapes)})
    return {
        "parameters": sum(row["parameters"] for row in rows),
        "macs": sum(row["macs"] for row in rows),
        "layers": rows,
    }


def layer_macs(layer, shapes) -> int:
    """MACs of one layer for one example, given its weights' shapes."""
    positions = int(np.prod(layer.output_shape[1:-1])) if len(layer.output_shape) > 2 else 1
    if isinstance(layer, (keras.layers.Embedding, keras.layers.BatchNormalization, keras.layers.LayerNormalization)):
        return 0  # a lookup; a normalization folds away or costs a few element-wise ops
    if isinstance(layer, (keras.layers.RNN, keras.layers.Bidirectional)):  # kernel and recurrent kernel, every step
        matrices = [shape for shape in shapes if len(shape) == 2 and shape[0] != 2]  # a GRU's 2-row bias is not one
        return int(layer.input_shape[1] or 1) * sum(int(np.prod(shape)) for shape in matrices)
    if isinstance(layer, keras.layers.MultiHeadAttention):  # projections, then scores and weighted sum per head
        kernels = [shape for shape in shapes if len(shape) == 3]
        heads, key_dim = kernels[0][1], kernels[0][2]
        return positions * sum(int(np.prod(shape)) for shape in kernels) + 2 * positions * positions * heads * key_dim
    if isinstance(layer, (keras.layers.Conv1DTranspose, keras.layers.Conv2DTranspose)):  # each input position scatters
        return int(np.prod(layer.input_shape[1:-1])) * int(np.prod(shapes[0]))
    if isinstance(layer, (keras.layers.SeparableConv1D, keras.layers.SeparableConv2D)):
        depthwise, pointwise = shapes[0], shapes[1]
        return positions * int(np.prod(depthwise) + np.prod(pointwise))
    if isinstance(layer, (keras.layers.DepthwiseConv1D, keras.layers.DepthwiseConv2D, keras.layers.Conv1D,
                          keras.layers.Conv2D, keras.layers.Conv3D, keras.layers.Dense)):  # fmt: skip
        return positions * int(np.prod(shapes[0]))
    return 0
