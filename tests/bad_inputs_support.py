"""What the bad-input catalogue's cases share: models, files and recipes users get wrong.

Files a case plants before its bad call are recorded in `PLANTED`; the harness in tests/test_bad_inputs.py checks
they come out unchanged.
"""

import os

import flatbuffers
import numpy as np

import tfcompress as tfc
from tests import zoo
from tests.test_model_files import lambda_file as write_lambda_file
from tfcompress import keras


class Subclassed(keras.Model):
    def __init__(self):
        super().__init__()
        self.dense = keras.layers.Dense(10)

    def call(self, inputs):
        return self.dense(keras.layers.Flatten()(inputs))


def recipe(tmp, **changes):
    recipe = {
        "model": "builtin:student",
        "output_dir": str(tmp / "out"),
        "stages": {"train": {"epochs": 1}, "export": {}},
    }
    recipe.update(changes)
    return recipe


# Files a case puts in place before its bad call (path -> content): they must come out unchanged.
PLANTED = {}


def file(tmp, name, content):
    path = tmp / name
    path.write_bytes(content)
    PLANTED[str(path)] = content
    return path


def tflite(tmp, model):
    path = tfc.export.to_tflite(model, tmp / "ok.tflite", mode="float32").path
    PLANTED[path] = open(path, "rb").read()
    return path


def with_a_nan_range(model, x):
    """`model` quantization-aware, one of its activation ranges NaN, as training that diverged leaves it."""
    quantization_aware = tfc.quantize.qat(model, representative_data=x[:64])
    limit = next(variable for variable in quantization_aware.variables if "post_activation_max" in variable.name)
    limit.assign(np.full(limit.shape, np.nan, np.float32))
    return quantization_aware


def with_a_nan_scale(tmp, model, x):
    """An int8 file of `model` whose first quantized tensor's scale is NaN (LiteRT segfaults on it)."""
    from ai_edge_litert import schema_py_generated as schema

    content = tfc.export.to_tflite(model, tmp / "int8.tflite", representative_data=x[:64]).path
    flat = schema.ModelT.InitFromObj(schema.Model.GetRootAs(open(content, "rb").read(), 0))
    tensor = next(t for t in flat.subgraphs[0].tensors if t.quantization is not None and t.quantization.scale)
    tensor.quantization.scale = np.full(len(tensor.quantization.scale), np.nan, np.float32)
    builder = flatbuffers.Builder(1024)
    builder.Finish(flat.Pack(builder), file_identifier=b"TFL3")
    os.remove(content)
    return file(tmp, "nan_scale.tflite", bytes(builder.Output()))


def keras3_subclassed():
    import keras as keras3

    class Keras3Subclassed(keras3.Model):
        def call(self, inputs):
            return inputs

    return Keras3Subclassed()


def keras3_lambda():
    import keras as keras3

    return keras3.Sequential([keras3.Input((4,)), keras3.layers.Lambda(lambda x: x * 2)])


def lambda_file(tmp, file_format):
    # The Lambda would write a .json: the check for files left behind catches it running.
    return str(write_lambda_file(tmp, file_format, tmp / "code_ran.json"))


def sequences(count):
    return np.random.default_rng(0).normal(size=(count, 20, 8)).astype(np.float32)


def variable_gru():
    inputs = keras.Input((None, 8))
    return keras.Model(inputs, keras.layers.Dense(2)(keras.layers.GRU(8, name="gru")(inputs)))


def permuted():
    return keras.Sequential(
        [keras.Input((8, 8, 1)), keras.layers.Conv2D(8, 3), keras.layers.Permute((2, 1, 3), name="swap"),
         keras.layers.Conv2D(4, 3), keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(3)]
    )  # fmt: skip


def multi_io_file(tmp):
    return tflite(tmp, zoo.build("multi_io"))


def one_unit():
    keras.utils.set_random_seed(0)
    return keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Flatten(), keras.layers.Dense(1, name="score")])


def keras3_custom_file(tmp):
    """A Keras 3 `.keras` file holding a layer of the user's own package."""
    import keras as keras3

    @keras3.saving.register_keras_serializable(package="users")
    class Doubling(keras3.layers.Layer):
        def call(self, inputs):
            return inputs * 2

    model = keras3.Sequential(
        [keras3.Input((8, 8, 1)), Doubling(name="doubling"), keras3.layers.Flatten(), keras3.layers.Dense(10)]
    )
    model.save(tmp / "custom.keras")
    PLANTED[str(tmp / "custom.keras")] = (tmp / "custom.keras").read_bytes()
    return tmp / "custom.keras"


def keras3_twin(name):
    import keras as keras3

    return zoo.build(name, keras3)


def npz(tmp, **arrays):
    np.savez(tmp / "data.npz", **arrays)
    PLANTED[str(tmp / "data.npz")] = (tmp / "data.npz").read_bytes()
    return tmp / "data.npz"


def nan_npz(tmp, x):
    x = x[:100].copy()
    x[3, 0, 0, 0] = np.nan
    labels = np.arange(100) % 10
    return npz(tmp, x_train=x, y_train=labels, x_test=x, y_test=labels)


def earlier_run(tmp):
    folder = tmp / "earlier"
    folder.mkdir()
    file(folder, "report.json", b"{}")
    return folder


def snapshot(folder):
    return {
        path: open(path, "rb").read()
        for path in (os.path.join(root, name) for root, _, names in os.walk(folder) for name in names)
    }
