"""Loading a folder of images, one sub-folder per class."""

import os

from tfcompress._keras import keras

_COLOR_MODES = ("grayscale", "rgb", "rgba")


def load_image_directory(
    directory,
    image_size: tuple = (28, 28),
    color_mode: str = "grayscale",
    batch_size: int = 32,
    validation_split: float = None,
    subset: str = None,
    seed: int = 0,
):
    """Loads `directory/<class name>/<image>` files as a batched `tf.data.Dataset`.

    A thin layer over `keras.utils.image_dataset_from_directory` that scales pixels to
    [0, 1], the range the rest of tfcompress (and the exported models) expects.

    Args:
      directory: the folder; each sub-folder is one class, in alphabetical order.
      image_size: `(height, width)` every image is resized to.
      color_mode: "grayscale", "rgb" or "rgba".
      batch_size: images per batch.
      validation_split: share of the images held out, or None.
      subset: "training", "validation" or "both" when `validation_split` is set.
      seed: seed of the shuffle and the split.

    Returns:
      `(dataset, class_names)`: batches of `(images, labels)`, images float32 in [0, 1],
      labels int32; and the class names in label order. With `subset="both"`, a pair of
      datasets in place of `dataset`.

    Raises:
      FileNotFoundError: `directory` does not exist.
      ValueError: `color_mode` is not one of the accepted values, or no image was found.

    Examples:
      >>> train, class_names = tfc.data.load_image_directory("flowers", image_size=(96, 96),
      ...                                                    color_mode="rgb")
    """
    directory = os.fspath(directory)
    if not os.path.isdir(directory):
        raise FileNotFoundError(f"The image folder {directory} does not exist.")
    if color_mode not in _COLOR_MODES:
        raise ValueError(f"`color_mode` must be one of {_COLOR_MODES}. Received: color_mode={color_mode!r}")
    loaded = keras.utils.image_dataset_from_directory(
        directory,
        image_size=tuple(image_size),
        color_mode=color_mode,
        batch_size=batch_size,
        validation_split=validation_split,
        subset=subset,
        seed=seed,
        label_mode="int",
    )
    datasets = loaded if isinstance(loaded, (list, tuple)) else [loaded]
    class_names = list(datasets[0].class_names)
    scaled = [dataset.map(lambda images, labels: (images / 255.0, labels)) for dataset in datasets]
    return (tuple(scaled) if len(scaled) > 1 else scaled[0]), class_names
