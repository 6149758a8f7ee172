"""Quantization: quantization-aware training over TF-MOT, sparsity-preserving on pruned models.

Example:
  >>> q = tfc.quantize.qat(pruned_and_stripped_model)
  >>> q.compile(optimizer="adam", loss=loss)
  >>> q.fit(x, y, epochs=2)
"""

from tfcompress.quantize.qat import is_quantization_aware, qat, quantize_scope

__all__ = ["is_quantization_aware", "qat", "quantize_scope"]
