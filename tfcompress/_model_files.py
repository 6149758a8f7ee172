"""Loading users' model files without running code from them.

A Lambda layer stores Python code in the file (bytecode in `.h5` and SavedModel
folders, source in `.keras`), and Keras runs it while it rebuilds the model, before
any of our code sees a layer. So the file's Keras configuration is read and checked
first, as plain JSON, and a file with such a layer is only handed to Keras when the
user says they trust it.
"""

import json
import os
import zipfile

import h5py

from tfcompress._keras import keras

SUFFIXES = (".keras", ".h5", ".hdf5")
# Layer classes whose configuration carries Python code that deserializing runs.
CODE_CARRYING_LAYERS = ("Lambda",)
TRUST_OPT_IN = "set `trust_model_code: true` in the recipe (--trust_model_code on the command line)"


def load(path, *, trust_code: bool = False, argument: str = "model"):
    """Loads a `.keras`, `.h5` or SavedModel model file with Keras 2, refusing code it carries.

    Args:
      path: the file, or the SavedModel folder.
      trust_code: load a file whose layers carry Python code (Lambda layers), running
        that code; only for files from a source the user trusts.
      argument: how messages name the file's setting, e.g. "stages.distill.teacher".

    Returns:
      The model, uncompiled.

    Raises:
      FileNotFoundError: nothing exists at `path`.
      ValueError: `path` is not a model file Keras 2 can read, or it carries code and
        `trust_code` is False (nothing of it has run).

    Example:
      >>> model = load("model.h5", argument="model")
    """
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
    try:
        # safe_mode is Keras's own guard in .keras files; the check above covers every format.
        options = {"safe_mode": not trust_code} if path.lower().endswith(".keras") else {}
        return keras.models.load_model(path, compile=False, **options)
    except Exception as error:  # Keras raises many types for unreadable or foreign files.
        summary = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise ValueError(
            f"`{argument}`: {path} could not be loaded by Keras 2 (tf_keras): {summary}. If Keras 3 saved it, load "
            "it with `keras.models.load_model` and pass the model through tfc.from_keras3(model)."
        ) from error


def code_carrying_layers(path) -> list:
    """Names of the layers in a model file whose configuration carries Python code.

    Reads only the file's configuration (JSON); nothing in it is deserialized or run.

    Args:
      path: a `.keras` or `.h5` file, or a SavedModel folder.

    Returns:
      The layer names, nested models' layers included; empty when the file carries no
      code or holds no Keras configuration that could be read (Keras then reports why
      it cannot load it).

    Example:
      >>> code_carrying_layers("model.h5")
      ['scale_by_two']
    """
    names = []
    for config in _configs(os.fspath(path)):
        _collect(config, names)
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


def _collect(config, names):
    if isinstance(config, dict):
        if config.get("class_name") in CODE_CARRYING_LAYERS:
            inner = config.get("config")
            names.append((inner if isinstance(inner, dict) else config).get("name") or config.get("name", "?"))
        for value in config.values():
            _collect(value, names)
    elif isinstance(config, list):
        for item in config:
            _collect(item, names)
