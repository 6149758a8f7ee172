"""What a stage of the pipeline is, and what it is handed when it runs.

A stage is one `Stage` object in its own module under `tfcompress/pipeline/stages/`: its
recipe section's schema, the title its progress line shows, the checks it needs on the
rest of the recipe, and `run(context, settings)`, which returns the model it hands on.
Registering it in `stages/__init__.py` is all the pipeline and the recipe checker need.
"""

import dataclasses
import os
from typing import Callable, Optional

from tfcompress import _tasks
from tfcompress._keras3 import keras_of


@dataclasses.dataclass(frozen=True)
class Stage:
    """One step of a recipe.

    Attributes:
      name: the stage's key under `stages:` in a recipe.
      schema: its settings: key -> `tfcompress.pipeline.schema.Key`.
      title: `settings -> str`, the progress line while it runs.
      run: `(context, settings) -> model`, the model handed to the next stage.
      check: `recipe -> None`, raising `RecipeError` when the checked recipe combines
        this stage with something it cannot work with; None when it has no such check.
      prepare: `(context, settings) -> None`, run for every stage before any stage
        trains (e.g. loading a teacher file), so a bad input stops the run early.
      label: `settings -> str`, its row in the report; the name by default.
      measured: "float32" (its model is exported as float32 and measured in LiteRT),
        "keras" (no file: a quantization-aware model's file is the export's), or
        "exported" (the file it wrote, `context.exported`).
      extra_rows: labels of the rows it records itself through `context.record`, before
        its own (the distill stage's trained teacher), so their files can be planned.
      trains: whether it runs under the recipe's `distribute` strategy (every stage that
        creates or trains a model does).

    Examples:
      >>> STAGE = Stage("train", {"epochs": Key(positive_integer, 10)},
      ...               title=lambda s: f"Training for {s['epochs']} epochs", run=train)
    """

    name: str
    schema: dict
    title: Callable
    run: Callable
    check: Optional[Callable] = None
    prepare: Optional[Callable] = None
    label: Optional[Callable] = None
    measured: str = "float32"
    trains: bool = True
    extra_rows: tuple = ()

    def row_label(self, settings: dict) -> str:
        """The stage's row in the report."""
        return self.label(settings) if self.label else self.name


@dataclasses.dataclass
class Context:
    """What every stage is handed: the model so far, the data, how to train and where to write.

    Attributes:
      model: the Keras 2 model the stage before handed on.
      recipe: the checked recipe (see `tfc.pipeline.recipe.check`).
      x_train: training inputs; y_train: their labels, checked for `task` (integer
        classes, 0/1 or multi-hot in the output's shape, values).
      x_test: held-out inputs the rows are measured on; y_test: their labels.
      paths: every path the run writes, by key (see `tfcompress.pipeline.outputs`).
      verbose: Keras `fit` verbosity.
      record: `(label, model, seconds) -> None`, adds a measured row to the report (a
        stage's by-product, such as the trained teacher).
      models: models loaded by `Stage.prepare`, by recipe key.
      exported: the `ExportResult` of the file the export stage wrote.
      notes: what stages add to the report beyond rows (e.g. channel widths), by report key.
      task: the `tfcompress._tasks.Task` of the model's output, which every stage trains
        and measures.
    """

    model: object
    recipe: dict
    x_train: object
    y_train: object
    x_test: object
    y_test: object
    paths: dict
    verbose: int
    record: Callable
    models: dict = dataclasses.field(default_factory=dict)
    exported: object = None
    notes: dict = dataclasses.field(default_factory=dict)
    task: object = None

    @property
    def batch_size(self) -> int:
        """Examples per training step, from the recipe."""
        return self.recipe["batch_size"]

    def fit(self, model, name: str, epochs: int, learning_rate=None, callbacks=()):
        """Trains `model` on the training data, logging to TensorBoard under `name`."""
        if learning_rate is not None:
            _tasks.compile_for(model, learning_rate, self.task)
        return model.fit(
            self.x_train, self.y_train, epochs=epochs, batch_size=self.batch_size, verbose=self.verbose,
            callbacks=[*callbacks, self.board(name, model)],
        )  # fmt: skip

    def board(self, name: str, model):
        """A TensorBoard callback of `model`'s Keras (what its `fit` takes) writing under `tensorboard/name`."""
        return keras_of(model).callbacks.TensorBoard(log_dir=os.path.join(self.paths["tensorboard"], name))
