"""The `tf.distribute` strategy a recipe's training stages run under, and who writes the files.

`distribute: mirrored` trains on every GPU (or logical device) of this machine;
`multi_worker` on every worker of the cluster that `TF_CONFIG` describes, as TensorFlow
reads it; `tpu` on the TPU this machine reaches. Every worker runs the whole recipe, so the
collective operations meet; only the chief writes the recipe's files, the others write
into a temporary folder, as TensorFlow's multi-worker guide has them do.
"""

import json
import os

from tfcompress._keras import tf


def strategy_for(name):
    """The strategy a recipe's `distribute` names."""
    if name is None:
        return None
    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    if name == "multi_worker":
        _check_tf_config()
        return tf.distribute.MultiWorkerMirroredStrategy()
    try:
        resolver = tf.distribute.cluster_resolver.TPUClusterResolver()
        tf.config.experimental_connect_to_cluster(resolver)
        tf.tpu.experimental.initialize_tpu_system(resolver)
    except (ValueError, RuntimeError, tf.errors.OpError) as error:
        raise ValueError(
            f"`distribute: tpu` found no TPU to run on ({str(error).strip().splitlines()[0]}). On Colab, choose a "
            "TPU runtime (Runtime > Change runtime type); elsewhere, remove `distribute` to train on one device."
        ) from None
    return tf.distribute.TPUStrategy(resolver)


def is_chief(strategy) -> bool:
    """Whether this process writes the run's files: always, except on a multi-worker cluster's other workers."""
    if not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        return True
    resolver = strategy.cluster_resolver
    if resolver.task_type in (None, "chief"):
        return True
    has_chief = "chief" in resolver.cluster_spec().as_dict()
    return resolver.task_type == "worker" and resolver.task_id == 0 and not has_chief


def _check_tf_config():
    text = os.environ.get("TF_CONFIG")
    if not text:
        raise ValueError(
            "`distribute: multi_worker` reads the cluster from the TF_CONFIG environment variable, as TensorFlow "
            'does, and it is not set. On every worker set it, e.g. {"cluster": {"worker": ["host1:12345", '
            '"host2:12345"]}, "task": {"type": "worker", "index": 0}}, with its own index, and run the same recipe.'
        )
    try:
        config = json.loads(text)
        ok = isinstance(config.get("cluster"), dict) and isinstance(config.get("task"), dict)
    except (json.JSONDecodeError, AttributeError):
        ok = False
    if not ok:
        raise ValueError(f"TF_CONFIG must be JSON with a `cluster` and a `task`; it is {text!r}.")
