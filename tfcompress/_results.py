"""The base of result dataclasses: fields by attribute, `to_dict()` for JSON, item access kept for one release."""

import dataclasses
import warnings


class Result:
    """A frozen dataclass result; `result["key"]` still works, with a DeprecationWarning, for one release."""

    def to_dict(self) -> dict:
        """The fields as a plain dict (nested values copied), ready for `json.dump`."""
        return dataclasses.asdict(self)

    def __getitem__(self, key):
        if key not in {field.name for field in dataclasses.fields(self)}:
            raise KeyError(key)
        warnings.warn(
            f"{type(self).__name__} is a dataclass now: use .{key} instead of [{key!r}] (or .to_dict()); "
            "item access goes in the next release.",
            DeprecationWarning,
            stacklevel=2,
        )
        return getattr(self, key)

    def get(self, key, default=None):
        """Deprecated dict-style access, as `__getitem__`."""
        return self[key] if key in {field.name for field in dataclasses.fields(self)} else default
