"""One update of the twin: what a tick changed, in the one shape every consumer reads.

The synchronization engine builds a :class:`TwinUpdate` once per tick; ``DigitalTwin.update``
applies it and checks the thresholds and the forecasts of its paths; the engine's update
listeners (the Sparkplug output, the batch tracker, the MQTT state output) get the same object.
Nobody reshapes it again: ``flat`` is the flat view (dotted path -> value), the nested view that
the spec's ``DigitalTwin.update(dict)`` documents is built once, on first use, and cached.

A ``TwinUpdate`` is a read-only :class:`~collections.abc.Mapping`: reading it as a mapping reads
the nested view (``update["production_line"]["temperature"]``), so code written for the nested
dict keeps working. A plain nested dict handed to ``DigitalTwin.update`` is merged as it is
(the state manager records its leaves by dotted path as it stores them).

Every part of the product may import this module (it imports only the neutral
:mod:`circman5.state_paths`).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from types import MappingProxyType
from typing import Any, Final

__all__ = ["QUALITY_SECTION", "TwinUpdate"]

QUALITY_SECTION: Final = "quality"
"""The default top-level section of the state that holds each path's quality."""

_EMPTY: Mapping[str, str] = MappingProxyType({})


#: path -> (its section's dotted name, the section's parts, the leaf's name)
_PARTS: dict[str, tuple[str, tuple[str, ...], str]] = {}
_PARTS_MAX = 100_000  # paths remembered split (a tag map has a bounded set of paths)


def _split(path: str) -> tuple[str, tuple[str, ...], str]:
    if len(_PARTS) >= _PARTS_MAX:
        _PARTS.clear()
    section, _, leaf = path.rpartition(".")
    parts = _PARTS[path] = (section, tuple(section.split(".")) if section else (), leaf)
    return parts


def _nest(values: Mapping[str, Any]) -> dict[str, Any]:
    """The nested dict of dotted ``values`` (the engine's paths never conflict: it refuses a
    path that is also a section; should one slip through, the shorter path keeps its place).

    Paths of one section usually come one after the other: the section's dict found for the
    previous path is reused without walking down again.
    """
    parts_of = _PARTS
    nested: dict[str, Any] = {}
    last_section: str | None = None
    node: dict[str, Any] = nested
    for path, value in values.items():
        split = parts_of.get(path)
        section, parts, leaf = split if split is not None else _split(path)
        if section != last_section:
            node = nested
            for part in parts:
                child = node.get(part)
                if child is None:
                    child = node[part] = {}
                elif type(child) is not dict:
                    last_section = None  # a value holds this place: skip the path
                    break
                node = child
            else:
                last_section = section
            if last_section is None:
                continue
        if type(node.get(leaf)) is not dict:
            node[leaf] = value
    return nested


class TwinUpdate(Mapping[str, Any]):
    """What one update changes in the twin (immutable).

    ``flat`` (the ``values`` argument): dotted twin path -> new value
    (``{"production_line.temperature": 23.1}``).
    ``qualities``: dotted twin path -> quality (``"good"``, ``"stale"``, ...) for the paths whose
    quality changed; they go into the state's ``quality_section``. ``timestamp``: the state's
    ISO 8601 timestamp, or None to let the twin stamp the time it applies the update; ``epoch``
    the same instant in seconds since the epoch, when known.

    Read-only: the mappings handed in are owned by the update from then on (not copied; do not
    change them), the update shows them through read-only proxies, its fields cannot be set,
    and the nested view is typed ``Mapping`` (never mutate it, as the state's snapshots).
    """

    __slots__ = (
        "_epoch",
        "_nested",
        "_qualities",
        "_section",
        "_timestamp",
        "_values",
    )

    def __init__(
        self,
        values: Mapping[str, Any],
        qualities: Mapping[str, str] = _EMPTY,
        *,
        timestamp: str | None = None,
        epoch: float | None = None,
        quality_section: str = QUALITY_SECTION,
        nested: Mapping[str, Any] | None = None,
    ) -> None:
        self._values: Mapping[str, Any] = MappingProxyType(values)
        self._qualities: Mapping[str, str] = MappingProxyType(qualities)
        self._timestamp = timestamp
        self._epoch = epoch
        self._section = quality_section
        self._nested = nested

    # -- the flat view ---------------------------------------------------------------------------

    @property
    def flat(self) -> Mapping[str, Any]:
        """Dotted path -> new value (read-only), without qualities and timestamp."""
        return self._values

    @property
    def qualities(self) -> Mapping[str, str]:
        """Dotted path -> quality, for the paths whose quality changed (read-only)."""
        return self._qualities

    @property
    def timestamp(self) -> str | None:
        return self._timestamp

    @property
    def epoch(self) -> float | None:
        return self._epoch

    @property
    def quality_section(self) -> str:
        return self._section

    def leaves(self) -> dict[str, Any]:
        """Every leaf of the nested view under its dotted path, without the timestamp.

        The values, then each quality change as ``"<quality_section>.<path>"``.
        """
        if not self._qualities:
            return dict(self._values)
        section = self._section
        out = dict(self._values)
        for path, quality in self._qualities.items():
            out[f"{section}.{path}"] = quality
        return out

    # -- the nested view -------------------------------------------------------------------------

    @property
    def nested(self) -> Mapping[str, Any]:
        """The nested view (``{"production_line": {"temperature": 23.1}, ...}``), built once.

        Holds the values, the quality changes under ``quality_section`` and the timestamp when
        set. Never mutate it.
        """
        nested = self._nested
        if nested is None:
            built = _nest(self._values)
            if self._qualities:
                built[self._section] = dict(self._qualities)
            if self._timestamp is not None:
                built["timestamp"] = self._timestamp
            nested = self._nested = built
        return nested

    def section(self, name: str) -> Mapping[str, Any] | None:
        """The nested view's top-level ``name`` section, if the update has one."""
        branch = self.nested.get(name)
        return branch if isinstance(branch, Mapping) else None

    def __getitem__(self, key: str) -> Any:
        return self.nested[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self.nested)

    def __len__(self) -> int:
        return len(self.nested)

    def __bool__(self) -> bool:
        return bool(self._values or self._qualities)

    def __contains__(self, key: object) -> bool:
        return key in self.nested

    def __eq__(self, other: object) -> bool:
        if isinstance(other, TwinUpdate):
            return (
                self._values == other._values
                and self._qualities == other._qualities
                and self._timestamp == other._timestamp
            )
        if isinstance(other, Mapping):
            return dict(self.nested) == dict(other)
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        parts = [repr(dict(self._values))]
        if self._qualities:
            parts.append(f"qualities={dict(self._qualities)!r}")
        if self._timestamp is not None:
            parts.append(f"timestamp={self._timestamp!r}")
        return f"TwinUpdate({', '.join(parts)})"
