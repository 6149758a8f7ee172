"""Pruning: magnitude pruning over TF-MOT, stripped to a plain model, and its report.

Example:
  >>> pruned = tfc.prune.magnitude(model, target_sparsity=0.8, epochs=2, steps_per_epoch=45)
  >>> pruned.compile(optimizer="adam", loss=loss)
  >>> pruned.fit(x, y, epochs=3, callbacks=tfc.prune.callbacks())
  >>> small = tfc.prune.strip(pruned)
  >>> tfc.prune.report(small)["sparsity"]
  >>> faster = tfc.prune.channels(model, ratio=0.5)   # whole channels removed: a smaller, faster model
"""

from tfcompress.prune.channels import ChannelPlan, channels, plan_channels
from tfcompress.prune.magnitude import PruningModel, callbacks, is_pruned, magnitude, strip
from tfcompress.prune.report import report
from tfcompress.prune.sensitivity import sensitivity

__all__ = [
    "ChannelPlan",
    "PruningModel",
    "callbacks",
    "channels",
    "is_pruned",
    "magnitude",
    "plan_channels",
    "report",
    "sensitivity",
    "strip",
]
