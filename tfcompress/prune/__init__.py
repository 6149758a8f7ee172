"""Pruning: magnitude pruning over TF-MOT, and structured pruning that removes channels and blocks.

Examples:
  >>> pruned = tfc.prune.magnitude(model, target_sparsity=0.8, epochs=2, steps_per_epoch=45)
  >>> pruned.compile(optimizer="adam", loss=loss)
  >>> pruned.fit(x, y, epochs=3, callbacks=tfc.prune.callbacks())
  >>> small = tfc.prune.strip(pruned)
  >>> tfc.prune.sparsity(small)["sparsity"]
  >>> faster = tfc.prune.channels(model, ratio=0.5)   # whole channels removed: a smaller, faster model
  >>> tfc.prune.finetune(faster, (x, y), epochs=2)
"""

from tfcompress.prune import keras3_pruning  # noqa: F401  its classes register with Keras 3, so its files load
from tfcompress.prune.batchnorm import recalibrate_batchnorm
from tfcompress.prune.blocks import drop_blocks, residual_blocks
from tfcompress.prune.channel_pruning import ChannelPlan, channels, plan_channels, plan_cost, rebuild
from tfcompress.prune.compute_cost import cost
from tfcompress.prune.criteria import Group
from tfcompress.prune.finetuning import finetune, iterative
from tfcompress.prune.keras2_pruning import PruningModel
from tfcompress.prune.magnitude_pruning import callbacks, is_pruned, magnitude, strip
from tfcompress.prune.sensitivity_analysis import sensitivity
from tfcompress.prune.slimming import gamma_penalty
from tfcompress.prune.sparsity_report import report, sparsity

__all__ = [
    "ChannelPlan",
    "Group",
    "PruningModel",
    "callbacks",
    "channels",
    "cost",
    "drop_blocks",
    "finetune",
    "gamma_penalty",
    "is_pruned",
    "iterative",
    "magnitude",
    "plan_channels",
    "plan_cost",
    "rebuild",
    "recalibrate_batchnorm",
    "report",
    "residual_blocks",
    "sensitivity",
    "sparsity",
    "strip",
]
