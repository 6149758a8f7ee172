"""Shared fixtures: real digits data and tiny models, seeded so every run is the same."""

import contextlib
import dataclasses
import gc
import signal
import subprocess
import sys

import numpy as np
import pytest

import tfcompress as tfc
from tfcompress import keras
from tfcompress._keras3 import keras_of


def pytest_configure(config):
    config.addinivalue_line(
        "markers",
        "slow: seconds or more on 2 cores (subprocesses, notebooks, the zoo, multi-worker, the heaviest conversions); "
        "`-m 'not slow'` leaves them out for a fast run",
    )
    # tfcompress must not call its own deprecated names: such a warning raised from inside the package fails.
    config.addinivalue_line(
        "filterwarnings", r"error:(tfc\.|to_tflite's|iterative's|\w+ is a dataclass now):DeprecationWarning:tfcompress"
    )


def pytest_collection_modifyitems(items):
    # Each file's tests of one xdist group (a zoo model) run one after another, as under xdist,
    # so `zoo_model` builds each model once in a run without workers too.
    first_seen = {}
    for item in items:
        mark = item.get_closest_marker("xdist_group")
        first_seen.setdefault((item.path, mark.args[0] if mark else item.nodeid), len(first_seen))

    def place(item):
        mark = item.get_closest_marker("xdist_group")
        return first_seen[(item.path, mark.args[0] if mark else item.nodeid)]

    items.sort(key=place)


@pytest.fixture(scope="session")
def digits():
    """scikit-learn's real 8x8 digits: ((x_train, y_train), (x_test, y_test))."""
    return tfc.data.load_digits()


def small_cnn(filters=8, units=32, name=None, fixed_names=False, k=keras):
    """A tiny CNN for 8x8 digits that outputs 10 logits, built with the Keras module `k` (tf_keras by default).

    With `fixed_names`, its layers are named as Keras names them in a fresh session
    (conv2d, dense, dense_1), whatever was built before.
    """
    keras = k
    names = dict.fromkeys(("conv2d", "max_pooling2d", "flatten", "dense", "dense_1"))
    names = {name: name for name in names} if fixed_names else names
    return keras.Sequential(
        [
            keras.Input(shape=(8, 8, 1)),
            keras.layers.Conv2D(filters, 3, padding="same", activation="relu", name=names["conv2d"]),
            keras.layers.MaxPooling2D(name=names["max_pooling2d"]),
            keras.layers.Flatten(name=names["flatten"]),
            keras.layers.Dense(units, activation="relu", name=names["dense"]),
            keras.layers.Dense(10, name=names["dense_1"]),
        ],
        name=name,
    )


def accuracy(model, x, y):
    """Top-1 accuracy of a multi-class Keras model, computed here: the share of highest scores that are the label."""
    return float(np.mean(np.argmax(model.predict(x, batch_size=256, verbose=0), axis=-1) == np.asarray(y)))


def compile_classifier(model, learning_rate=1e-3):
    keras = keras_of(model)
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    return model


def _trained_cnn(digits, k):
    (x_train, y_train), _ = digits
    k.utils.set_random_seed(0)
    model = compile_classifier(small_cnn(filters=16, units=64, name="trained_cnn", fixed_names=True, k=k))
    model.fit(x_train, y_train, epochs=10, batch_size=32, verbose=0)
    return model


@pytest.fixture(scope="session")
def trained_cnn(digits):
    """A small CNN (17k parameters) trained on digits, in tf_keras. Tests must not change it."""
    return _trained_cnn(digits, keras)


@pytest.fixture(scope="session")
def trained_cnn3(digits):
    """`trained_cnn` built and trained with Keras 3, as a user who ran `import keras` has it."""
    import keras as keras3

    return _trained_cnn(digits, keras3)


@dataclasses.dataclass
class Engine:
    """One Keras, and the tests' models in it: what a test parametrized over both engines works with.

    Attributes:
      name: "keras2" (tf_keras, TF-MOT's engine) or "keras3" (the user's `import keras`).
      keras: the Keras module.
      trained_cnn: `trained_cnn` in this Keras.
    """

    name: str
    keras: object
    trained_cnn: object

    def small_cnn(self, **kwargs):
        """`small_cnn` in this Keras."""
        return small_cnn(**kwargs, k=self.keras)


ENGINES = ("keras2", "keras3")


@pytest.fixture(params=ENGINES)
def engine(request):
    """Each engine in turn: tf_keras models through TF-MOT's engine, Keras 3 models through the Keras 3 one."""
    if request.param == "keras2":
        return Engine("keras2", keras, request.getfixturevalue("trained_cnn"))
    import keras as keras3

    return Engine("keras3", keras3, request.getfixturevalue("trained_cnn3"))


