"""An Android bundle: the `.tflite` with embedded image-classifier metadata, its labels, and a JSON of its I/O."""

import json
import os

from tfcompress import _files
from tfcompress._checks import check_one_of
from tfcompress.export import metadata, rgb_front, score_head
from tfcompress.litert.inspection import describe_tensor, inspect_tflite
from tfcompress.litert.interpreter import load_interpreter

_SIGNATURE = "serving_default"
# What the bundle's scores are, for each task (the JSON says it to apps that read the file themselves).
_SCORES = {
    "multiclass": "one score per label, as the model outputs them (the highest is the answer)",
    "binary": "two probabilities per image, [1 - p, p] for [labels[0], labels[1]]; p > 0.5 says labels[1]",
    "multilabel": "one probability per label, each its own yes (> 0.5) or no",
}
_COLOR_SPACES = {1: "GRAYSCALE", 3: "RGB"}
# How far a uint8 input's quantization may be from mapping 0..255 onto `pixel_range`.
_RANGE_TOLERANCE = 0.01


def android_bundle(
    path,
    folder,
    *,
    labels,
    pixel_range=(0.0, 1.0),
    name: str = None,
    description: str = "Identifies the most prominent object in the image from a known set of categories.",
    version: str = "1",
    overwrite: bool = False,
    task: str = None,
) -> dict:
    """Writes what an Android image-classifier app needs into `folder`.

    The bundle is `<model>.tflite` with TFLite metadata embedded (what MediaPipe's and LiteRT's image classifiers
    read), `labels.txt` and `<model>.json` describing the I/O tensors. One-channel models get an RGB-to-gray front,
    binary heads their two scores, multi-label logits their probabilities, inside the file (see the export guide).

    Args:
      path: a `.tflite` image classifier from `to_tflite` (one input `[1, h, w, 1 or 3]`, uint8 or float32).
      folder: where to write the bundle; created if its parent exists.
      labels: the class names in output order; for a binary classifier [negative, positive].
      pixel_range: the values the model was trained to see for pixels 0..255, e.g. (0.0, 1.0) for `x / 255`.
      name: the model's name in the metadata; the file's stem by default.
      description: what the model recognizes.
      version: the model's version string.
      overwrite: replace files of an earlier bundle in `folder`.
      task: "multiclass", "binary" or "multilabel"; None reads it from the file's output.

    Returns:
      A dict with the written `model`, `labels` and `json` paths, and the `metadata` as
      read back from the written model (see `read_metadata`).

    Raises:
      FileNotFoundError: `path`, or the parent of `folder`, does not exist.
      FileExistsError: a bundle file exists and `overwrite` is False.
      ValueError: the model is not an image classifier this metadata can describe (its
        input or output shape, an int8 input, a uint8 input whose quantization does not
        match `pixel_range`), `labels` does not match its outputs, or `task` is unknown,
        regression, or does not fit the output.

    Examples:
      >>> bundle = tfc.export.android_bundle("model_int8.tflite", "android", labels=[str(d) for d in range(10)])
      >>> bundle["model"]
      '/content/android/model_int8.tflite'
    """
    report = inspect_tflite(path)
    if task == "regression":
        raise ValueError(
            "An Android image classifier's bundle shows a score per label, and a regression output has none: "
            "ship its .tflite as it is and read the values with the LiteRT interpreter."
        )
    if task is not None:
        check_one_of("task", task, ("multiclass", "binary", "multilabel"))
    with open(report["path"], "rb") as file:
        sigmoid = score_head.ends_in_sigmoid(file.read())
    image, task = _check_classifier(report, labels, task, sigmoid)
    normalization, value_range = _normalization(image, pixel_range)
    stem = os.path.splitext(os.path.basename(report["path"]))[0]
    folder = os.path.abspath(os.fspath(folder))
    if not os.path.isdir(folder):
        if not os.path.isdir(os.path.dirname(folder)):
            raise FileNotFoundError(f"The folder {os.path.dirname(folder)} does not exist. Create it first.")
        os.makedirs(folder, exist_ok=True)
    targets = {key: os.path.join(folder, file) for key, file in
               (("model", f"{stem}.tflite"), ("labels", "labels.txt"), ("json", f"{stem}.json"))}  # fmt: skip
    if os.path.abspath(report["path"]) == targets["model"]:
        raise ValueError(f"`folder` must differ from the folder of {report['path']}, which would be replaced.")
    for target in targets.values():
        _files.check_writable(target, overwrite)

    labels_text = "".join(f"{label}\n" for label in labels).encode()
    with open(report["path"], "rb") as file:
        content = file.read()
    height, width, channels = image["shape"][1:]
    if channels == 1:  # MediaPipe and the Task Library load RGB models only: convert to gray inside the model
        content = rgb_front.add_rgb_front(content)
        channels = 3
    if task == "binary":  # they show a score per label: one value would be one label, always shown
        content = score_head.two_scores(content, probability=sigmoid)
    elif task == "multilabel" and not sigmoid:
        content = score_head.sigmoid_scores(content)
    interpreter = load_interpreter(content)
    inputs = [describe_tensor(detail) for detail in interpreter.get_input_details()]
    outputs = [describe_tensor(detail) for detail in interpreter.get_output_details()]
    flatbuffer = metadata.image_classifier_metadata(
        name=name or stem,
        description=description,
        input_name="image",
        output_name="probability",
        color_space=_COLOR_SPACES[channels],
        size=(width, height),
        mean=[normalization[0]] * channels,
        std=[normalization[1]] * channels,
        value_range=value_range,
        labels_file="labels.txt",
        version=version,
    )
    content = metadata.attach(content, flatbuffer, {"labels.txt": labels_text})
    description_json = {
        "model": os.path.basename(targets["model"]),
        "signature": _SIGNATURE,
        "inputs": inputs,
        "gray_model_takes_rgb": image["shape"][3] == 1,
        "outputs": outputs,
        "task": task,
        "scores": _SCORES[task],
        "labels": "labels.txt",
        "pixel_range": list(pixel_range),
        "normalization": {"mean": normalization[0], "std": normalization[1]},
    }
    _files.write_atomically(targets["model"], content, overwrite=overwrite)
    _files.write_atomically(targets["labels"], labels_text, overwrite=overwrite)
    _files.write_atomically(targets["json"], json.dumps(description_json, indent=2).encode(), overwrite=overwrite)
    return dict(targets, metadata=read_metadata(targets["model"]))


