"""Shared fixtures: real digits data and tiny models, seeded so every run is the same."""

import numpy as np
import pytest

import tfcompress as tfc
from tfcompress import keras


@pytest.fixture(scope="session")
def digits():
    """scikit-learn's real 8x8 digits: ((x_train, y_train), (x_test, y_test))."""
    return tfc.data.load_digits()


def small_cnn(filters=8, units=32, name=None):
    """A tiny CNN for 8x8 digits that outputs 10 logits."""
    return keras.Sequential(
        [
            keras.Input(shape=(8, 8, 1)),
            keras.layers.Conv2D(filters, 3, padding="same", activation="relu"),
            keras.layers.MaxPooling2D(),
            keras.layers.Flatten(),
            keras.layers.Dense(units, activation="relu"),
            keras.layers.Dense(10),
        ],
        name=name,
    )


def compile_classifier(model, learning_rate=1e-3):
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    return model


@pytest.fixture(scope="session")
def trained_cnn(digits):
    """A small CNN (17k parameters) trained on digits. Tests must not change it."""
    (x_train, y_train), _ = digits
    keras.utils.set_random_seed(0)
    model = compile_classifier(small_cnn(filters=16, units=64, name="trained_cnn"))
    model.fit(x_train, y_train, epochs=10, batch_size=32, verbose=0)
    return model


@pytest.fixture
def seeded():
    keras.utils.set_random_seed(0)


def weights_of(model):
    return [np.array(weight) for weight in model.get_weights()]


def keras3_model():
    """A real Keras 3 model, as a user who ran `import keras` gets one."""
    import keras as keras3

    return keras3.Sequential([keras3.Input((8, 8, 1)), keras3.layers.Flatten(), keras3.layers.Dense(10)])
