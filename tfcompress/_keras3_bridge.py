"""Keras 3 models rebuilt as Keras 2 (tf_keras), which TF-MOT and so every tfcompress stage need."""

import inspect
import json

import numpy as np

from tfcompress._keras import keras, tf
from tfcompress._keras3 import is_keras3_model

# Keras 3 configuration keys that some Keras 2 layers do not take, with the value that means
# "as Keras 2 does": such a key is dropped where the Keras 2 layer lacks it; any other value
# is a feature Keras 2 cannot rebuild.
_KERAS3_ONLY = {
    "data_format": "channels_last",  # preprocessing layers: Keras 2's work on channels-last images
    "value_range": [0, 255],  # RandomContrast clips to it in training; Keras 2's clips to [0, 255]
    "pad_to_aspect_ratio": False,
    "fill_mode": "constant",  # Resizing's padding, unused without pad_to_aspect_ratio
    "fill_value": 0.0,
    "antialias": False,
    "lora_rank": None,
    "lora_alpha": None,
    "quantization_config": None,
    "optional": False,
    "synchronized": False,
    "use_gate": False,
    "sliding_window": None,
    "rms_scaling": False,
    "flash_attention": None,
}
_DTYPE_POLICIES = ("DTypePolicy", "FloatDTypePolicy")
_TENSOR = "__keras_tensor__"
_MODELS = ("Functional", "Sequential")
# Modules whose entries in a Keras 3 functional config are operations on tensors, not layers.
_OPS = ("keras.src.ops.numpy", "keras.src.ops.math", "keras.src.ops.nn")
# Those operations, as the TensorFlow functions that become TFOpLambda layers in Keras 2.
_OPERATIONS = {
    "Add": tf.math.add,
    "Subtract": tf.math.subtract,
    "Multiply": tf.math.multiply,
    "TrueDivide": tf.math.truediv,
    "Divide": tf.math.truediv,
    "Negative": tf.math.negative,
    "Maximum": tf.math.maximum,
    "Minimum": tf.math.minimum,
    "Relu": tf.nn.relu,
    "Relu6": tf.nn.relu6,
    "Sigmoid": tf.math.sigmoid,
    "Tanh": tf.math.tanh,
}


@keras.utils.register_keras_serializable(package="tfcompress")
def hard_swish(x):
    """x * relu6(x + 3) / 6: MobileNetV3's activation, which Keras 3 has and Keras 2 lacks."""
    return x * tf.nn.relu6(x + 3.0) * (1.0 / 6.0)


@keras.utils.register_keras_serializable(package="tfcompress")
def hard_sigmoid_keras3(x):
    """relu6(x + 3) / 6: Keras 3's `hard_sigmoid`; Keras 2's function of that name is clip(0.2x + 0.5, 0, 1)."""
    return tf.nn.relu6(x + 3.0) * (1.0 / 6.0)


# Keras 3 activations under another name (or none) in Keras 2, or under the same name with another formula.
_ACTIVATIONS = {"hard_silu": hard_swish, "hard_swish": hard_swish, "silu": "swish", "hard_sigmoid": hard_sigmoid_keras3}
# Settings that Keras 3 names differently, by layer class.
_RENAMED = {"LeakyReLU": {"negative_slope": "alpha"}}


def from_keras3(model):
    """Rebuilds a Sequential or functional Keras 3 model as a Keras 2 (tf_keras) model.

    Each layer is recreated from its configuration as the Keras 2 layer of the same
    class, wired as in the original, and given the original's weights; the rebuilt
    model is then checked to compute the same outputs on random inputs. The Keras 3
    model is not modified.

    Args:
      model: a Keras 3 model (from `import keras` with Keras 3 installed).

    Returns:
      A new Keras 2 model with the same layers, names and weights.

    Raises:
      TypeError: `model` is not a Keras model, or is already Keras 2.
      ValueError: the model is subclassed, a layer has no Keras 2 counterpart or uses a
        Keras 3-only feature (the layer is named), or the rebuilt model computes
        different outputs.

    Examples:
      >>> import keras as keras3
      >>> k3 = keras3.Sequential([keras3.Input((28, 28, 1)), keras3.layers.Flatten(), keras3.layers.Dense(10)])
      >>> k2 = tfc.from_keras3(k3)          # now ready for tfc.prune.magnitude, tfc.quantize.qat, ...
    """
    if not is_keras3_model(model):
        if isinstance(model, keras.Model):
            raise TypeError("`model` is already a Keras 2 (tf_keras) model; use it as it is.")
        raise TypeError(f"`model` must be a Keras 3 model. Received: model of type {type(model).__name__}")
    kind = type(model).__name__
    if kind not in ("Sequential", "Functional"):
        raise ValueError(
            f"`model` is a subclassed Keras 3 model ({kind}); only Sequential and functional models can be rebuilt "
            "from their configuration. Rebuild it with `from tfcompress import keras` and load its weights."
        )
    # Through JSON: get_config() holds tuples and objects where the saved form has plain lists.
    config = json.loads(model.to_json())["config"]
    rebuilt = _sequential(config) if kind == "Sequential" else _functional(config)
    _copy_weights(model, rebuilt)
    check_same_outputs(model, rebuilt, what=f"The Keras 2 rebuild of {model.name!r}")
    if getattr(model, "loss", None) is not None:  # what it was compiled to train says its task (tfcompress._tasks)
        rebuilt.__dict__["_task_loss"] = model.loss
    return rebuilt


