"""Argument checks shared by every config and layer: one wording, one convention for bounds.

Each check raises before anything changes, names the argument and says what is allowed:
``TypeError`` when the kind is wrong (an int was expected), ``ValueError`` when the kind is right but the value is
outside what is allowed. ``bool`` is never accepted as a number (``True`` is an ``int`` in Python).

Bounds are spelled out by keyword so that no caller has to remember which end is open:
``at_least`` (≥), ``above`` (>), ``below`` (<).
"""

from __future__ import annotations

import math
from collections.abc import Iterable

__all__ = ["flag", "name_list", "number", "one_of", "positive_int"]


def positive_int(name: str, value, allowed: str = "an int ≥ 1") -> int:
    """``value`` must be an ``int`` ≥ 1 (``allowed`` words the error, e.g. what the count counts)."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, got {type(value).__name__} ({value!r})")
    if value <= 0:
        raise ValueError(f"{name}={value} is not allowed: expected {allowed}")
    return value


def number(name: str, value, *, allowed: str, at_least: float | None = None, above: float | None = None,
           below: float | None = None) -> float:
    """``value`` must be a finite real number within the bounds given: ``at_least`` ≤ value, ``above`` < value,
    value < ``below``. ``allowed`` words the error (``"a probability in [0, 1)"``)."""
    ok = not isinstance(value, bool) and isinstance(value, (int, float)) and math.isfinite(value)
    ok = ok and (at_least is None or value >= at_least) and (above is None or value > above)
    ok = ok and (below is None or value < below)
    if not ok:
        raise ValueError(f"{name}={value!r} is not allowed: expected {allowed}")
    return value


def flag(name: str, value) -> bool:
    """``value`` must be ``True`` or ``False`` (not 0/1, not a string)."""
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be True or False, got {value!r}")
    return value


def one_of(name: str, value, choices: Iterable, *, note: str = ""):
    """``value`` must be one of ``choices`` (shown as given; ``note`` is appended, e.g. ``" or None"``)."""
    shown = choices if isinstance(choices, (tuple, list)) else tuple(choices)
    try:
        ok = value in shown
    except TypeError:  # an unhashable value against a set-like container
        ok = False
    if not ok:
        raise ValueError(f"{name}={value!r} is not allowed: expected one of {shown}{note}")
    return value


def name_list(name: str, value) -> list[str]:
    """``value`` must be a list or tuple of module names (a lone string is refused: it would be read letter by
    letter); returns a new list."""
    if isinstance(value, str) or not isinstance(value, (list, tuple)):
        raise TypeError(f"{name} must be a list of module names, got {value!r}")
    return list(value)
