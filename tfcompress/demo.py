"""The demo: teacher -> distilled student -> 80% pruned -> int8 QAT -> verified `.tflite`.

It runs every stage of tfcompress on the built-in digits data, the way a user would
chain them by hand, and reports what each stage did to size and accuracy.
"""

import dataclasses
import math
import os

from tfcompress import _files, data, distill, export, prune, quantize
from tfcompress._keras import keras
from tfcompress._progress import StageTimer
from tfcompress.report import format_table, write_json

TABLE_COLUMNS = [
    ("stage", "stage"),
    ("parameters", "parameters"),
    ("nonzero_parameters", "non-zero"),
    ("tflite_bytes", ".tflite bytes"),
    ("gzip_bytes", "gzip bytes"),
    ("accuracy", "accuracy"),
]

FILES = {
    "teacher": "teacher_float32.tflite",
    "student": "student_float32.tflite",
    "pruned": "pruned_float32.tflite",
    "final": "model_int8.tflite",
    "report": "report.json",
}


@dataclasses.dataclass(frozen=True)
class DemoSettings:
    """Epochs and hyper-parameters of the demo.

    Attributes:
      teacher_epochs: epochs to train the teacher.
      distill_epochs: epochs to distill the student.
      prune_epochs: epochs over which sparsity rises to `target_sparsity`.
      prune_finetune_epochs: further epochs at the target sparsity.
      qat_epochs: epochs of quantization-aware fine-tuning.
      target_sparsity: share of each kernel pruned away.
      temperature: distillation temperature.
      alpha: weight of the true-label loss in distillation.
      batch_size: examples per training step.
      seed: seed of weights and shuffling.
    """

    teacher_epochs: int = 20
    distill_epochs: int = 40
    prune_epochs: int = 10
    prune_finetune_epochs: int = 10
    qat_epochs: int = 5
    target_sparsity: float = 0.8
    temperature: float = 4.0
    alpha: float = 0.1
    batch_size: int = 32
    seed: int = 0

    @classmethod
    def quick(cls) -> "DemoSettings":
        """A few epochs per stage: a smoke run of the whole path, at lower accuracy."""
        return cls(teacher_epochs=2, distill_epochs=2, prune_epochs=1, prune_finetune_epochs=1, qat_epochs=1)


def conv_net(filters: tuple, dense_units: int, name: str, input_shape: tuple = (8, 8, 1), classes: int = 10):
    """The demo's CNN: two 3x3 convolutions, max-pooling, two dense layers.

    Inputs larger than 8x8 (such as MNIST's 28x28) are pooled after the first
    convolution too, so the dense layer stays a reasonable size.

    Args:
      filters: output channels of the two convolutions.
      dense_units: width of the hidden dense layer.
      name: model name.
      input_shape: shape of one image, `(height, width, channels)`.
      classes: how many logits it outputs.

    Returns:
      An uncompiled Sequential model that outputs `classes` logits.

    Example:
      >>> conv_net((32, 64), 384, "teacher").count_params()
      416266
    """
    first = [keras.layers.Conv2D(filters[0], 3, padding="same", activation="relu")]
    if input_shape[0] > 8:
        first.append(keras.layers.MaxPooling2D())
    return keras.Sequential(
        [keras.Input(shape=input_shape)]
        + first
        + [
            keras.layers.Conv2D(filters[1], 3, padding="same", activation="relu"),
            keras.layers.MaxPooling2D(),
            keras.layers.Flatten(),
            keras.layers.Dense(dense_units, activation="relu"),
            keras.layers.Dense(classes),
        ],
        name=name,
    )


