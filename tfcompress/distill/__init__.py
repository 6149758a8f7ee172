"""Distillation: train a small student from a large teacher with compile() and fit().

Examples:
  >>> distiller = tfc.Distiller(student=student, teacher=teacher)
  >>> distiller.compile(optimizer="adam", metrics=["accuracy"], alpha=0.1, temperature=10)
  >>> distiller.fit(x_train, y_train, epochs=3)
"""

from tfcompress.distill import keras3_distiller  # noqa: F401  its classes register with Keras 3, so its files load
from tfcompress.distill.distiller import DistillationBatch, Distiller
from tfcompress.distill.features import AttentionTransfer, FeatureLoss, Hint
from tfcompress.distill.losses import DecoupledKD, soft_target_kl
from tfcompress.distill.schedules import DistillationSchedule, linear

__all__ = [
    "AttentionTransfer",
    "DecoupledKD",
    "DistillationBatch",
    "DistillationSchedule",
    "Distiller",
    "FeatureLoss",
    "Hint",
    "linear",
    "soft_target_kl",
]
