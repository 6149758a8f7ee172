"""Weight sharing: TF-MOT's weight clustering, made safe to call, and a count of the values that remain."""

import numpy as np

from tfcompress._checks import check_positive_integer
from tfcompress._graph import clone_with_weights
from tfcompress._keras import keras, tfmot, tfmot_module
from tfcompress._model_guards import ensure_graph_model

_clustering = tfmot.clustering.keras
ClusterWeights = tfmot_module("python.core.clustering.keras.cluster_wrapper").ClusterWeights
# `tfmot.clustering.keras.experimental.cluster_weights` does not resolve in TF-MOT 0.8.1: the
# package's `experimental` module never imports its `cluster` submodule. This is the module
# that defines it, with the sparsity-preserving and per-channel options.
_experimental = tfmot_module("python.core.clustering.keras.experimental.cluster")
_INITS = {
    "kmeans++": _clustering.CentroidInitialization.KMEANS_PLUS_PLUS,
    "linear": _clustering.CentroidInitialization.LINEAR,
    "density": _clustering.CentroidInitialization.DENSITY_BASED,
}
# The layers whose kernels TF-MOT's registry clusters. It lists DepthwiseConv2D (a Conv2D
# subclass) with no weights to cluster, so wrapping one would change nothing.
_CLUSTERED_LAYERS = (keras.layers.Conv2D, keras.layers.Dense)
_UNCLUSTERED_LAYERS = (keras.layers.DepthwiseConv2D,)


def cluster(
    model, clusters: int = 16, *, init: str = "kmeans++", per_channel: bool = False, preserve_sparsity=None, layers=None
):
    """Returns a copy of `model` whose kernels share `clusters` values each, ready to fine-tune.

    Fine-tuning trains the centroids; after `strip_clustering` the file gzips well, and
    `qat(..., preserve_clusters=True)` keeps the sharing.

    Args:
      model: a built Sequential or functional Keras 2 model.
      clusters: distinct values per kernel (per output channel with `per_channel`), >= 2.
      init: how centroids start: "kmeans++" (default), "linear" (evenly spaced between the
        kernel's min and max) or "density" (by the weights' distribution).
      per_channel: cluster each output channel of a Conv2D separately (more accurate, a
        table of values per channel); other layers are clustered per kernel.
      preserve_sparsity: keep exact zeros at zero, as a pruned model needs. None (the
        default) turns it on when any kernel holds zeros.
      layers: names of the layers to cluster. None clusters every Conv2D and Dense
        layer with more weights than `clusters` (TF-MOT does not cluster depthwise
        kernels).

    Returns:
      A new Keras model with TF-MOT clustering wrappers, not compiled. `model` is not
      modified. Compile it, fine-tune for an epoch or a few at a small learning rate, then
      `strip_clustering`.

    Raises:
      TypeError: `model` is not a Keras 2 model.
      ValueError: `clusters` or `init` is out of range, a name in `layers` is not a
        clusterable layer of `model`, or no layer has enough weights to cluster.

    Examples:
      >>> clustered = tfc.quantize.cluster(model, clusters=16)
      >>> clustered.compile(optimizer=keras.optimizers.Adam(1e-4), loss=loss, metrics=["accuracy"])
      >>> clustered.fit(x, y, epochs=2)
      >>> shared = tfc.quantize.strip_clustering(clustered)
    """
    model = ensure_graph_model(model)
    check_positive_integer("clusters", clusters)
    if clusters < 2:
        raise ValueError(f"`clusters` must be at least 2. Received: clusters={clusters}")
    if init not in _INITS:
        raise ValueError(f"`init` must be one of {tuple(_INITS)}. Received: init={init!r}")
    chosen = _layers_to_cluster(model, clusters, layers)
    if preserve_sparsity is None:
        preserve_sparsity = any(np.any(layer.get_weights()[0] == 0) for layer in model.layers if layer.name in chosen)

    settings = {
        "number_of_clusters": clusters,
        "cluster_centroids_init": _INITS[init],
        "preserve_sparsity": preserve_sparsity,
    }

    def wrap(layer):
        # The wrapper takes its centroids from the weights of the layer it wraps: the copy's.
        if layer.name not in chosen:
            return layer
        channels = per_channel and isinstance(layer, keras.layers.Conv2D)
        return _experimental.cluster_weights(layer, cluster_per_channel=channels, **settings)

    return keras.models.clone_model(clone_with_weights(model), clone_function=wrap)


