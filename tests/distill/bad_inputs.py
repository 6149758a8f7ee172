"""Bad inputs to distillation: its cases of the catalogue (tests/test_bad_inputs.py)."""

import tfcompress as tfc
from tests.conftest import keras3_model, small_cnn
from tfcompress import keras

CASES = {
    "distiller: a Keras 2 student with a Keras 3 teacher": (
        lambda t, m, x: tfc.Distiller(student=m, teacher=keras3_model()),
        TypeError,
        r"student is a Keras 2 \(tf_keras\) model and a teacher a Keras 3 one.*teacher = tfc\.from_keras3\(teacher\)",
    ),
    "distiller: a Keras 3 student with a Keras 2 teacher": (
        lambda t, m, x: tfc.Distiller(student=keras3_model(), teacher=m),
        TypeError,
        r"student is a Keras 3 model and a teacher a Keras 2 \(tf_keras\) one.*keras\.models\.load_model",
    ),
    "distiller: a Keras 2 optimizer for a Keras 3 student": (
        lambda t, m, x: tfc.Distiller(student=keras3_model(), teacher=keras3_model()).compile(
            optimizer=keras.optimizers.Adam()
        ),
        TypeError,
        r"`optimizer` holds a tf_keras object \(Adam\), but this Distiller's student is a Keras 3 model",
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
