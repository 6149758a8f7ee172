"""Loading users' model files without running code from them, whichever Keras saved them.

A Lambda layer stores Python code in the file (bytecode in `.h5` and SavedModel
folders, source in `.keras`), and Keras runs it while it rebuilds the model, before
any of our code sees a layer. So the file's Keras configuration is read and checked
first, as plain JSON, and a file with such a layer is only handed to Keras when the
user says they trust it. A file saved by Keras 3 (what `tf.keras` is for TensorFlow >=
2.16 users) is loaded by Keras 3 in its safe mode and stays a Keras 3 model, for the Keras 3
engine; a layer that is not Keras's own is refused by name before anything is deserialized.
"""

import json
import os
import zipfile

import h5py

from tfcompress._keras import keras

SUFFIXES = (".keras", ".h5", ".hdf5")
# The models of a pruning or quantization-aware fit, tfcompress's or TF-MOT's, by the class names a file records.
IN_TRAINING = {
    **dict.fromkeys(("PruningModel", "PruneLowMagnitude"), "pruning"),
    **dict.fromkeys(("QuantizationAwareModel", "QuantizeWrapper", "QuantizeWrapperV2", "QuantizeLayer"), "qat"),
}
# Layer classes whose configuration carries Python code that deserializing runs.
CODE_CARRYING_LAYERS = ("Lambda",)
TRUST_OPT_IN = "set `trust_model_code: true` in the recipe (--trust_model_code on the command line)"


def load(path, *, trust_code: bool = False, argument: str = "model"):
    """Loads a `.keras`, `.h5` or SavedModel model file in the Keras that saved it, refusing code it carries."""
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"`{argument}`: no model file or folder at {path}.")
    if not (os.path.isdir(path) or path.lower().endswith(SUFFIXES)):
        raise ValueError(f"`{argument}` must be a .keras or .h5 file or a SavedModel folder. Received: {path}")
    if not trust_code:
        carrying = code_carrying_layers(path)
        if carrying:
            raise ValueError(
                f"`{argument}`: {path} holds Lambda layers {carrying}, whose Python code would run as the file is "
                f"loaded; tfcompress runs no code from a model file unless told to. If you trust the file, "
                f"{TRUST_OPT_IN}. Otherwise rebuild the model with ordinary Keras layers in place of the Lambdas."
            )
    _check_not_in_training(path, argument)
    version = keras_version(path)
    if version.startswith("3"):
        model = _load_with_keras3(path, version, trust_code, argument)
    else:
        try:
            # safe_mode is Keras's own guard in .keras files; the check above covers every format.
            options = {"safe_mode": not trust_code} if path.lower().endswith(".keras") else {}
            model = keras.models.load_model(path, compile=False, **options)
        except Exception as error:  # Keras raises many types for unreadable or foreign files.
            raise ValueError(
                f"`{argument}`: {path} could not be loaded by Keras 2 (tf_keras): {_first_line(error)}. Save the "
                "model again with `model.save('model.keras')` and check that the file is complete."
            ) from error
    loss = trained_loss(path)
    if loss is not None:
        model.__dict__["_task_loss"] = loss
    return model


def keras_version(path) -> str:
    """The version of Keras that saved a `.keras` or `.h5` file ("" when the file does not say)."""
    try:
        if os.path.isdir(path):
            return ""
        if path.lower().endswith(".keras"):
            with zipfile.ZipFile(path) as archive:
                return str(json.loads(archive.read("metadata.json")).get("keras_version", ""))
        with h5py.File(path, "r") as file:
            version = file.attrs.get("keras_version", "")
            return version.decode() if isinstance(version, bytes) else str(version)
    except (OSError, KeyError, ValueError, zipfile.BadZipFile):
        return ""  # Keras's own loader then says what is wrong with the file


def trained_loss(path):
    """The name of the loss a model file was compiled with ("BinaryCrossentropy", "mse"), or None."""
    try:
        if os.path.isdir(path):
            return None
        if path.lower().endswith(".keras"):
            with zipfile.ZipFile(path) as archive:
                compiled = json.loads(archive.read("config.json")).get("compile_config") or {}
        else:
            with h5py.File(path, "r") as file:
                text = file.attrs.get("training_config")
                compiled = json.loads(text) if text is not None else {}
    except (OSError, KeyError, ValueError, zipfile.BadZipFile):
        return None
    loss = compiled.get("loss")
    return loss.get("class_name") if isinstance(loss, dict) else loss if isinstance(loss, str) else None


