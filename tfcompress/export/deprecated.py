"""Names that moved out of `tfc.export`, kept for one release with a warning that names the new place."""

import importlib
import os
import tempfile
import warnings

MOVED = {
    "LiteRTModel": "tfcompress.litert",
    "benchmark": "tfcompress.litert",
    "cpu": "tfcompress.litert",
    "inspect": "tfcompress.litert",
    "verify": "tfcompress.litert",
}


def moved(name):
    """The object `tfc.export.<name>` now lives at, after a DeprecationWarning; None when it did not move."""
    if name not in MOVED:
        return None
    new = MOVED[name]
    warnings.warn(
        f"tfc.export.{name} is now {new.replace('tfcompress', 'tfc')}.{name}; the old name goes in the next release.",
        DeprecationWarning,
        stacklevel=3,
    )
    return getattr(importlib.import_module(new), name)


def compare(models, **options):
    """Deprecated: `tfc.litert.time_side_by_side`, which takes files; a Keras model here is exported as float32 first.

    Examples:
      >>> tfc.litert.time_side_by_side(["m32.tflite", "m8.tflite"])   # instead of tfc.export.compare(...)
    """
    from tfcompress.export.tflite import to_tflite
    from tfcompress.litert import side_by_side

    warnings.warn(
        "tfc.export.compare is now tfc.litert.time_side_by_side (files only: export a Keras model first); "
        "the old name goes in the next release.",
        DeprecationWarning,
        stacklevel=2,
    )
    labelled = side_by_side.labelled_files(models)
    with tempfile.TemporaryDirectory(prefix="tfcompress_compare_") as folder:
        exported = {}
        for index, (label, source) in enumerate(labelled.items()):
            if not isinstance(source, (str, os.PathLike, bytes)):
                source = to_tflite(source, os.path.join(folder, f"model_{index}.tflite"), mode="float32").path
                exported[label] = True
            labelled[label] = source
        result = side_by_side.timed(labelled, **options)
    for row in result.files:
        if row["label"] in exported:
            row["path"] = None  # the file was temporary
    return result


def format_comparison(result):
    """Deprecated: `tfc.litert.format_side_by_side`.

    Examples:
      >>> print(tfc.litert.format_side_by_side(result))   # instead of tfc.export.format_comparison(result)
    """
    from tfcompress.litert.side_by_side import format_side_by_side

    warnings.warn(
        "tfc.export.format_comparison is now tfc.litert.format_side_by_side; the old name goes in the next release.",
        DeprecationWarning,
        stacklevel=2,
    )
    return format_side_by_side(result)