@pytest.fixture(scope="session")
def zoo_model(tmp_path_factory):
    """`get(name, engine="keras2")`: a zoo model, built once while its tests run, `(model, x, y, calibration, path)`.

    The image models trained on digits for their task, with 200 held-out digits and their
    labels and 128 more to calibrate on; the others with random inputs (y None). A Keras 3
    user's file (`zoo.KERAS3_FILES`) is saved by Keras 3 and loaded by its path (`path`);
    for the rest `path` is None. With engine="keras3", its Keras 3 twin of the same weights. Tests must not
    change the model.
    """
    from tests import zoo
    from tfcompress import _model_files

    cache = {}

    def get(name, engine="keras2"):
        if engine == "keras3":  # the same trained weights in Keras 3's build of the model
            if (name, engine) not in cache:
                model, x, y, calibration, path = get(name)
                cache[(name, engine)] = (zoo.keras3_twin(name, model), x, y, calibration, path)
            return cache[(name, engine)]
        if name not in cache:
            path = None
            if name in zoo.KERAS3_FILES:
                path = zoo.keras3_file(name, tmp_path_factory.mktemp(name))
                model = _model_files.load(path)  # a Keras 3 model, as the user saved it
            else:
                model = zoo.build(name, trained=True)
            if name in zoo.IMAGE_CLASSIFIERS or name in zoo.KERAS3_FILES:
                (x, y), calibration = zoo.digit_images(name, 200, offset=1200), zoo.digit_images(name, 128, 1400)[0]
            else:
                x, y, calibration = zoo.inputs_for(name, model, 200, seed=1), None, zoo.inputs_for(name, model, 128, 2)
            for key in list(cache)[:-1]:  # a group's tests run together; keeping every model exhausts memory
                cache.pop(key)
            gc.collect()
            cache[name] = (model, x, y, calibration, path)
        return cache[name]

    return get


@pytest.fixture
def seeded():
    keras.utils.set_random_seed(0)


def weights_of(model):
    return [np.array(weight) for weight in model.get_weights()]


def keras3_model():
    """A real Keras 3 model, as a user who ran `import keras` gets one."""
    import keras as keras3

    return keras3.Sequential([keras3.Input((8, 8, 1)), keras3.layers.Flatten(), keras3.layers.Dense(10)])


def with_removed_channels_zeroed(model, plan):
    """A copy of `model` in which every layer ignores the channels `plan` removes: their weights are zero.

    Where `plan` cuts a weight, the copy keeps it and zeroes the cut entries instead, so
    the pruned model must compute exactly what this copy computes.
    """
    from tfcompress.prune import layer_kinds as kinds
    from tfcompress.prune.coupling import nodes

    copy = keras.models.clone_model(model)
    inputs_of = {layer.name: names for layer, names in nodes(model)}
    for layer in model.layers:
        weights = layer.get_weights()
        if not weights or kinds.role(layer)[0] is None:
            copy.get_layer(layer.name).set_weights(weights)
            continue
        kept_in = [plan.kept(plan.layouts[name]) for name in inputs_of[layer.name]]
        layout = plan.layouts[layer.name]
        kept_out = plan.kept(type(layout)(layout.segments[:1], layout.positions))
        # Cut arrays of positions instead of weights: what survives is what the pruned model keeps.
        markers = [np.arange(weight.size).reshape(weight.shape) for weight in weights]
        survivors = kinds.cut_weights(layer, markers, kept_in, kept_out)
        zeroed = []
        for weight, kept in zip(weights, survivors):
            mask = np.zeros(weight.size, bool)
            mask[np.asarray(kept).reshape(-1)] = True
            zeroed.append(np.where(mask.reshape(weight.shape), weight, 0).astype(weight.dtype))
        copy.get_layer(layer.name).set_weights(zeroed)
    return copy


@contextlib.contextmanager
def tfcompress_child(*arguments, cwd):
    """`python -m tfcompress ARGUMENTS` as a child process that cannot outlive a failed test.

    Ctrl-C is restored in the child: started from a background job, it would inherit
    SIGINT ignored, and Python then never raises KeyboardInterrupt.
    """
    process = subprocess.Popen(
        [sys.executable, "-m", "tfcompress", *arguments],
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    try:
        yield process
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()


def free_ports(count):
    """`count` TCP ports on localhost that nothing listens on now, for local multi-worker clusters."""
    import socket

    sockets = [socket.socket() for _ in range(count)]
    for sock in sockets:
        sock.bind(("localhost", 0))
    ports = [sock.getsockname()[1] for sock in sockets]
    for sock in sockets:
        sock.close()
    return ports
