"""Bad inputs to distillation: its cases of the catalogue (tests/test_bad_inputs.py)."""

import tfcompress as tfc
from tests.bad_inputs_support import keras3_subclassed
from tests.conftest import small_cnn

CASES = {
    "distiller: subclassed Keras 3 student": (
        lambda t, m, x: tfc.Distiller(student=keras3_subclassed(), teacher=m),
        ValueError,
        "subclassed Keras 3 model",
    ),
    "distiller: a task the student's head cannot be": (
        lambda t, m, x: tfc.Distiller(student=small_cnn(), teacher=m, task="binary").compile(optimizer="adam"),
        ValueError,
        r"`task='binary'` was given, but output .* \(10 linear units\) cannot be 'binary'",
    ),
    "distiller: teacher is not a model": (
        lambda t, m, x: tfc.Distiller(student=m, teacher="teacher.keras"),
        TypeError,
        "must be a Keras model",
    ),
    "distiller: student is the teacher": (
        lambda t, m, x: tfc.Distiller(student=m, teacher=m),
        ValueError,
        "are the same model",
    ),
    "distiller: alpha above 1": (
        lambda t, m, x: tfc.Distiller(student=small_cnn(), teacher=m).compile(optimizer="adam", alpha=1.5),
        ValueError,
        r"`alpha` must be a number in \[0, 1\]",
    ),
    "distiller: temperature 0": (
        lambda t, m, x: tfc.Distiller(student=small_cnn(), teacher=m).compile(optimizer="adam", temperature=0),
        ValueError,
        "`temperature` must be a number > 0",
    ),
}
