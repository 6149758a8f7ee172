"""Deprecated: recipes live with the pipeline, as `tfc.pipeline.recipe`; this name goes in the next release."""

import warnings

from tfcompress.pipeline import recipe as _recipe


def __getattr__(name):
    found = getattr(_recipe, name)  # AttributeError for a name recipes never had
    warnings.warn(
        f"tfc.pipeline.recipe.{name} is now tfc.pipeline.recipe.{name}; the old name goes in the next release.",
        DeprecationWarning,
        stacklevel=2,
    )
    return found
