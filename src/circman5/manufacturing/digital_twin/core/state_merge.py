"""Validating deep merge of a state update into an immutable snapshot (the StateManager's core).

:func:`merge_top` returns a new snapshot; the old one is never modified. Only the dicts along
the paths the update touches are copied (structural sharing), every leaf set is validated at
the manager's level (see :mod:`~circman5.manufacturing.digital_twin.core.state_manager`) and
recorded by dotted path with its stored value, so callers need no second walk of the update to
know what changed. This runs once per twin update: the common cases (a float leaf, a plain
value, a nested dict) are tested first and handled inline.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from circman5.errors import StateValidationError
from circman5.manufacturing.digital_twin.core.packed_history import MIN_PACKED_ENTRIES
from circman5.manufacturing.digital_twin.event_notification.event_types import now_stamp

__all__ = ["KNOWN_SECTIONS", "copy_tree", "merge_top", "parse_time"]

KNOWN_SECTIONS: frozenset[str] = frozenset({"production_line", "materials", "environment"})

FieldRule = tuple[str, float | None, float | None]

# Field rules of the standard and strict levels: kind ("str" or "num"), minimum, maximum.
# "materials.*.x" matches every material.
_FIELD_RULES: dict[str, FieldRule] = {
    "system_status": ("str", None, None),
    "production_line.status": ("str", None, None),
    "production_line.temperature": ("num", None, None),
    "production_line.energy_consumption": ("num", 0.0, None),
    "production_line.production_rate": ("num", 0.0, None),
    "production_line.efficiency": ("num", 0.0, 1.0),
    "production_line.defect_rate": ("num", 0.0, 1.0),
    "materials.*.inventory": ("num", 0.0, None),
    "materials.*.quality": ("num", 0.0, 1.0),
    "environment.temperature": ("num", None, None),
    "environment.humidity": ("num", 0.0, 100.0),
}

#: The fields whose rule is "str" (none of them under the "materials.*" wildcard).
_TEXT_FIELDS: frozenset[str] = frozenset(p for p, rule in _FIELD_RULES.items() if rule[0] == "str")

# Values stored as they are (after the float's finiteness check).
_PLAIN: frozenset[type] = frozenset({float, int, str, bool, type(None)})

_isfinite = math.isfinite


def parse_time(value: object, what: str = "timestamp") -> tuple[str, float]:
    """An ISO string or datetime as (ISO string, epoch seconds); naive means local time."""
    try:
        if type(value) is str:
            return value, datetime.fromisoformat(value).timestamp()
        if isinstance(value, str):
            return str.__str__(value), datetime.fromisoformat(value).timestamp()
        if isinstance(value, datetime):
            return value.isoformat(), value.timestamp()
    except (ValueError, OverflowError, OSError) as err:
        raise StateValidationError(f"invalid {what} {value!r}: {err}") from err
    raise StateValidationError(
        f"invalid {what} {value!r}: expected an ISO 8601 string or a datetime"
    )


def _normalized(value: Any, path: str) -> Any:
    """Validate, normalise and copy any JSON-like value (no field rules)."""
    t = type(value)
    if t is float:
        if not _isfinite(value):
            raise StateValidationError(f"{path}: number must be finite, got {value!r}")
        return value
    if t is int or t is str or t is bool or value is None:
        return value
    if isinstance(value, str):  # a str subclass (a str-valued Enum, ...): its plain text
        return str.__str__(value)
    if t is dict or isinstance(value, Mapping):
        out: dict[str, Any] = {}
        for key, item in value.items():
            if type(key) is not str:
                raise StateValidationError(f"{path}: key {key!r} is not a string")
            out[key] = _normalized(item, f"{path}.{key}")
        return out
    if (
        t is list
        or t is tuple
        or (isinstance(value, Sequence) and not isinstance(value, str | bytes | bytearray))
    ):
        return [_normalized(item, f"{path}[{i}]") for i, item in enumerate(value)]
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        return _normalized(float(value), path)
    if t.__module__ == "numpy" and hasattr(value, "tolist"):
        return _normalized(value.tolist(), path)
    raise StateValidationError(f"{path}: unsupported value of type {t.__name__}")


def _rule(path: str) -> FieldRule | None:
    rule = _FIELD_RULES.get(path)
    if rule is None and path.startswith("materials."):
        parts = path.split(".")
        if len(parts) == 3:
            return _FIELD_RULES.get(f"materials.*.{parts[2]}")
    return rule


def _check_rule(value: Any, path: str, rule: FieldRule, strict: bool) -> None:
    kind, low, high = rule
    if kind == "str":
        if type(value) is not str:
            raise StateValidationError(f"{path}: must be a string, got {type(value).__name__}")
        return
    if type(value) is not float and type(value) is not int:
        raise StateValidationError(f"{path}: must be a number, got {type(value).__name__}")
    if strict and ((low is not None and value < low) or (high is not None and value > high)):
        raise StateValidationError(f"{path}: {value!r} outside [{low}, {high}]")


def _leaf(value: Any, path: str, rules: int) -> Any:
    """One leaf value validated (and normalised) at level ``rules`` (0 none, 1 types, 2 ranges)."""
    t = type(value)
    if t is float:
        if not _isfinite(value):
            raise StateValidationError(f"{path}: number must be finite, got {value!r}")
    elif t not in _PLAIN:
        value = _normalized(value, path)
    if rules and value is not None:
        rule = _rule(path)
        if rule is not None:
            _check_rule(value, path, rule, rules > 1)
    return value


def _merge(
    base: dict[str, Any] | None,
    updates: Mapping[str, Any],
    prefix: str,
    rules: int,
    changed: dict[str, Any],
    big_copies: list[int],
) -> dict[str, Any]:
    """A copy of ``base`` (a section below the top) with ``updates`` deep-merged in.

    ``prefix`` is the section's dotted path and a dot. Every leaf set is validated and recorded
    in ``changed`` (dotted path -> stored value). The size of every copied dict big enough to be
    packed in the history goes to ``big_copies``.
    """
    if base is not None:
        new = base.copy()
        if len(base) >= MIN_PACKED_ENTRIES:
            big_copies.append(len(base))
    else:
        new = {}
    for key, value in updates.items():
        if type(key) is not str:
            raise StateValidationError(f"{prefix}{key!r}: key is not a string")
        path = prefix + key
        t = type(value)
        if t is float:  # the common leaf: checked inline
            if not _isfinite(value):
                raise StateValidationError(f"{path}: number must be finite, got {value!r}")
            # a number passes every type rule but the text fields'; strict also checks ranges
            if rules and (rules > 1 or path in _TEXT_FIELDS):
                rule = _rule(path)
                if rule is not None:
                    _check_rule(value, path, rule, rules > 1)
        elif t is dict or (t not in _PLAIN and isinstance(value, Mapping)):
            if rules and _rule(path) is not None:
                raise StateValidationError(f"{path}: must be a single value, got a dictionary")
            old = new.get(key)
            new[key] = _merge(
                old if type(old) is dict else None, value, path + ".", rules, changed, big_copies
            )
            continue
        else:
            value = _leaf(value, path, rules)
        new[key] = value
        changed[path] = value
    return new


def merge_top(
    base: dict[str, Any] | None,
    updates: object,
    rules: int,
    changed: dict[str, Any],
    big_copies: list[int],
) -> tuple[dict[str, Any], float]:
    """Merge a top-level state or update into ``base``; returns the new snapshot and its epoch.

    The snapshot's ``timestamp`` is the update's (validated) or, without one, now. The top-level
    ``timestamp`` is not recorded in ``changed``. Raises :class:`StateValidationError`.
    """
    if type(updates) is not dict and not isinstance(updates, Mapping):
        raise StateValidationError(f"state must be a dictionary, got {type(updates).__name__}")
    stamp = updates.get("timestamp")
    iso, epoch = now_stamp() if stamp is None else parse_time(stamp)
    if base is None:
        new: dict[str, Any] = {}
    else:
        new = base.copy()
        if len(base) >= MIN_PACKED_ENTRIES:
            big_copies.append(len(base))
    for key, value in updates.items():
        if type(key) is not str:
            raise StateValidationError(f"state.{key!r}: key is not a string")
        t = type(value)
        if t is dict or (t not in _PLAIN and isinstance(value, Mapping)):
            if (
                rules
                and key not in KNOWN_SECTIONS
                and (key in _FIELD_RULES or "." in key)
                and _rule(key) is not None
            ):
                raise StateValidationError(f"{key}: must be a single value, got a dictionary")
            old = new.get(key)
            new[key] = _merge(
                old if type(old) is dict else None, value, key + ".", rules, changed, big_copies
            )
        elif key != "timestamp":
            if key in KNOWN_SECTIONS:
                raise StateValidationError(f"{key}: must be a dictionary, got {t.__name__}")
            new[key] = changed[key] = _leaf(value, key, rules)
    new["timestamp"] = iso
    return new, epoch


def copy_tree(snapshot: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of a snapshot that the caller may change (its dicts and lists copied)."""
    return {k: _copy(v) for k, v in snapshot.items()}


def _copy(value: Any) -> Any:
    if type(value) is dict:
        return {k: _copy(v) for k, v in value.items()}
    if type(value) is list:
        return [_copy(v) for v in value]
    return value
