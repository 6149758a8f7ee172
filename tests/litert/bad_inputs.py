"""Bad inputs to LiteRT (verify, inspect, benchmark, time side by side): its cases of the catalogue."""

import numpy as np

import tfcompress as tfc
from tests.bad_inputs_support import file, one_unit, tflite, with_a_nan_scale

CASES = {
    "verify: not a tflite file": (
        lambda t, m, x: tfc.litert.verify(file(t, "bad.tflite", b"not a model" * 50), m, x),
        ValueError,
        "could not be loaded by the LiteRT interpreter",
    ),
    "verify: truncated tflite file": (
        lambda t, m, x: tfc.litert.verify(file(t, "cut.tflite", open(tflite(t, m), "rb").read()[:600]), m, x),
        ValueError,
        "could not be loaded",
    ),
    "verify: a file whose quantization scales are NaN": (
        lambda t, m, x: tfc.litert.verify(with_a_nan_scale(t, m, x), m, x[:8]),
        ValueError,
        r"nan_scale.tflite has quantization scales that are NaN, infinite or not positive",
    ),
    "verify: inputs of the wrong shape": (
        lambda t, m, x: tfc.litert.verify(tflite(t, m), m, np.zeros((4, 28, 28, 1))),
        ValueError,
        "shape",
    ),
    "inspect: missing file": (lambda t, m, x: tfc.litert.inspect(t / "none.tflite"), FileNotFoundError, "No .tflite"),
    "compare: a single file": (
        lambda t, m, x: tfc.litert.time_side_by_side([tflite(t, m)]),
        ValueError,
        "needs at least two files to put side by side",
    ),
    "compare: a missing file": (
        lambda t, m, x: tfc.litert.time_side_by_side([tflite(t, m), t / "missing.tflite"]),
        FileNotFoundError,
        "No .tflite file at",
    ),
    "benchmark: too few runs": (
        lambda t, m, x: tfc.litert.benchmark(tflite(t, m), runs=2),
        ValueError,
        "`runs` must be an int >= 5",
    ),
    "verify: labels that fit no task of the output": (
        lambda t, m, x: tfc.litert.verify(tflite(t, m), m, x[:50], np.full(50, 12)),
        ValueError,
        r"does not hold labels of a multi-class .* integer classes 0\.\.9",
    ),
    "verify: a task the head cannot be": (
        lambda t, m, x: tfc.litert.verify(tflite(t, m), m, x[:50], task="regression_or_not"),
        ValueError,
        r"`task` must be one of \['multiclass', 'binary', 'multilabel', 'regression'\]",
    ),
    "verify: binary said of ten logits": (
        lambda t, m, x: tfc.litert.verify(tflite(t, m), m, x[:50], task="binary"),
        ValueError,
        r"cannot be 'binary': a binary output is one value",
    ),
    "verify: one linear unit, and nothing says its task": (
        lambda t, m, x: tfc.litert.verify(tflite(t, one_unit()), one_unit(), x[:50]),
        ValueError,
        r"could be a binary classifier's logit or a regression value.*task='binary'.*task='regression'",
    ),
    "verify: a task for an output the model lacks": (
        lambda t, m, x: tfc.litert.verify(tflite(t, m), m, x[:50], task={"box": "regression"}),
        ValueError,
        r"`task` names outputs \['box'\]",
    ),
}