def read_metadata(path) -> dict:
    """Reads the image-classifier metadata and the files packed into a `.tflite`.

    Args:
      path: the `.tflite` file.

    Returns:
      A dict with `name`, `description`, `version`, `min_parser_version`, `input`
      (`name`, `color_space`, `size`, `mean`, `std`, `min`, `max`), `output` (`name`,
      `labels_file`) and `files` (packed file name -> bytes); None when the file has no
      metadata.

    Raises:
      FileNotFoundError: `path` does not exist.

    Examples:
      >>> tfc.export.read_metadata("android/model_int8.tflite")["files"]["labels.txt"]
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"No .tflite file at {path}.")
    with open(path, "rb") as file:
        return metadata.read(file.read())


def _check_classifier(report, labels, task, sigmoid):
    if len(report["inputs"]) != 1 or len(report["outputs"]) != 1:
        raise ValueError(
            f"{report['path']} has {len(report['inputs'])} inputs and {len(report['outputs'])} outputs; "
            "an image classifier has one of each."
        )
    (image,), (scores,) = report["inputs"], report["outputs"]
    shape = image["shape"]
    if len(shape) != 4 or shape[0] != 1 or shape[3] not in _COLOR_SPACES:
        raise ValueError(
            f"The input of {report['path']} has shape {shape}; an image classifier takes [1, height, width, 1 or 3]."
        )
    if image["dtype"] not in ("uint8", "float32"):
        raise ValueError(
            f"The input of {report['path']} is {image['dtype']}; Android's image classifier takes uint8 or float32. "
            'Export with io_dtype="uint8".'
        )
    if len(scores["shape"]) != 2 or scores["shape"][0] != 1:
        raise ValueError(f"The output of {report['path']} has shape {scores['shape']}; class scores are [1, classes].")
    if isinstance(labels, str) or not all(isinstance(label, str) and label and "\n" not in label for label in labels):
        raise ValueError("`labels` must be a list of non-empty, single-line strings, one per class.")
    values = scores["shape"][1]
    task = task or ("binary" if values == 1 else "multilabel" if sigmoid else "multiclass")
    if (task == "binary") != (values == 1):
        raise ValueError(
            f"`task` is {task!r}, but the output of {report['path']} holds {values} value(s) a row: a binary "
            "classifier has one (a logit or a probability), the others a score per class or label."
        )
    if task == "binary" and len(labels) != 2:
        raise ValueError(
            f"`labels` has {len(labels)} names, but a binary classifier's bundle shows two scores: pass two labels, "
            "[negative, positive], the second for the answer its score says yes to (e.g. ['cat', 'dog'] for 1 = dog)."
        )
    if task != "binary" and len(labels) != values:
        raise ValueError(f"`labels` has {len(labels)} names but the model scores {values} classes.")
    return image, task


def _normalization(image, pixel_range):
    """The metadata's (mean, std) with `(pixel - mean) / std`, and the input tensor's value range."""
    low, high = (float(value) for value in pixel_range)
    if not high > low:
        raise ValueError(f"`pixel_range` must be (low, high) with low < high. Received: {pixel_range}")
    if image["dtype"] == "float32":
        std = 255.0 / (high - low)
        return (-low * std, std), (low, high)
    # uint8 input: pixels go in as they are; the quantization maps them to the model's range.
    mapped = (-image["zero_point"] * image["scale"], (255 - image["zero_point"]) * image["scale"])
    if abs(mapped[0] - low) > _RANGE_TOLERANCE * (high - low) or abs(mapped[1] - high) > _RANGE_TOLERANCE * (
        high - low
    ):
        raise ValueError(
            f"The uint8 input maps pixels 0..255 to [{mapped[0]:.4g}, {mapped[1]:.4g}], not `pixel_range` "
            f"{tuple(pixel_range)}. Pass the range the model was trained on, or calibrate it on images scaled that way."
        )
    return (0.0, 1.0), (0.0, 255.0)
