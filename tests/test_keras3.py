"""`tfc.from_keras3`: a Keras 3 model rebuilt as Keras 2 (tf_keras), layer for layer, with its weights."""

import numpy as np
import pytest

import tfcompress as tfc
from tfcompress import keras


def keras3_models():
    import keras as keras3

    sequential = keras3.Sequential(
        [
            keras3.Input((8, 8, 1)),
            keras3.layers.Conv2D(4, 3, activation="relu", kernel_regularizer=keras3.regularizers.L2(1e-4)),
            keras3.layers.BatchNormalization(),
            keras3.layers.Flatten(),
            keras3.layers.Dense(10),
        ],
        name="k3_sequential",
    )
    inputs = keras3.Input((8, 8, 1), name="pixels")
    branch = keras3.layers.Conv2D(4, 3, padding="same")(inputs)
    merged = keras3.layers.Add()([branch, keras3.layers.Conv2D(4, 1)(inputs)])
    pooled = keras3.layers.GlobalAveragePooling2D()(keras3.layers.Concatenate()([merged, branch]))
    functional = keras3.Model(inputs, keras3.layers.Dense(10)(pooled), name="k3_functional")
    return sequential, functional


def test_from_keras3_rebuilds_sequential_and_functional_models_exactly():
    x = np.random.default_rng(0).random((4, 8, 8, 1)).astype(np.float32)
    for model in keras3_models():
        rebuilt = tfc.from_keras3(model)
        assert isinstance(rebuilt, keras.Model) and rebuilt.name == model.name
        np.testing.assert_allclose(rebuilt.predict(x, verbose=0), model.predict(x, verbose=0), atol=1e-6)
        pruned = tfc.prune.magnitude(rebuilt, target_sparsity=0.5, end_step=10)  # TF-MOT takes it
        assert tfc.prune.is_pruned(pruned)
    sequential, functional = (tfc.from_keras3(model) for model in keras3_models())
    assert float(sequential.layers[0].kernel_regularizer.l2) == pytest.approx(1e-4)
    assert [layer.__class__.__name__ for layer in functional.layers][3:5] == ["Add", "Concatenate"]




def _keras3_config_cases():
    """Keras 3 layers whose configuration differs from their Keras 2 counterpart's, with what Keras 2 must hold."""
    import keras as keras3

    layers = keras3.layers
    return {
        "LeakyReLU negative_slope is alpha": (
            [layers.Dense(4), layers.LeakyReLU(negative_slope=0.2, name="leaky")],
            lambda rebuilt: rebuilt.get_layer("leaky").alpha == pytest.approx(0.2),
        ),
        "hard_sigmoid keeps Keras 3's formula": (
            [layers.Dense(4, activation="hard_sigmoid", name="gate")],
            lambda rebuilt: rebuilt.get_layer("gate").activation.__name__ == "hard_sigmoid_keras3",
        ),
        "an Activation layer's hard_sigmoid too": (
            [layers.Dense(4), layers.Activation("hard_sigmoid", name="gate")],
            lambda rebuilt: rebuilt.get_layer("gate").activation.__name__ == "hard_sigmoid_keras3",
        ),
        "dtype policies are names": (
            [layers.Dense(4, name="dense", dtype="float32")],
            lambda rebuilt: rebuilt.get_layer("dense").dtype == "float32",
        ),
        "quantization_config and rms_scaling left unset are dropped": (
            [layers.Dense(4, name="dense"), layers.LayerNormalization(name="norm")],
            lambda rebuilt: rebuilt.get_layer("norm").center,
        ),
        "a fixed batch_shape is the batch_input_shape": (
            [layers.Dense(4)],
            lambda rebuilt: tuple(rebuilt.input_shape) == (2, 6),
        ),
    }


@pytest.mark.parametrize("case", sorted(_keras3_config_cases()))
def test_keras3_settings_that_keras2_names_or_computes_otherwise_are_mapped(case):
    import keras as keras3

    body, holds = _keras3_config_cases()[case]
    batch = 2 if "batch_shape" in case else None
    model = keras3.Sequential([keras3.Input(batch_shape=(batch, 6)), *body])
    x = np.random.default_rng(0).normal(size=(2, 6)).astype(np.float32) * 4  # hard_sigmoid's formulas differ off 0
    rebuilt = tfc.from_keras3(model)
    np.testing.assert_allclose(rebuilt.predict(x, verbose=0), model.predict(x, verbose=0), atol=1e-6)
    assert holds(rebuilt)
