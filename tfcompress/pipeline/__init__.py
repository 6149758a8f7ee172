"""The pipeline: one recipe from a user's model and data to a verified `.tflite`, with a report.

Stages run in the order `stages.REGISTERED` gives (train -> distill -> channels -> prune
-> qat -> export), each handing a plain Keras model to the next. Each is timed and
measured; the report is a table, a JSON, plots and a TensorBoard log. `recipe` loads and
checks recipes.

Examples:
  >>> report = tfc.pipeline.run("examples/resnet_channels.yaml")
  >>> recipe = tfc.pipeline.recipe.load("examples/resnet_channels.yaml")
"""

from tfcompress.pipeline import recipe
from tfcompress.pipeline.loop import run

__all__ = ["recipe", "run"]