def strip_clustering(model):
    """Removes the clustering wrappers: a plain Keras model whose kernels hold the shared values.

    Args:
      model: a model returned by `cluster` (and fine-tuned).

    Returns:
      A new plain Keras model, independent of `model`.

    Raises:
      TypeError: `model` is not a Keras 2 model.
      ValueError: `model` has no clustering wrappers.

    Examples:
      >>> shared = tfc.quantize.strip_clustering(clustered)
      >>> tfc.quantize.unique_weights(shared)["layers"][0]["unique"]
      16
    """
    model = ensure_graph_model(model)
    if not is_clustered(model):
        raise ValueError("`model` has no clustering wrappers to strip; it is already a plain model.")
    return clone_with_weights(_clustering.strip_clustering(model))


def is_clustered(model) -> bool:
    """Whether `model` holds TF-MOT clustering wrappers.

    Args:
      model: a Keras 2 model.

    Returns:
      True if any layer is a TF-MOT `ClusterWeights` wrapper.

    Examples:
      >>> is_clustered(tfc.quantize.cluster(model))
      True
    """
    return any(isinstance(layer, ClusterWeights) for layer in model.submodules)


def unique_weights(model) -> dict:
    """How many distinct values each kernel holds: what weight sharing left.

    Args:
      model: a plain Keras 2 model (for a clustered one, `strip_clustering` it first).

    Returns:
      A dict with `layers`: one `{"layer", "weights", "unique", "unique_per_channel"}` per
      layer with a kernel (`unique_per_channel` is the largest count over the last axis'
      channels); and `max_unique`, the largest `unique` over the layers.

    Raises:
      TypeError: `model` is not a Keras 2 model.
      ValueError: `model` still has clustering wrappers.

    Examples:
      >>> tfc.quantize.unique_weights(tfc.quantize.strip_clustering(clustered))["max_unique"]
      16
    """
    model = ensure_graph_model(model)
    if is_clustered(model):
        raise ValueError("`model` still has clustering wrappers; pass tfc.quantize.strip_clustering(model).")
    rows = []
    for layer in model.layers:
        kernel = _kernel(layer)
        if kernel is None:
            continue
        # Output channels are the last axis, except a depthwise kernel's (height, width, in, multiplier).
        depthwise = isinstance(layer, keras.layers.DepthwiseConv2D)
        channels = (
            kernel.reshape(kernel.shape[0] * kernel.shape[1], -1) if depthwise else kernel.reshape(-1, kernel.shape[-1])
        )
        rows.append(
            {
                "layer": layer.name,
                "weights": int(kernel.size),
                "unique": int(np.unique(kernel).size),
                "unique_per_channel": max(int(np.unique(channels[:, c]).size) for c in range(channels.shape[1])),
            }
        )
    return {"layers": rows, "max_unique": max((row["unique"] for row in rows), default=0)}


def _kernel(layer):
    for weight in layer.weights:
        if weight.name.split("/")[-1].split(":")[0] in ("kernel", "depthwise_kernel"):
            return np.asarray(weight)
    return None


def _layers_to_cluster(model, clusters, names) -> set:
    candidates = {
        layer.name: layer
        for layer in model.layers
        if isinstance(layer, _CLUSTERED_LAYERS)
        and not isinstance(layer, _UNCLUSTERED_LAYERS)
        and _kernel(layer) is not None
    }
    if names is None:
        chosen = {name for name, layer in candidates.items() if _kernel(layer).size > clusters}
        if not chosen:
            raise ValueError(
                f"No Conv2D or Dense layer of {model.name!r} has more than {clusters} weights "
                "to share; lower `clusters`."
            )
        return chosen
    names = [names] if isinstance(names, str) else list(names)
    unknown = [name for name in names if name not in candidates]
    if unknown:
        raise ValueError(
            f"`layers` names {unknown}, which are not Conv2D or Dense layers of {model.name!r}. "
            f"Those layers are: {sorted(candidates)}."
        )
    small = [name for name in names if _kernel(candidates[name]).size <= clusters]
    if small:
        raise ValueError(f"Layers {small} have no more than {clusters} weights; sharing cannot shrink them.")
    return set(names)
