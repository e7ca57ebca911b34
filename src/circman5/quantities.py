"""Numbers as people read them: a value with its unit, at a precision suited to its size.

Event messages and the HMI show ``27.02 °C``, not ``27.022524780733672``; the machine-readable
value stays untouched in the event's details.
"""

from __future__ import annotations

import math
from numbers import Real

from circman5.errors import InvalidInputError

__all__ = ["decimals_for", "finite_number", "format_quantity", "require_finite"]

MAX_DECIMALS = 4


def finite_number(value: object) -> float | None:
    """``value`` as a float when it is a finite real number (not a bool), else None."""
    if isinstance(value, bool) or not isinstance(value, Real):
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def require_finite(name: str, value: object, what: str = "") -> float:
    """``value`` as a finite float, or :class:`InvalidInputError` saying which and why.

    ``require_finite("cycle_time", "x", "parameter ")``: ``parameter 'cycle_time' must be a
    number, got 'x'``.
    """
    if isinstance(value, bool) or not isinstance(value, Real):
        raise InvalidInputError(f"{what}'{name}' must be a number, got {value!r}")
    number = float(value)
    if not math.isfinite(number):
        raise InvalidInputError(f"{what}'{name}' must be finite, got {value!r}")
    return number


def decimals_for(reference: float | None) -> int:
    """Decimals that show a value near ``reference`` to four significant digits (0 to 4).

    ``27.0`` -> 2 (``27.02``), ``1500`` -> 0, ``0.5`` -> 4, ``None`` or 0 -> 2.
    """
    if reference is None or not math.isfinite(reference) or reference == 0:
        return 2
    digits_before_point = math.floor(math.log10(abs(reference))) + 1
    return max(0, min(MAX_DECIMALS, 4 - digits_before_point))


def format_quantity(value: float, unit: str = "", decimals: int | None = None) -> str:
    """``27.0224, "°C"`` -> ``"27.02 °C"``; ``decimals`` defaults to :func:`decimals_for` value."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        text = str(value)
    else:
        places = decimals_for(value) if decimals is None else decimals
        text = f"{value:.{places}f}"
    if not unit:
        return text
    return f"{text}{unit}" if unit in ("%", "°") else f"{text} {unit}"