def _model(entry):
    """A nested Sequential or functional model's entry, rebuilt as a Keras 2 model."""
    config = entry["config"]
    return _sequential(config) if entry["class_name"] == "Sequential" else _functional(config)


def _sequential(config):
    layers = list(config["layers"])
    first = layers[0] if layers and layers[0]["class_name"] == "InputLayer" else None
    if first is None:
        raise ValueError("The Keras 3 Sequential model has no Input; build it with keras.Input(shape=...) first.")
    inputs = _input(first)
    rebuilt = [_model(entry) if entry["class_name"] in _MODELS else _layer(entry) for entry in layers[1:]]
    model = keras.Sequential([inputs] + rebuilt, name=config.get("name"))
    model.trainable = config.get("trainable", True)
    return model


def _functional(config):
    tensors = {}
    for entry in config["layers"]:
        name = entry["config"]["name"]
        if entry["class_name"] == "InputLayer":
            tensors[(name, 0, 0)] = _input(entry)
            continue
        if entry.get("module") in _OPS:  # `x / 127.5` in Keras 3: an operation, not a layer
            layer = _operation(entry)
        else:
            layer = _model(entry) if entry["class_name"] in _MODELS else _layer(entry)
        for node_index, node in enumerate(entry.get("inbound_nodes", [])):
            arguments = _resolve(node.get("args", []), tensors)
            keywords = _resolve(node.get("kwargs", {}), tensors)
            if keywords.get("mask", 0) is None:  # Keras 3 records "no mask" for BatchNormalization; Keras 2 need not
                del keywords["mask"]
            if keywords.get("training") is True:  # Keras 3's fit and predict pass their own flag over a recorded
                del keywords["training"]  # True (a nested Sequential's); Keras 2 would keep augmenting in predict
            outputs = layer(*arguments, **keywords)
            for tensor_index, output in enumerate(outputs if isinstance(outputs, (list, tuple)) else [outputs]):
                tensors[(name, node_index, tensor_index)] = output
    inputs = [tensors[tuple(reference)] for reference in _references(config["input_layers"])]
    outputs = [tensors[tuple(reference)] for reference in _references(config["output_layers"])]
    model = keras.Model(
        inputs[0] if len(inputs) == 1 else inputs, outputs[0] if len(outputs) == 1 else outputs, name=config.get("name")
    )
    model.trainable = config.get("trainable", True)
    return model


def _operation(entry):
    """A Keras 3 operation on tensors (`x / 127.5`, `x * y`) as the TensorFlow function that Keras 2 records."""
    function = _OPERATIONS.get(entry["class_name"])
    if function is None:
        raise ValueError(
            f"{entry['name']!r} is the Keras 3 operation {entry['module']}.{entry['class_name']}, which tfcompress "
            f"does not rebuild in Keras 2 (it rebuilds {sorted(_OPERATIONS)}). Replace it with a layer, or build "
            "the model with tfcompress.keras."
        )
    return lambda *args, **kwargs: function(*args, **kwargs)


def _references(layers):
    # One input is saved as ["name", 0, 0]; several as [["a", 0, 0], ["b", 0, 0]].
    return [layers] if layers and isinstance(layers[0], str) else layers


def _resolve(value, tensors):
    if isinstance(value, dict) and value.get("class_name") == _TENSOR:
        return tensors[tuple(value["config"]["keras_history"])]
    if isinstance(value, dict):
        return {key: _resolve(item, tensors) for key, item in value.items()}
    if isinstance(value, list):
        return [_resolve(item, tensors) for item in value]
    return value


def _input(entry):
    config = entry["config"]
    return keras.Input(batch_shape=tuple(config["batch_shape"]), dtype=_dtype(config.get("dtype")), name=config["name"])


