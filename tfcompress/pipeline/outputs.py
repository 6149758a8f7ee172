"""Every path a pipeline run writes, decided and checked before any training."""

import os

from tfcompress import report as reports


def plan(recipe: dict, labels, trained=()) -> dict:
    """The paths a run of a checked recipe writes, after checking that it may write them.

    Args:
      recipe: the checked recipe.
      labels: the rows whose float32 `.tflite` is kept with `stage_files`.
      trained: the rows whose Keras model is kept as `.keras` with `stage_files`.

    Returns:
      `{name: path}`, with `stage_files` and `stage_models` as `{row label: path}`.
    """
    folder = os.path.abspath(recipe["output_dir"])
    export_settings = recipe["stages"]["export"]
    paths = {
        "folder": folder,
        "model": os.path.join(folder, f"model_{export_settings['mode']}.tflite"),
        "tensorboard": os.path.join(folder, "tensorboard"),
        "android": os.path.join(folder, "android"),
    }
    paths.update({key: os.path.join(folder, name) for key, name in reports.REPORT_FILES.items()})
    paths["stage_files"] = {
        label: os.path.join(folder, f"{label.replace(' ', '_')}_float32.tflite")
        for label in (labels if recipe["stage_files"] else ())
    }
    # Each stage's Keras model too, in the Keras it was trained in (a Keras 3 run's as Keras 3 `.keras` files).
    paths["stage_models"] = {label: os.path.join(folder, f"{label.replace(' ', '_')}.keras")
                             for label in (trained if recipe["stage_files"] else ())}  # fmt: skip
    if not os.path.isdir(os.path.dirname(folder)):
        raise FileNotFoundError(
            f"The folder {os.path.dirname(folder)} does not exist; create it, or change output_dir."
        )
    overwrite = recipe["overwrite"]
    files = [paths["model"], *(paths[key] for key in reports.REPORT_FILES), *paths["stage_files"].values(),
             *paths["stage_models"].values()]  # fmt: skip
    for path in files:
        if os.path.exists(path) and not overwrite:
            raise FileExistsError(
                f"{path} already exists and was left as it is. Set `overwrite: true` (--overwrite), "
                "or choose another output_dir."
            )
    if os.path.isdir(folder) and not os.access(folder, os.W_OK):
        raise PermissionError(f"The folder {folder} is not writable. Choose another output_dir.")
    if os.path.isdir(paths["tensorboard"]) and os.listdir(paths["tensorboard"]) and not overwrite:
        raise FileExistsError(
            f"{paths['tensorboard']} holds an earlier run's logs. Set `overwrite: true`, or another output_dir."
        )
    android = paths["android"]
    if export_settings["android_labels"] and os.path.isdir(android) and os.listdir(android) and not overwrite:
        raise FileExistsError(f"{android} holds an earlier bundle. Set `overwrite: true`, or another output_dir.")
    return paths
