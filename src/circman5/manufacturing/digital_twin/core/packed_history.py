"""Compact storage for the state history: large all-number sections packed into arrays.

A twin fed by a thousand tags at 10 Hz replaces its big sections (``{"tag00001": 20.5, ...}``)
on every tick, and the history keeps the replaced dicts: about 70 KB per state for 1,000 floats
(dict slots plus one float object each), 70 MB for the default 1,000 states. Packed, the same
section is a shared tuple of keys and an array of 8 bytes per value (``array('d')`` for floats,
``array('q')`` for integers, such as Modbus registers).

:func:`pack` is applied by the :class:`StateManager` to the state that moves into the history;
it packs only the dicts the newer state no longer shares (the ones the update replaced), so
sections that did not change stay shared between states. Readers get plain dicts back from
:func:`unpack`. Values round-trip exactly with their type; a dict that mixes floats and ints, or
holds anything else (a string, a bool, a nested dict, an int beyond 64 bits), is never packed.
"""

from __future__ import annotations

from array import array
from typing import Any

__all__ = ["MIN_PACKED_ENTRIES", "PackedNumbers", "PackedState", "pack", "unpack"]

#: Dicts smaller than this stay dicts (packing saves little and costs a copy on every read).
MIN_PACKED_ENTRIES = 32


class PackedNumbers:
    """A ``{str: float}`` or ``{str: int}`` dict stored as a tuple of keys and an array."""

    __slots__ = ("keys", "values")

    def __init__(self, keys: tuple[str, ...], values: array[float] | array[int]) -> None:
        self.keys = keys
        self.values = values

    def to_dict(self) -> dict[str, float] | dict[str, int]:
        return dict(zip(self.keys, self.values, strict=True))


class PackedState:
    """A history state with at least one packed section (the tree is never mutated)."""

    __slots__ = ("tree",)

    def __init__(self, tree: dict[str, Any]) -> None:
        self.tree = tree


class KeyCache:
    """The key tuples of the sections packed last, by path, so equal tuples are shared."""

    __slots__ = ("_keys",)

    def __init__(self) -> None:
        self._keys: dict[tuple[str, ...], tuple[str, ...]] = {}

    def shared(self, path: tuple[str, ...], keys: tuple[str, ...]) -> tuple[str, ...]:
        known = self._keys.get(path)
        if known is not None and known == keys:
            return known
        if len(self._keys) >= 10_000:
            self._keys.clear()
        self._keys[path] = keys
        return keys

    def clear(self) -> None:
        self._keys.clear()


def _packed_values(section: dict[str, Any]) -> array[float] | array[int] | None:
    """The values of ``section`` as one array, or None when it cannot be packed."""
    if len(section) < MIN_PACKED_ENTRIES:
        return None
    values = section.values()
    kind = type(next(iter(values)))
    if kind is not float and kind is not int:
        return None
    if not all(type(value) is kind for value in values):
        return None
    if kind is float:
        return array("d", values)
    try:
        return array("q", values)
    except OverflowError:  # beyond 64 bits
        return None


def _pack_tree(
    old: dict[str, Any], new: object, cache: KeyCache, path: tuple[str, ...]
) -> dict[str, Any] | None:
    """A copy of ``old`` with its packable unshared sections packed, or None if none was."""
    copy: dict[str, Any] | None = None
    newer = new if type(new) is dict else None
    for key, value in old.items():
        if type(value) is not dict:
            continue
        counterpart = newer.get(key) if newer is not None else None
        if counterpart is value:
            continue  # still part of the newer state: shared, costs nothing
        below = (*path, key)
        packed: object
        numbers = _packed_values(value)
        if numbers is not None:
            packed = PackedNumbers(cache.shared(below, tuple(value)), numbers)
        else:
            packed = _pack_tree(value, counterpart, cache, below)
            if packed is None:
                continue
        if copy is None:
            copy = old.copy()
        copy[key] = packed
    return copy


def pack(old: dict[str, Any], new: dict[str, Any], cache: KeyCache) -> dict[str, Any] | PackedState:
    """``old`` (the state leaving for the history) with the sections ``new`` replaced packed.

    ``old`` itself is not modified (others may hold it); the result shares everything that was
    not packed.
    """
    packed = _pack_tree(old, new, cache, ())
    return old if packed is None else PackedState(packed)


def _unpack_tree(tree: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] | None = None
    for key, value in tree.items():
        kind = type(value)
        if kind is PackedNumbers:
            plain: object = value.to_dict()
        elif kind is dict:
            plain = _unpack_tree(value)
            if plain is value:
                continue
        else:
            continue
        if out is None:
            out = tree.copy()
        out[key] = plain
    return out if out is not None else tree


def unpack(state: dict[str, Any] | PackedState) -> dict[str, Any]:
    """The plain snapshot of a history entry (shares every part that was not packed)."""
    if type(state) is PackedState:
        return _unpack_tree(state.tree)
    assert type(state) is dict
    return state