def _layer(entry):
    class_name, config = entry["class_name"], dict(entry["config"])
    name = config.get("name", class_name)
    if class_name == "Lambda":
        raise ValueError(
            f"Layer {name!r} is a Lambda layer: its Python code is not part of the configuration, so it cannot be "
            "rebuilt. Replace it with a built-in layer, or build the model with tfcompress.keras."
        )
    layer_class = getattr(keras.layers, class_name, None)
    if layer_class is None or entry.get("module", "keras.layers").split(".")[0] != "keras":
        raise ValueError(
            f"Layer {name!r} ({entry.get('module', '')}.{class_name}) has no Keras 2 counterpart, so the model cannot "
            "be rebuilt as tf_keras. Replace it with a built-in layer, or build the model with tfcompress.keras."
        )
    takes = inspect.signature(layer_class.__init__).parameters
    for key, unused in _KERAS3_ONLY.items():
        if key in config and key not in takes:
            if config[key] != unused:
                raise ValueError(
                    f"Layer {name!r} uses the Keras 3-only setting {key}={config[key]!r}; its Keras 2 counterpart has "
                    f"none (it works as {key}={unused!r}). Set it so, or build the model with tfcompress.keras."
                )
            del config[key]
    config.pop("seed", None)  # only seeds dropout's randomness, which Keras 2 draws its own way
    for keras3_key, keras2_key in _RENAMED.get(class_name, {}).items():
        if keras3_key in config:
            config[keras2_key] = config.pop(keras3_key)
    if class_name == "MultiHeadAttention":  # Keras 2 records the shapes it was built for; it builds on first call
        config = {"query_shape": None, "key_shape": None, "value_shape": None, **config}
    try:
        return layer_class.from_config(_keras2_config(config))
    except (TypeError, ValueError, KeyError) as error:
        raise ValueError(f"Layer {name!r} ({class_name}) could not be rebuilt in Keras 2: {error}") from None


def _keras2_config(config):
    """Keras 3 serialized objects (`module`, `class_name`, `config`) in Keras 2's form."""
    converted = {}
    for key, value in config.items():
        if key == "dtype":
            converted[key] = _dtype(value)
        elif key == "activation" and value in _ACTIVATIONS:
            converted[key] = _ACTIVATIONS[value]
        elif isinstance(value, dict) and "class_name" in value and "config" in value:
            # Initializers and regularizers gained settings in Keras 3 that are None when unused.
            settings = {name: item for name, item in (value["config"] or {}).items() if item is not None}
            converted[key] = {"class_name": value["class_name"], "config": _keras2_config(settings)}
        else:
            converted[key] = value
    return converted


def _dtype(value):
    if isinstance(value, dict) and value.get("class_name") in _DTYPE_POLICIES:
        return value["config"]["name"]
    return value


def _copy_weights(source, target):
    for layer in source.layers:
        if not layer.weights:
            continue
        twin = target.get_layer(layer.name)
        if hasattr(layer, "layers") and hasattr(twin, "layers"):  # a nested model: its own weights, layer by layer
            _copy_weights(layer, twin)
            continue
        weights = layer.get_weights()
        shapes = [weight.shape for weight in twin.get_weights()]
        if shapes != [weight.shape for weight in weights]:
            raise ValueError(
                f"Layer {layer.name!r} holds weights of shapes {[w.shape for w in weights]} in Keras 3 but "
                f"{shapes} when rebuilt in Keras 2; it cannot be converted."
            )
        twin.set_weights(weights)


def check_same_outputs(source, target, what: str):
    """Raises ValueError unless `target` computes `source`'s outputs on random inputs; `what` names `target`."""
    rng = np.random.default_rng(0)
    shapes = [tuple(2 if size is None else size for size in tensor.shape) for tensor in source.inputs]
    inputs = [rng.random(shape).astype(np.float32) for shape in shapes]
    inputs = inputs[0] if len(inputs) == 1 else inputs
    try:
        expected = source.predict(inputs, verbose=0)
    except Exception as error:  # the user's own model: Keras raises many types
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise ValueError(
            f"The model {source.name!r} itself fails on inputs of its input shape {shapes}, so {what} cannot be "
            f"checked against it: {first}. Check that it predicts (model.predict) before converting it."
        ) from error
    actual = target.predict(inputs, verbose=0)
    for want, got in zip(
        expected if isinstance(expected, list) else [expected], actual if isinstance(actual, list) else [actual]
    ):
        difference = float(np.max(np.abs(np.asarray(want) - np.asarray(got))))
        if difference > 1e-4 * max(1.0, float(np.max(np.abs(want)))):
            raise ValueError(
                f"{what} computes different outputs (max difference {difference:.3g}); a layer behaves differently "
                "in the two Keras versions. Build the model with tfcompress.keras."
            )
