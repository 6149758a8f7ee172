"""Distillation: train a small student from a large teacher with compile() and fit().

Example:
  >>> distiller = tfc.Distiller(student=student, teacher=teacher)
  >>> distiller.compile(optimizer="adam", metrics=["accuracy"], alpha=0.1, temperature=10)
  >>> distiller.fit(x_train, y_train, epochs=3)
"""

from tfcompress.distill.distiller import Distiller
from tfcompress.distill.losses import soft_target_kl
from tfcompress.distill.schedules import DistillationSchedule, linear

__all__ = ["DistillationSchedule", "Distiller", "linear", "soft_target_kl"]
