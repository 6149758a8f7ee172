"""How a recipe section declares its keys, and the checks it declares them with.

Each key of a section is a `Key`: a check `(dotted_name, value) -> None` that raises
ValueError in the package's one message template (`tfcompress._checks`), and a default.
`complete` fills in the defaults and raises `RecipeError` naming the key. No TensorFlow
here: every stage declares its schema with these, and the recipe checker reads them.
"""

import copy
import functools
import numbers
from typing import Any, Callable, NamedTuple

from tfcompress._checks import check_integer, check_number, check_one_of, check_positive_integer, check_that

REQUIRED = object()  # a Key's default when the user must give the value


class RecipeError(ValueError):
    """A recipe key is unknown, missing or has a bad value; raised before any work starts."""


class Key(NamedTuple):
    """One setting of a recipe section: how it is checked, and its value when the recipe leaves it out.

    Attributes:
      check: `(name, value) -> None`, raising ValueError for a bad value; None accepts any.
      default: the value filled in, or `REQUIRED`.
      accepts: what the value may be, said when a required key is missing.
    """

    check: Callable
    default: Any = REQUIRED
    accepts: str = ""


def complete(values, schema: dict, prefix: str) -> dict:
    """Checks a section's keys against its schema and fills in the defaults."""
    values = {} if values is None else values
    if not isinstance(values, dict):
        raise RecipeError(f"`{prefix.rstrip('.') or 'recipe'}` must be a mapping of settings; got {values!r}.")
    unknown = [key for key in values if key not in schema]
    if unknown:
        raise RecipeError(f"Unknown key `{prefix}{unknown[0]}`; the keys here are {sorted(schema)}.")
    result = {}
    for key, (check, default, accepts) in schema.items():
        if key not in values or (values[key] is None and default is not REQUIRED):
            if default is REQUIRED:
                raise RecipeError(f"`{prefix}{key}` is required: {accepts}.")
            result[key] = copy.deepcopy(default)
            continue
        if check is not None:
            try:
                check(f"{prefix}{key}", values[key])
            except ValueError as error:
                raise RecipeError(str(error)) from None
        result[key] = values[key]
    return result


def number(low=None, high=None, low_open: bool = False, high_open: bool = False) -> Callable:
    """A check for a real number within bounds (see `check_number`)."""
    return functools.partial(_number, low=low, high=high, low_open=low_open, high_open=high_open)


def _number(name, value, **bounds):
    check_number(name, value, **bounds)


positive = number(0, low_open=True)
positive_integer = check_positive_integer
count = check_integer  # an integer >= 0


def one_of(*choices) -> Callable:
    """A check that the value is one of `choices` (listed in the message in this order)."""
    return lambda name, value: check_one_of(name, value, choices)


def choice(choices, default) -> Key:
    """A `Key` whose value is one of `choices`, the default listed first in the message."""
    return Key(one_of(default, *(item for item in choices if item != default)), default)


def boolean(name, value) -> None:
    """A check for true or false."""
    check_that(isinstance(value, bool), name, value, "true or false")


def text(name, value) -> None:
    """A check for a non-empty string."""
    check_that(isinstance(value, str) and value != "", name, value, "a non-empty string")


def strings(what: str) -> Callable:
    """A check for a list of strings, e.g. `strings("layer names")`."""
    return lambda name, value: check_that(
        isinstance(value, list) and all(isinstance(item, str) for item in value), name, value, what
    )


def is_real(value) -> bool:
    """Whether `value` is a real number (not a bool, not NaN)."""
    return isinstance(value, numbers.Real) and not isinstance(value, bool) and value == value


def is_positive_integer(value) -> bool:
    """Whether `value` is an integer >= 1 (not a bool)."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool) and value >= 1
