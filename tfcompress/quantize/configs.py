"""QuantizeConfigs for the layers TF-MOT's default 8-bit scheme has none for, and which layers get which.

TF-MOT quantizes Conv2D, Dense, DepthwiseConv2D, BatchNormalization after a convolution,
and a list of simple layers. Users' models also hold Conv1D, Embedding, attention,
normalization, rescaling and element-wise layers; each gets a `LayerQuantizeConfig` here,
given through TF-MOT's public `quantize_annotate_layer`. What is left (recurrent layers,
custom layers) stays in float during training, and the converter quantizes it from
calibration data at export.
"""

import functools

from tfcompress import _augmentation
from tfcompress._keras import keras, tfmot
from tfcompress.quantize.ops import ScalarArithmetic, WrappableMultiHeadAttention

_quantizers = tfmot.quantization.keras.quantizers


@keras.utils.register_keras_serializable(package="tfcompress")
class LayerQuantizeConfig(tfmot.quantization.keras.QuantizeConfig):
    """Fake-quantizes a layer's named weights, its activation functions and its output, as TFLite's int8 does.

    Args:
      weights: attribute paths of the weights to quantize, e.g. `["kernel"]` or
        `["_query_dense.kernel"]` for a sublayer's.
      activations: attribute names of activation functions to quantize after (`["activation"]`).
      quantize_output: quantize the layer's output.

    Weights are quantized per tensor: TF-MOT's per-channel quantizer handles only 2-D and
    4-D kernels (not Conv1D's 3-D one).

    Examples:
      >>> tfmot.quantization.keras.quantize_annotate_layer(conv1d, LayerQuantizeConfig(["kernel"], ["activation"]))
    """

    def __init__(self, weights=(), activations=(), quantize_output=True):
        self.weights = list(weights)
        self.activations = list(activations)
        self.quantize_output = quantize_output

    @staticmethod
    def _weight_quantizer():
        return _quantizers.LastValueQuantizer(num_bits=8, per_axis=False, symmetric=True, narrow_range=True)

    @staticmethod
    def _activation_quantizer():
        return _quantizers.MovingAverageQuantizer(num_bits=8, per_axis=False, symmetric=False, narrow_range=False)

    def get_weights_and_quantizers(self, layer):
        """Each named weight with its quantizer."""
        return [(_get(layer, path), self._weight_quantizer()) for path in self.weights]

    def get_activations_and_quantizers(self, layer):
        """Each named activation function with its quantizer."""
        return [(getattr(layer, name), self._activation_quantizer()) for name in self.activations]

    def set_quantize_weights(self, layer, quantize_weights):
        """Puts the fake-quantized weights where the layer reads them."""
        for path, weight in zip(self.weights, quantize_weights):
            owner, _, name = path.rpartition(".")
            setattr(_get(layer, owner) if owner else layer, name, weight)

    def set_quantize_activations(self, layer, quantize_activations):
        """Puts the quantize-aware activation functions in place."""
        for name, activation in zip(self.activations, quantize_activations):
            setattr(layer, name, activation)

    def get_output_quantizers(self, layer):
        """The output's quantizer, if the output is quantized."""
        return [self._activation_quantizer()] if self.quantize_output else []

    def get_config(self):
        """The constructor arguments."""
        return {
            "weights": self.weights,
            "activations": self.activations,
            "quantize_output": self.quantize_output,
        }


def _get(layer, path):
    return functools.reduce(getattr, path.split("."), layer) if path else layer


_OUTPUT_ONLY = LayerQuantizeConfig()
_PASS_THROUGH = LayerQuantizeConfig(quantize_output=False)
# Layers TF-MOT's default registry lacks, and their configs. Element-wise and normalizing
# layers quantize their output, as TFLite's int8 kernels do; layers that only move values
# (pooling by max, repetition, reshapes) keep their input's quantization.
_CONFIGS = {
    keras.layers.Conv1D: LayerQuantizeConfig(["kernel"], ["activation"], quantize_output=False),
    keras.layers.Embedding: LayerQuantizeConfig(["embeddings"]),
    WrappableMultiHeadAttention: LayerQuantizeConfig(
        [f"_{part}_dense.kernel" for part in ("query", "key", "value", "output")]
    ),
    keras.layers.LayerNormalization: _OUTPUT_ONLY,
    keras.layers.BatchNormalization: _OUTPUT_ONLY,  # standalone; after a convolution TF-MOT folds it
    keras.layers.Rescaling: _OUTPUT_ONLY,
    keras.layers.Normalization: _OUTPUT_ONLY,
    keras.layers.Multiply: _OUTPUT_ONLY,
    keras.layers.Subtract: _OUTPUT_ONLY,
    keras.layers.Average: _OUTPUT_ONLY,
    keras.layers.Maximum: _OUTPUT_ONLY,
    keras.layers.Minimum: _OUTPUT_ONLY,
    keras.layers.Activation: _OUTPUT_ONLY,  # activations TF-MOT's own config refuses (hard_sigmoid, ...)
    ScalarArithmetic: _OUTPUT_ONLY,
    keras.layers.MaxPooling1D: _PASS_THROUGH,
    keras.layers.UpSampling1D: _PASS_THROUGH,
    keras.layers.RepeatVector: _PASS_THROUGH,
    # Augmentation is an identity at inference; crops and resizes keep the range: all keep the input's scale.
    **dict.fromkeys(_augmentation.IDENTITIES_AT_INFERENCE + _augmentation.SPATIAL, _PASS_THROUGH),
}
# Where TF-MOT's own config does not match TFLite's int8 kernel: AVERAGE_POOL_2D needs its output on its input's
# scale ("quantization parameters violate the same scale constraint" for DenseNet121's transitions).
_OVERRIDES = {keras.layers.AveragePooling1D: _PASS_THROUGH, keras.layers.AveragePooling2D: _PASS_THROUGH}
# The layers TF-MOT's transforms fold a following BatchNormalization into.
_FOLDS_BATCHNORM = (keras.layers.Conv2D, keras.layers.DepthwiseConv2D, keras.layers.Dense)


def config_for(layer, registry, inbound, readers=None):
    """How QAT treats `layer`: TF-MOT's own config, one of ours, or float, with the reason."""
    if type(layer) in _OVERRIDES:
        return _OVERRIDES[type(layer)], None
    folded_batchnorm = isinstance(layer, keras.layers.BatchNormalization) and any(
        _folds_into(source, readers or {}) for source in inbound
    )
    if folded_batchnorm or _registry_supports(registry, layer):
        return "default", None
    if type(layer) in _CONFIGS:
        return _CONFIGS[type(layer)], None
    if type(layer).__name__ == "TFOpLambda":
        return None, f"the TensorFlow op tf.{layer.symbol} has no quantization-aware form"
    return None, f"TF-MOT has no quantization-aware form of {type(layer).__name__} layers"


def _folds_into(source, readers) -> bool:
    """Whether TF-MOT folds a following BatchNormalization into `source`."""
    activation = getattr(getattr(source, "activation", None), "__name__", "linear")
    return type(source) in _FOLDS_BATCHNORM and activation == "linear" and readers.get(source.name, 1) == 1


def _registry_supports(registry, layer) -> bool:
    if not registry.supports(layer):
        return False
    try:  # some supported classes refuse some settings (an Activation('hard_sigmoid'))
        config = registry.get_quantize_config(layer)
        config.get_output_quantizers(layer)
        config.get_activations_and_quantizers(layer)
    except (ValueError, RuntimeError, AttributeError):
        return False
    return True
