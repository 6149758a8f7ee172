"""Bad inputs to export: its cases of the catalogue (tests/test_bad_inputs.py)."""

import numpy as np

import tfcompress as tfc
from tests.bad_inputs_support import file, tflite, with_a_nan_range


def _with_budget(budget):
    """Accuracy control with a target any file meets, and `budget`."""
    return lambda t, m, x: tfc.export.with_accuracy_control(
        m, t / "m.tflite", representative_data=x[:100], validation_data=(x[:50], np.zeros(50, int)),
        max_accuracy_drop=0.5, budget=budget,
    )  # fmt: skip


CASES = {
    "export: unknown mode": (
        lambda t, m, x: tfc.export.to_tflite(m, t / "m.tflite", mode="int4"),
        ValueError,
        "`mode` must be one of",
    ),
    "export: io dtype of another mode": (
        lambda t, m, x: tfc.export.to_tflite(m, t / "m.tflite", mode="float16", io_dtype="uint8"),
        ValueError,
        "`io_dtype` must be one of",
    ),
    "export: int8 without calibration data": (
        lambda t, m, x: tfc.export.to_tflite(m, t / "m.tflite"),
        ValueError,
        "needs `representative_data`",
    ),
    "export: NaN calibration data": (
        lambda t, m, x: tfc.export.to_tflite(m, t / "m.tflite", representative_data=np.full_like(x[:100], np.nan)),
        ValueError,
        "NaN",
    ),
    "export: calibration data of the wrong shape": (
        lambda t, m, x: tfc.export.to_tflite(m, t / "m.tflite", representative_data=np.zeros((100, 28, 28, 1))),
        ValueError,
        "shape",
    ),
    "export: empty calibration data": (
        lambda t, m, x: tfc.export.to_tflite(m, t / "m.tflite", representative_data=x[:0]),
        ValueError,
        "is empty",
    ),
    "export: text as calibration data": (
        lambda t, m, x: tfc.export.to_tflite(m, t / "m.tflite", representative_data=np.array([["a"] * 8] * 8)),
        ValueError,
        "must be numeric",
    ),
    "export: output file exists": (
        lambda t, m, x: tfc.export.to_tflite(m, file(t, "mine.tflite", b"mine"), mode="float32"),
        FileExistsError,
        "already exists and was left as it is",
    ),
    "export: output folder missing": (
        lambda t, m, x: tfc.export.to_tflite(m, t / "missing" / "m.tflite", mode="float32"),
        FileNotFoundError,
        "does not exist. Create it first",
    ),
    "export: output path is a folder": (
        lambda t, m, x: tfc.export.to_tflite(m, t, mode="float32"),
        IsADirectoryError,
        "is a directory",
    ),
    "export: read-only destination": (
        lambda t, m, x: tfc.export.to_tflite(m, "/sys/m.tflite", mode="float32"),
        PermissionError,
        "not writable",
    ),
    "export: sparse float16": (
        lambda t, m, x: tfc.export.to_tflite(m, t / "m.tflite", mode="float16", sparse=True),
        ValueError,
        "`sparse=True` works in modes",
    ),
    "export: batch size 0": (
        lambda t, m, x: tfc.export.to_tflite(m, t / "m.tflite", mode="float32", batch_size=0),
        ValueError,
        "`batch_size` must be None",
    ),
    "export: float layer that does not exist": (
        lambda t, m, x: tfc.export.to_tflite(m, t / "m.tflite", representative_data=x[:100], float_layers=["x"]),
        ValueError,
        "not quantized layers",
    ),
    "export: accuracy target outside (0, 1)": (
        lambda t, m, x: tfc.export.with_accuracy_control(
            m, t / "m.tflite", representative_data=x[:100], validation_data=(x[:50], np.zeros(50, int)),
            max_accuracy_drop=1.5,
        ),  # fmt: skip
        ValueError,
        r"`max_accuracy_drop` must be a number in \(0, 1\)",
    ),
    "export: unknown calibration method": (
        lambda t, m, x: tfc.export.to_tflite(m, t / "m.tflite", representative_data=x[:100], calibration="entropy"),
        ValueError,
        r"`calibration` must be one of \('minmax', 'percentile', 'mse', 'kl'\)",
    ),
    "export: too few examples for a calibration method": (
        lambda t, m, x: tfc.export.to_tflite(m, t / "m.tflite", representative_data=x[:60], calibration="kl"),
        ValueError,
        r'calibration="kl" picks each range from a histogram .* needs at least 100 calibration examples; '
        r"`representative_data` has 60",
    ),
    "export: too few examples for learned rounding": (
        lambda t, m, x: tfc.export.to_tflite(m, t / "m.tflite", representative_data=x[:40], rounding="adaround"),
        ValueError,
        r"AdaRound .* needs at least 64 examples; `representative_data` has 40",
    ),
    "export: calibration method with the sparse encoding": (
        lambda t, m, x: tfc.export.to_tflite(m, t / "m.tflite", representative_data=x[:100], calibration="mse",
                                             sparse=True),  # fmt: skip
        ValueError,
        r'Export with sparse=False, or with calibration="minmax"',
    ),
    "export: calibration method without calibration data": (
        lambda t, m, x: tfc.export.to_tflite(m, t / "m.tflite", mode="float16", calibration="mse"),
        ValueError,
        r"work in int8 mode, with representative data",
    ),
    "export: int16 layers that are not the model's": (
        lambda t, m, x: tfc.export.to_tflite(m, t / "m.tflite", representative_data=x[:100], int16_layers=["nope"]),
        ValueError,
        r"`int16_layers` names \['nope'\], which are not layers of 'trained_cnn'. Its layers are: \['conv2d'",
    ),
    "export: int4 weights in a layer without a kernel": (
        lambda t, m, x: tfc.export.to_tflite(m, t / "m.tflite", representative_data=x[:100],
                                             int4_layers=["max_pooling2d"]),  # fmt: skip
        ValueError,
        r"`int4_layers` names \['max_pooling2d'\]: LiteRT runs int4 weights .* in Dense, Conv1D and Conv2D layers",
    ),
    "export: int16 layers with a calibration method": (
        lambda t, m, x: tfc.export.to_tflite(m, t / "m.tflite", representative_data=x[:100], int16_layers="dense",
                                             calibration="mse"),  # fmt: skip
        ValueError,
        r"built by the LiteRT quantizer from its own min-max ranges.* do not combine with \['calibration'\]",
    ),
    "export: a budget no file meets": (
        _with_budget({"bytes": 1000}),
        tfc.export.AccuracyTargetError,
        r"No file tried fits the budget \(<= 1,000 bytes\): the smallest is [\d,]+ bytes.*Nothing was written",
    ),
    "export: a budget of unknown measures": (
        _with_budget({"size": 1000}),
        ValueError,
        r"`budget` must be a dict with `bytes` .* and/or `latency`",
    ),
    "export: accuracy target without labels": (
        lambda t, m, x: tfc.export.with_accuracy_control(
            m, t / "m.tflite", representative_data=x[:100], validation_data=x[:50], max_accuracy_drop=0.01
        ),
        ValueError,
        "needs labels: pass \\(x_val, y_val\\)",
    ),
    "export: validation data of the wrong shape": (
        lambda t, m, x: tfc.export.with_accuracy_control(
            m, t / "m.tflite", representative_data=x[:100], validation_data=(x[:50, :4], np.zeros(50, int)),
            min_agreement=0.99,
        ),  # fmt: skip
        ValueError,
        "validation_data",
    ),
    "export: accuracy target without validation data": (
        lambda t, m, x: tfc.export.with_accuracy_control(
            m, t / "m.tflite", representative_data=x[:100], min_agreement=0.99
        ),
        ValueError,
        "pass validation_data=",
    ),
    "export: calibration data for a qat model with float layers": (
        lambda t, m, x: tfc.export.to_tflite(
            tfc.quantize.qat(m, float_layers=["first"]), t / "m.tflite", representative_data=x[:100]
        ),
        ValueError,
        "would quantize them to int8 too. Remove `representative_data`",
    ),
    "export: a QAT model whose ranges went NaN": (
        lambda t, m, x: tfc.export.to_tflite(with_a_nan_range(m, x), t / "m.tflite"),
        ValueError,
        r"The quantization ranges of 'trained_cnn' hold NaN or infinity at 'conv2d\w*'",
    ),
    "android bundle: labels do not match": (
        lambda t, m, x: tfc.export.android_bundle(tflite(t, m), t / "android", labels=["a", "b"]),
        ValueError,
        "`labels` has 2 names but the model scores 10 classes",
    ),
}
