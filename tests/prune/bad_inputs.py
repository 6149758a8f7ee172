"""Bad inputs to pruning: its cases of the catalogue (tests/test_bad_inputs.py)."""

import numpy as np

import tfcompress as tfc
from tests.bad_inputs_support import Subclassed
from tfcompress import keras

CASES = {
    "prune: sparsity 1": (lambda t, m, x: tfc.prune.magnitude(m, 1.0, end_step=10), ValueError, r"in \[0, 1\)"),
    "prune: negative sparsity": (lambda t, m, x: tfc.prune.magnitude(m, -0.1, end_step=10), ValueError, r"in \[0, 1\)"),
    "prune: subclassed model": (
        lambda t, m, x: tfc.prune.magnitude(Subclassed(), 0.5, end_step=10),
        ValueError,
        "subclassed model",
    ),
    "prune: unbuilt model": (
        lambda t, m, x: tfc.prune.magnitude(keras.Sequential([keras.layers.Dense(2)]), 0.5, end_step=10),
        ValueError,
        "is not built",
    ),
    "prune: strip a plain model": (lambda t, m, x: tfc.prune.strip(m), ValueError, "no pruning wrappers"),
    "finetune: a teacher whose outputs do not match": (
        lambda t, m, x: tfc.prune.finetune(
            tfc.prune.channels(m, 0.5), (x[:64], np.zeros(64, int)),
            teacher=keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Flatten(), keras.layers.Dense(5)]),
        ),  # fmt: skip
        ValueError,
        "output",
    ),
    "channels: a layer it cannot prune": (
        lambda t, m, x: tfc.prune.channels(
            keras.Sequential([keras.Input((4, 4, 1)), keras.layers.Conv2D(4, 1), keras.layers.Reshape((64,))])
        ),
        ValueError,
        r"Layer 'reshape.*' \(Reshape\) reshapes more than unit axes; channel pruning cannot handle it",
    ),
    "channels: a budget it cannot meet": (
        lambda t, m, x: tfc.prune.channels(m, budget={"parameters": 10}),
        ValueError,
        r"`budget` asks for at most 10 parameters, but even removing all but one channel",
    ),
    "channels: a data criterion without data": (
        lambda t, m, x: tfc.prune.channels(m, 0.5, criterion="taylor"),
        ValueError,
        r"criterion='taylor' measures channels on data; pass data=\(x, y\)",
    ),
    "iterative: unlabelled data": (
        lambda t, m, x: tfc.prune.iterative(m, x, 0.5),
        ValueError,
        r"`data` needs labels",
    ),
    "drop_blocks: a block that is not one": (
        lambda t, m, x: tfc.prune.drop_blocks(m, ["dense"]),
        ValueError,
        r"`blocks` names \['dense'\], which are not residual blocks",
    ),
    "gamma_penalty: a model without BatchNormalization": (
        lambda t, m, x: tfc.prune.gamma_penalty(m),
        ValueError,
        r"has no BatchNormalization layer that learns a scale",
    ),
}
