"""Quantization: quantization-aware training and weight clustering over TF-MOT.

QAT is sparsity-preserving on pruned models and cluster-preserving on request. Cross-layer
equalization (`equalize`), bias correction (`correct_bias`), weight clipping (`clip_weights`) and learned
rounding (`adaround`) ready a model for post-training int8.

Examples:
  >>> q = tfc.quantize.qat(pruned_and_stripped_model, representative_data=x_train)
  >>> q.compile(optimizer="adam", loss=loss)
  >>> q.fit(x, y, epochs=2)
  >>> c = tfc.quantize.cluster(model, clusters=16)   # then compile, fit, strip_clustering
"""

from tfcompress.quantize.bias_correction import correct_bias
from tfcompress.quantize.clustering import cluster, is_clustered, strip_clustering, unique_weights
from tfcompress.quantize.equalization import equalize
from tfcompress.quantize.learned_rounding import adaround
from tfcompress.quantize.quantization_aware import QuantizationAwareModel, is_quantization_aware, qat, quantize_scope
from tfcompress.quantize.weight_clipping import clip_weights

__all__ = [
    "QuantizationAwareModel",
    "adaround",
    "clip_weights",
    "cluster",
    "correct_bias",
    "equalize",
    "is_clustered",
    "is_quantization_aware",
    "qat",
    "quantize_scope",
    "strip_clustering",
    "unique_weights",
]
