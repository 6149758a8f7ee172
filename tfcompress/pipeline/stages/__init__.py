"""The stages a recipe can name, registered in the order they run.

Each hands a plain Keras model to the next. A new stage is one module here holding a
`Stage` (see `tfcompress.pipeline.stage`), and one line in `REGISTERED` below: the
recipe checker reads its schema and checks from there, and the pipeline runs it in
that place.
"""

from tfcompress.pipeline.stages import channels, distill, export, prune, qat, train

REGISTERED = (train.STAGE, distill.STAGE, channels.STAGE, prune.STAGE, qat.STAGE, export.STAGE)
BY_NAME = {stage.name: stage for stage in REGISTERED}
