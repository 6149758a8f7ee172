"""Bad inputs to quantization: its cases of the catalogue (tests/test_bad_inputs.py)."""

import tfcompress as tfc
from tests.bad_inputs_support import keras3_lambda


def _keras3_with_an_lstm():
    import keras as keras3

    inputs = keras3.Input((5, 4))
    return keras3.Model(inputs, keras3.layers.Dense(2)(keras3.layers.LSTM(3, name="memory")(inputs)))


CASES = {
    "qat: a Keras 3 layer without an int8 form": (
        lambda t, m, x: tfc.quantize.qat(_keras3_with_an_lstm()),
        ValueError,
        r"no int8 form for 1 layers .*'memory' \(LSTM\).*tfc\.from_keras3",
    ),
    "qat: pruning wrappers left on": (
        lambda t, m, x: tfc.quantize.qat(tfc.prune.magnitude(m, 0.5, end_step=10)),
        ValueError,
        "Strip them first",
    ),
    "qat: already quantization-aware": (
        lambda t, m, x: tfc.quantize.qat(tfc.quantize.qat(m)),
        ValueError,
        "already quantization-aware",
    ),
    "cluster: one cluster": (lambda t, m, x: tfc.quantize.cluster(m, clusters=1), ValueError, "at least 2"),
    "cluster: unknown layer": (
        lambda t, m, x: tfc.quantize.cluster(m, layers=["conv9"]),
        ValueError,
        r"\['conv9'\], which are not",
    ),
    "cluster: Keras 3 model with a Lambda layer": (
        lambda t, m, x: tfc.quantize.cluster(keras3_lambda()),
        ValueError,
        "is a Lambda layer",
    ),
    "qat: float_layers names a missing layer": (
        lambda t, m, x: tfc.quantize.qat(m, float_layers=["conv9"]),
        ValueError,
        r"`float_layers` names layers \['conv9'\] that 'trained_cnn' does not have",
    ),
}