def _load_with_keras3(path, version, trust_code, argument):
    foreign = [f"{name!r} ({where})" for name, where in _foreign_layers(path)]
    if foreign:
        raise ValueError(
            f"`{argument}`: {path} (saved by Keras {version}) holds layers that are not Keras's own: "
            f"{', '.join(foreign[:3])}, and tfcompress does not import code to load them. Replace them with "
            "built-in Keras layers, save the model again, and rerun."
        )
    import keras as keras3  # Keras 3, as the user who saved the file has it

    try:
        loaded = keras3.saving.load_model(path, compile=False, safe_mode=not trust_code)
    except Exception as error:  # Keras raises many types for unreadable or foreign files.
        raise ValueError(
            f"`{argument}`: {path} was saved by Keras {version} and could not be loaded by Keras "
            f"{keras3.__version__}: {_first_line(error)}."
        ) from error
    return loaded


def _check_not_in_training(path, argument):
    """A file of a model mid-pruning or mid-QAT (either Keras's) is refused with what to save instead."""
    found = {IN_TRAINING.get(str(entry["class_name"])) for entry in _objects(path)}
    if "pruning" in found:
        raise ValueError(
            f"`{argument}`: {path} holds a model that is still being pruned (its masks or TF-MOT's pruning wrappers), "
            "which is saved to resume its own fit, not to be compressed further. Strip it and save what you ship: "
            "tfc.prune.strip(model).save('pruned.keras')."
        )
    if "qat" in found:
        raise ValueError(
            f"`{argument}`: {path} holds a quantization-aware model, whose fake quantization is for its int8 export: "
            "tfc.export.to_tflite(model, 'model.tflite'). To compress further, save the float model it came from."
        )


def _foreign_layers(path):
    """`(name, module.class)` of every object in a Keras 3 file's configuration whose class is not Keras's own."""
    found = []
    for entry in _objects(path):
        module = entry.get("module")
        if isinstance(module, str) and not module.startswith("keras"):
            inner = entry.get("config")
            name = inner.get("name") if isinstance(inner, dict) else None
            found.append((name or entry["class_name"], f"{module}.{entry['class_name']}"))
    return found


def _objects(path):
    """Every object (a dict with a `class_name`) in a file's configurations, its compile configuration left out.

    The file is loaded uncompiled: its losses and metrics stay unread.
    """

    def walk(config):
        if isinstance(config, dict):
            if "class_name" in config:
                yield config
            for key, value in config.items():
                if key != "compile_config":
                    yield from walk(value)
        elif isinstance(config, list):
            for item in config:
                yield from walk(item)

    for config in _configs(path):
        yield from walk(config)


def _first_line(error) -> str:
    return str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__


def code_carrying_layers(path) -> list:
    """Names of the layers in a model file whose configuration carries Python code."""
    names = []
    for entry in _objects(os.fspath(path)):
        if entry["class_name"] in CODE_CARRYING_LAYERS:
            inner = entry.get("config")
            names.append((inner if isinstance(inner, dict) else entry).get("name") or entry.get("name", "?"))
    return list(dict.fromkeys(names))


def _configs(path):
    """The JSON configurations a file holds: one for `.keras` and `.h5`, one per object for SavedModel."""
    try:
        if os.path.isdir(path):
            return _saved_model_configs(path)
        if path.lower().endswith(".keras"):
            with zipfile.ZipFile(path) as archive:
                return [json.loads(archive.read("config.json"))]
        with h5py.File(path, "r") as file:
            text = file.attrs.get("model_config")
            return [json.loads(text)] if text is not None else []
    except (OSError, KeyError, ValueError, zipfile.BadZipFile):
        return []  # not a readable model file: loading it fails with Keras's reason, before any layer exists


def _saved_model_configs(folder):
    from tf_keras.protobuf import saved_metadata_pb2

    metadata_path = os.path.join(folder, "keras_metadata.pb")
    if not os.path.isfile(metadata_path):
        return []  # a SavedModel without Keras metadata holds graphs, not Python
    metadata = saved_metadata_pb2.SavedMetadata()
    with open(metadata_path, "rb") as file:
        metadata.ParseFromString(file.read())
    return [json.loads(node.metadata) for node in metadata.nodes if node.metadata]