def residual_net(width: int, blocks: int, name: str, input_shape: tuple = (8, 8, 1), classes: int = 10):
    """A small ResNet: a stem, basic residual blocks, global average pooling, a dense head.

    Each block is conv-BN-ReLU-conv-BN added to its input, then a ReLU (He et al., 2016).
    Inputs larger than 8x8 are max-pooled after the stem. The layers are named
    `stem`, `stem_bn`, `block{i}_conv1`, `block{i}_bn1`, `block{i}_conv2`, `block{i}_bn2`,
    `block{i}_add` and `logits`, so pruning results read clearly.

    Args:
      width: channels of every convolution.
      blocks: how many residual blocks.
      name: model name.
      input_shape: shape of one image, `(height, width, channels)`.
      classes: how many logits it outputs.

    Returns:
      An uncompiled functional model that outputs `classes` logits.

    Example:
      >>> residual_net(16, 3, "resnet").count_params()
      14698
    """
    inputs = keras.Input(shape=input_shape)
    x = keras.layers.Conv2D(width, 3, padding="same", name="stem")(inputs)
    x = keras.layers.ReLU()(keras.layers.BatchNormalization(name="stem_bn")(x))
    if input_shape[0] > 8:
        x = keras.layers.MaxPooling2D()(x)
    for block in range(1, blocks + 1):
        branch = keras.layers.Conv2D(width, 3, padding="same", name=f"block{block}_conv1")(x)
        branch = keras.layers.ReLU()(keras.layers.BatchNormalization(name=f"block{block}_bn1")(branch))
        branch = keras.layers.Conv2D(width, 3, padding="same", name=f"block{block}_conv2")(branch)
        branch = keras.layers.BatchNormalization(name=f"block{block}_bn2")(branch)
        x = keras.layers.ReLU()(keras.layers.Add(name=f"block{block}_add")([x, branch]))
    x = keras.layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, keras.layers.Dense(classes, name="logits")(x), name=name)


def _compile(model, learning_rate):
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )


