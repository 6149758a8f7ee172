"""The demo: the built-in recipe `recipes/digits.yaml`, run by the pipeline like any other recipe.

Teacher -> distilled student -> 80% pruned -> int8 QAT -> verified `.tflite` and Android
bundle, on the built-in digits; every stage's model measured in LiteRT.
"""

import os

from tfcompress import pipeline

__all__ = ["RECIPE", "render", "run"]

RECIPE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "recipes", "digits.yaml")
# A few epochs per stage: a smoke run of the whole path, at lower accuracy.
QUICK = (
    "stages.distill.teacher_epochs=2",
    "stages.distill.epochs=2",
    "stages.prune.epochs=1",
    "stages.prune.finetune_epochs=1",
    "stages.qat.epochs=1",
)


def run(output_dir, *, quick: bool = False, overwrite: bool = False, progress=print, overrides=()) -> dict:
    """Runs the demo's recipe and writes its files into `output_dir`.

    Args:
      output_dir: folder for the outputs; created if missing.
      quick: a few epochs per stage (`QUICK`): checks the path end to end, at lower accuracy.
      overwrite: replace outputs of an earlier run; otherwise existing files stop the
        demo before any training.
      progress: called with one line of text as each stage starts and ends.
      overrides: more `key.path=value` settings, e.g. `["data.source=mnist", "data.path=mnist"]`.

    Returns:
      The pipeline's report (see `tfcompress.pipeline.run`).

    Raises:
      FileExistsError: an output exists and `overwrite` is False.

    Examples:
      >>> report = tfcompress.demo.run("demo_output", quick=True)
      >>> print(tfcompress.demo.render(report))
    """
    settings = [f"output_dir={os.fspath(output_dir)}", f"overwrite={str(bool(overwrite)).lower()}"]
    return pipeline.run(RECIPE, overrides=[*settings, *(QUICK if quick else ()), *overrides], progress=progress)


def render(report: dict) -> str:
    """What the demo says after the pipeline's table: how the int8 file compares, and where it is.

    Args:
      report: what `run` (or `tfcompress.pipeline.run` on a recipe with a distill stage) returned.

    Returns:
      The int8 file's agreement with its Keras model, its size against the same model in
      float32 and against the float32 teacher, the accuracy change, its speed against the
      teacher's (timed side by side, with the CPU named), and the files.

    Examples:
      >>> print(render(tfcompress.demo.run("demo_output")))
    """
    rows, final, files = report["rows"], report["final"], report["files"]
    teacher = next(row for row in rows if row["stage"] == "teacher")
    float_twin = [row for row in rows[:-1] if row["tflite_bytes"]][-1]  # the same model before QAT
    baseline = next(row for row in rows if row["latency_ms"] is not None)  # what the speed-ups are over
    lines = [
        f"int8 model in LiteRT vs its Keras model on {final['samples']} held-out images: "
        f"top-1 agreement {final['top1_agreement']:.1%}, max output error {final['max_abs_error']:.3f}.",
        f"int8 file is {final['tflite_bytes'] / float_twin['tflite_bytes']:.3f}x the bytes of the same "
        f"student in float32 ({float_twin['stage']}); gzip size is "
        f"{teacher['gzip_bytes'] / final['gzip_bytes']:.1f}x smaller than the float32 teacher, at "
        f"{100 * (final['tflite_accuracy'] - teacher['tflite_accuracy']):+.1f} accuracy points.",
        f"In LiteRT at 1 thread it runs {final['speedup']:.2f}x as fast as the float32 {baseline['stage']} "
        f"(95% interval {final['speedup_interval']}) on {report['cpu']}; int8 speed depends on the CPU, "
        "so time it where it will run: tfcompress bench FILE_A FILE_B.",
        "",
        f"Android model: {files['model']}",
    ]
    if "android" in files:
        lines.append(f"Android bundle (metadata and labels): {files['android']['model']}")
    lines.append(f"Report: {files['markdown']} (table), {files['json']} (every figure)")
    return "\n".join(lines)
