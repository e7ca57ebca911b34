"""Dotted paths into a nested twin state: the one place that walks, flattens and builds them.

A twin path is a dotted name (``production_line.temperature``); a state is a nested mapping
(``{"production_line": {"temperature": 23.1}}``). Every part of the product may import this
module (it imports nothing of the product).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

__all__ = ["flatten", "lookup", "numeric_leaves", "unflatten", "value_at"]


def flatten(state: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"a": {"b": 1}}`` -> ``{"a.b": 1}``: every leaf under its dotted path."""
    out: dict[str, Any] = {}
    for key, value in state.items():
        path = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.update(flatten(value, path + "."))
        else:
            out[path] = value
    return out


def lookup(state: Mapping[str, Any], path: str) -> Any:
    """The value at dotted ``path`` (``KeyError`` if absent)."""
    node: Any = state
    for part in path.split("."):
        node = node[part]
    return node


def value_at(state: Mapping[str, Any] | None, path: str, default: Any = None) -> Any:
    """The value at dotted ``path``, or ``default`` when any level is absent or not a mapping."""
    node: Any = state
    for part in path.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return default
        node = node[part]
    return node


def unflatten(record: Mapping[str, Any]) -> dict[str, Any]:
    """A nested state from a record keyed by dotted paths (the inverse of :func:`flatten`).

    A path that would go through a leaf set by a shorter path is dropped (``{"a": 1, "a.b": 2}``
    keeps ``a``).
    """
    if not any("." in key for key in record):
        return dict(record)
    state: dict[str, Any] = {}
    for key, value in record.items():
        parts = key.split(".")
        node = state
        for part in parts[:-1]:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                break
            node = child
        else:
            node[parts[-1]] = value
    return state


def numeric_leaves(state: Mapping[str, object], prefix: str = "") -> Iterable[tuple[str, float]]:
    """``(dotted.path, number)`` for every int/float leaf (not bool) of a nested mapping."""
    for key, value in state.items():
        path = f"{prefix}{key}"
        if isinstance(value, Mapping):
            yield from numeric_leaves(value, f"{path}.")
        elif isinstance(value, int | float) and not isinstance(value, bool):
            yield path, value
