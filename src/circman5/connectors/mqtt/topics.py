"""MQTT topic patterns mapped to twin paths, and JSON field extraction (pure Python).

A tag's ``address`` is a topic filter; its ``path`` may use the segments the wildcards matched:
``{1}`` is the first wildcard's match, ``{2}`` the second, and so on. A ``+`` matches one topic
level; ``#`` matches the rest of the topic, its levels joined with ``.``::

    mes/line1/+/consumption      materials.{1}.consumption
        mes/line1/silicon_wafer/consumption  ->  materials.silicon_wafer.consumption
    plant/#                      raw.{1}
        plant/hall2/humidity                 ->  raw.hall2.humidity

A captured level must be one path segment's worth of characters (letters, digits, ``_``): a level
with a dot (``x.y``) would become extra path levels and collide with other paths, so it is
refused, as is any other character. The resulting path must be valid: a level of digits only is
accepted inside a named segment (``bench/seq/+`` -> ``bench.seq_{1}`` with ``0`` gives
``bench.seq_0``) and refused as a segment of its own (``materials.{1}.inventory`` with ``0``).
A refused topic is counted and reported by the connector, and its messages are dropped.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass

_PLACEHOLDER = re.compile(r"\{(\d+)\}")
_PART = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_LEVEL = re.compile(r"^[A-Za-z0-9_]+$")


def validate_topic_filter(topic: str) -> None:
    """Raise ``ValueError`` unless ``topic`` is a valid MQTT subscription filter."""
    if not topic:
        raise ValueError("empty topic filter")
    if len(topic.encode("utf-8")) > 65535:
        raise ValueError("topic filter longer than 65535 bytes")
    if "\x00" in topic:
        raise ValueError("topic filter contains a NUL character")
    levels = topic.split("/")
    for index, level in enumerate(levels):
        if "#" in level and (level != "#" or index != len(levels) - 1):
            raise ValueError(f"'#' must be the whole last level of '{topic}'")
        if "+" in level and level != "+":
            raise ValueError(f"'+' must be a whole level of '{topic}'")


def is_path_part(text: str) -> bool:
    return bool(_PART.match(text))


def validate_twin_path(path: str) -> None:
    """Raise ``ValueError`` unless ``path`` is a dotted twin path like ``section.field``."""
    parts = path.split(".")
    if len(parts) < 2 or not all(_PART.match(p) for p in parts):
        raise ValueError(
            f"'{path}' is not a twin path (dotted names of letters, digits and '_', "
            "at least 'section.field')"
        )


def template_wildcards(template: str) -> list[int]:
    """The placeholder numbers used by ``template``."""
    return [int(m) for m in _PLACEHOLDER.findall(template)]


def validate_path_template(template: str, wildcards: int) -> None:
    """Raise ``ValueError`` unless ``template`` is a twin path whose placeholders exist."""
    for number in template_wildcards(template):
        if number < 1 or number > wildcards:
            raise ValueError(
                f"placeholder {{{number}}} in '{template}' but the topic filter has "
                f"{wildcards} wildcard(s) ({{1}}..{{{wildcards}}})"
                if wildcards
                else f"placeholder {{{number}}} in '{template}' but the topic filter has no "
                "wildcards"
            )
    validate_twin_path(_PLACEHOLDER.sub("x", template))


@dataclass(frozen=True, slots=True)
class TopicPattern:
    """A topic filter and the twin path template it maps to."""

    filter: str
    template: str

    def __post_init__(self) -> None:
        validate_topic_filter(self.filter)
        validate_path_template(self.template, self.wildcards)

    @property
    def levels(self) -> list[str]:
        return self.filter.split("/")

    @property
    def wildcards(self) -> int:
        return sum(1 for level in self.levels if level in ("+", "#"))

    def match(self, topic: str) -> tuple[str, ...] | None:
        """The wildcard captures if ``topic`` matches the filter, else None.

        A ``+`` capture is one topic level; the ``#`` capture is the rest of the topic, its
        levels still separated by ``/`` (:meth:`path_for` joins them with ``.``).
        """
        pattern = self.levels
        if topic.startswith("$") and pattern[0] in ("+", "#"):
            return None  # wildcards never match $SYS-like topics (MQTT 4.7.2)
        levels = topic.split("/")
        captures: list[str] = []
        for index, want in enumerate(pattern):
            if want == "#":
                # '#' also matches the parent level itself ('a/#' matches 'a').
                captures.append("/".join(levels[index:]))
                return tuple(captures)
            if index >= len(levels):
                return None
            got = levels[index]
            if want == "+":
                captures.append(got)
            elif want != got:
                return None
        if len(levels) != len(pattern):
            return None
        return tuple(captures)

    def path_for(self, captures: tuple[str, ...]) -> str:
        """The twin path for ``captures``; ``ValueError`` with the reason when it cannot be one.

        Each captured topic level must be one path segment's worth of characters (letters,
        digits, ``_``): a level with a dot would become several path levels and is refused.
        The path it makes must be valid: a level of digits only is fine inside a named segment
        (``seq_{1}`` with ``0`` is ``seq_0``) but not as a segment of its own.
        """
        if not captures or "{" not in self.template:
            return self.template
        multi = len(captures) - 1 if self.levels[-1] == "#" else -1

        def repl(m: re.Match[str]) -> str:
            index = int(m.group(1)) - 1
            value = captures[index]
            levels = value.split("/") if index == multi else [value]
            for level in levels:
                _check_level(level)
            return ".".join(levels)

        path = _PLACEHOLDER.sub(repl, self.template)
        for segment in path.split("."):
            if not _PART.match(segment):
                raise ValueError(
                    f"topic level(s) {'/'.join(captures)!r} would make '{segment}' a segment of "
                    f"the twin path '{path}', and a segment must start with a letter or '_' "
                    f"(give it a name in the path template, e.g. 'seq_{{1}}')"
                )
        return path


def _check_level(level: str) -> None:
    if not level:
        raise ValueError("an empty topic level cannot be part of a twin path")
    if "." in level:
        raise ValueError(
            f"topic level '{level}' contains '.', which would split it into several twin path "
            "levels"
        )
    if not _LEVEL.match(level):
        raise ValueError(
            f"topic level '{level}' cannot be part of a twin path: it has characters other than "
            "letters, digits and '_'"
        )


_MISSING = object()


def extract_field(document: object, dotted: tuple[str, ...]) -> object:
    """The value at ``dotted`` in a decoded JSON document; list indexes are numbers.

    Raises ``KeyError`` naming the missing part.
    """
    value = document
    for part in dotted:
        if type(value) is dict or isinstance(value, Mapping):
            value = value.get(part, _MISSING)
        elif isinstance(value, list) and part.isdigit() and int(part) < len(value):
            value = value[int(part)]
        else:
            value = _MISSING
        if value is _MISSING:
            raise KeyError(".".join(dotted))
    return value


def parse_plain_number(payload: bytes) -> float:
    """A plain numeric payload (``b"23.5"``); ``ValueError`` when it is not one or not finite."""
    value = float(payload)
    if not math.isfinite(value):
        raise ValueError(f"not a finite number: {payload[:40]!r}")
    return value