def run(
    output_dir,
    settings: DemoSettings = DemoSettings(),
    overwrite: bool = False,
    progress=print,
    dataset: tuple = None,
) -> dict:
    """Runs the demo and writes its `.tflite` files and `report.json` into `output_dir`.

    Args:
      output_dir: folder for the outputs; created if missing.
      settings: epochs and hyper-parameters.
      overwrite: replace outputs of an earlier run; otherwise existing files stop the
        demo before any training.
      progress: called with one line of text as each stage starts and ends.
      dataset: `((x_train, y_train), (x_test, y_test))` of images with 10 classes, such
        as `tfc.data.load_mnist(folder)`; None for the built-in digits.

    Returns:
      The report: `rows` (one per stage: parameters, non-zero parameters, `.tflite`
      bytes, gzip bytes, LiteRT accuracy on the held-out images), `verification` of the
      int8 file against its Keras model, `summary` ratios, and the `files` written.

    Raises:
      FileExistsError: an output exists and `overwrite` is False.

    Example:
      >>> report = tfcompress.demo.run("demo_output")
      >>> report["summary"]["gzip_reduction_vs_teacher"]
    """
    os.makedirs(output_dir, exist_ok=True)
    paths = {key: os.path.abspath(os.path.join(output_dir, name)) for key, name in FILES.items()}
    for path in paths.values():
        _files.check_writable(path, overwrite)
    keras.utils.set_random_seed(settings.seed)
    (x_train, y_train), (x_test, y_test) = dataset or data.load_digits(seed=settings.seed)
    input_shape = tuple(x_train.shape[1:])
    steps_per_epoch = math.ceil(len(x_train) / settings.batch_size)
    fit_args = dict(batch_size=settings.batch_size, verbose=0)
    stages = StageTimer(progress, total=6)

    with stages.step("Training the teacher"):
        teacher = conv_net((32, 64), 384, "teacher", input_shape)
        _compile(teacher, 1e-3)
        teacher.fit(x_train, y_train, epochs=settings.teacher_epochs, **fit_args)

    with stages.step("Distilling a student with a quarter of the teacher's parameters"):
        student = conv_net((16, 32), 192, "student", input_shape)
        distiller = distill.Distiller(student=student, teacher=teacher)
        distiller.compile(
            optimizer=keras.optimizers.Adam(1e-3),
            metrics=[keras.metrics.SparseCategoricalAccuracy()],
            alpha=settings.alpha,
            temperature=settings.temperature,
        )
        distiller.fit(x_train, y_train, epochs=settings.distill_epochs, **fit_args)

    with stages.step(f"Pruning the student to {settings.target_sparsity:.0%} sparsity"):
        pruning = prune.magnitude(
            student, settings.target_sparsity, epochs=settings.prune_epochs, steps_per_epoch=steps_per_epoch
        )
        _compile(pruning, 5e-4)
        pruning.fit(
            x_train,
            y_train,
            epochs=settings.prune_epochs + settings.prune_finetune_epochs,
            callbacks=prune.callbacks(),
            **fit_args,
        )
        pruned = prune.strip(pruning)

    with stages.step("Fine-tuning with sparsity-preserving quantization-aware training"):
        quantization_aware = quantize.qat(pruned, representative_data=x_train)
        _compile(quantization_aware, 1e-4)
        quantization_aware.fit(x_train, y_train, epochs=settings.qat_epochs, **fit_args)

    with stages.step("Exporting .tflite files (float32 for each stage, int8 for the result)"):
        exports = {
            "teacher": export.to_tflite(teacher, paths["teacher"], mode="float32", overwrite=overwrite),
            "student": export.to_tflite(student, paths["student"], mode="float32", overwrite=overwrite),
            "pruned": export.to_tflite(pruned, paths["pruned"], mode="float32", overwrite=overwrite),
            "final": export.to_tflite(
                quantization_aware, paths["final"], mode="int8", representative_data=x_train, overwrite=overwrite
            ),
        }

    with stages.step("Verifying each .tflite in the LiteRT interpreter on held-out images"):
        models = {"teacher": teacher, "student": student, "pruned": pruned, "final": quantization_aware}
        checks = {key: export.verify(exports[key].path, models[key], x_test, y_test) for key in models}

    labels = {
        "teacher": "teacher (float32)",
        "student": "student, distilled (float32)",
        "pruned": f"student, {settings.target_sparsity:.0%} pruned (float32)",
        "final": "student, pruned + QAT (int8)",
    }
    rows = []
    for key, label in labels.items():
        counts = prune.report(models[key])
        rows.append(
            {
                "stage": label,
                "parameters": counts["parameters"],
                "nonzero_parameters": counts["nonzero_parameters"],
                "tflite_bytes": exports[key].bytes,
                "gzip_bytes": exports[key].gzip_bytes,
                "accuracy": checks[key]["tflite_accuracy"],
            }
        )
    final, teacher_row = rows[-1], rows[0]
    report = {
        "rows": rows,
        "verification": checks["final"],
        "summary": {
            "int8_bytes_vs_same_model_float32": exports["final"].bytes / exports["pruned"].bytes,
            "gzip_reduction_vs_teacher": teacher_row["gzip_bytes"] / final["gzip_bytes"],
            "accuracy_change_vs_teacher_points": 100 * (final["accuracy"] - teacher_row["accuracy"]),
        },
        "settings": dataclasses.asdict(settings),
        "stage_seconds": stages.seconds,
        "files": {key: paths[key] for key in FILES},
    }
    write_json(paths["report"], report, overwrite=overwrite)
    return report


def render(report: dict) -> str:
    """The demo's report as the text the CLI prints.

    Args:
      report: what `run` returned.

    Returns:
      The stage table, the verification and the ratios, and where the files are.

    Example:
      >>> print(render(tfcompress.demo.run("demo_output")))
    """
    check, summary, files = report["verification"], report["summary"], report["files"]
    return "\n".join(
        [
            format_table(report["rows"], TABLE_COLUMNS),
            "",
            f"int8 model in LiteRT vs its Keras model on {check['samples']} held-out images: "
            f"top-1 agreement {check['top1_agreement']:.1%}, max output error {check['max_abs_error']:.3f}.",
            f"int8 file is {summary['int8_bytes_vs_same_model_float32']:.3f}x the bytes of the same "
            f"student in float32; gzip size is {summary['gzip_reduction_vs_teacher']:.1f}x smaller than "
            f"the float32 teacher, at {summary['accuracy_change_vs_teacher_points']:+.1f} accuracy points.",
            "",
            f"Android model: {files['final']}",
            f"Report (JSON): {files['report']}",
        ]
    )
