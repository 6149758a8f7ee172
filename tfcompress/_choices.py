"""The named choices users pass as strings, and the constants stages share.

No TensorFlow here: the recipe checker and the stages both read these, so a recipe is
checked against the same names the stages accept.
"""

# The models a recipe may name instead of a file (tfcompress.models).
BUILTIN_MODELS = ("builtin:teacher", "builtin:student", "builtin:resnet")
# What a model's output predicts (tfcompress._tasks): one class of several, a yes/no, several yes/nos, or values.
TASKS = ("multiclass", "binary", "multilabel", "regression")
# Where a recipe's data comes from (tfcompress.data.sources).
DATA_SOURCES = ("builtin", "mnist", "directory", "npz")

# The tf.distribute strategies a recipe's training stages can run under (tfcompress.pipeline.distribution).
DISTRIBUTE = ("mirrored", "multi_worker", "tpu")

# Channel-importance criteria of `tfc.prune.channels`; the last three measure activations on data.
CHANNEL_CRITERIA = ("l1", "l2", "bn_gamma", "taylor", "mean_activation", "apoz")
DATA_DRIVEN_CRITERIA = ("taylor", "mean_activation", "apoz")

# The LiteRT quantizer's recipe for each export mode it serves (the `quantizer` extra).
QUANTIZER_RECIPES = {
    "weights_int8": "weight_only_wi8_afp32",
    "weights_int4": "weight_only_wi4_afp32",
    "dynamic_int4": "dynamic_wi4_afp32",
}
# The I/O types each export mode accepts, default first. uint8 is the default for int8
# models: Android's LiteRT/MediaPipe image classifier takes uint8 or float32 input, not
# int8, and uint8 carries camera pixels as they are.
EXPORT_MODES = {
    "float32": ("float32",),
    "float16": ("float32",),
    "dynamic": ("float32",),
    "int8": ("uint8", "float32", "int8"),
    "int16x8": ("float32", "int16"),
    **{mode: ("float32",) for mode in QUANTIZER_RECIPES},
}
IO_DTYPES = ("uint8", "int8", "float32", "int16")
# Modes whose activation ranges come from calibration data.
CALIBRATED_MODES = ("int8", "int16x8")
# How an int8 export picks each activation's range from calibration data (tfcompress.export.range_search).
CALIBRATION_METHODS = ("minmax", "percentile", "mse", "kl")
# How an int8 export rounds weights: to the nearest step, or learned per layer (tfcompress.quantize.adaround).
ROUNDING_METHODS = ("nearest", "adaround")
# How each kernel channel's int8 range is picked: its largest |weight|, or the range of least squared error.
WEIGHT_CALIBRATION_METHODS = ("minmax", "mse")

# Training examples the data-driven channel criteria score on.
SCORE_EXAMPLES = 512
