"""One message template for bad arguments: what was expected, and what was received.

No TensorFlow here: the recipe checker uses these too.
"""

import math
import numbers


def check_number(name: str, value, low=None, high=None, low_open: bool = False, high_open: bool = False) -> None:
    """Raises ValueError unless `value` is a real number within the given bounds."""
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool) and not math.isnan(value)
    if ok and low is not None:
        ok = value > low if low_open else value >= low
    if ok and high is not None:
        ok = value < high if high_open else value <= high
    if not ok:
        bounds = _describe(low, high, low_open, high_open)
        raise ValueError(f"`{name}` must be a number{bounds}. Received: {name}={value!r}")


def check_positive_integer(name: str, value) -> None:
    """Raises ValueError unless `value` is an integer >= 1."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(f"`{name}` must be a positive integer. Received: {name}={value!r}")


def check_integer(name: str, value, low: int = 0) -> None:
    """Raises ValueError unless `value` is an integer >= `low` (bools are not integers)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < low:
        raise ValueError(f"`{name}` must be an integer >= {low}. Received: {name}={value!r}")


def check_one_of(name: str, value, choices) -> None:
    """Raises ValueError unless `value` is one of `choices`."""
    if value not in tuple(choices):
        raise ValueError(f"`{name}` must be one of {list(choices)}. Received: {name}={value!r}")


def check_that(ok: bool, name: str, value, expected: str) -> None:
    """Raises ValueError in the same words as the checks above when `ok` is False."""
    if not ok:
        raise ValueError(f"`{name}` must be {expected}. Received: {name}={value!r}")


def _describe(low, high, low_open, high_open) -> str:
    if low is not None and high is not None:
        return f" in {'(' if low_open else '['}{low}, {high}{')' if high_open else ']'}"
    if low is not None:
        return f" {'>' if low_open else '>='} {low}"
    if high is not None:
        return f" {'<' if high_open else '<='} {high}"
    return ""
