"""Samples and twin KPIs as InfluxDB line protocol.

One line per sample::

    sample,line=line1,path=production_line.temperature,quality=good,site=site1,source=plc \
value=23.5 1700000000000000000

* measurement ``sample`` (configurable); tags ``site``, ``line``, ``source``, ``path``,
  ``quality`` (and ``address`` when enabled), sorted by key as InfluxDB prefers;
* the field depends on the value's type, so that one measurement never mixes field types (InfluxDB
  fixes a field's type per measurement and would reject the batch): numbers go to ``value``
  (a float; ``integer_fields=True`` writes ints as ``42i``), booleans to ``value_bool``, text to
  ``value_str``;
* timestamps in nanoseconds (``precision=ns``).

The twin's KPIs, the numeric leaves of a twin state dict, go to measurement ``twin_kpi`` with the
dotted path as tag ``path`` and field ``value``.

Escaping follows the line-protocol reference: commas and spaces in measurements; commas, ``=``
and spaces in tag keys, tag values and field keys; ``"`` and ``\\`` in string field values.
Newline, carriage return and tab cannot appear raw and are written as ``\\n``, ``\\r``, ``\\t``.
Backslashes in names and tag values are literal for InfluxDB; a trailing one cannot be written
and is dropped. Empty tag values are left out. NaN and infinities cannot be written; such values
are skipped and counted.

The hot path keeps one preformatted prefix per ``(source, path, quality)`` and builds each line with
one f-string: no intermediate object (Point, dict) per point.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable, Mapping
from typing import Final

from circman5.samples import Sample, SampleValue
from circman5.sinks.config import SeriesSettings
from circman5.state_paths import numeric_leaves

FieldValue = float | int | bool | str

_MEASUREMENT_ESCAPES: Final = str.maketrans(
    {",": r"\,", " ": r"\ ", "\n": r"\n", "\r": r"\r", "\t": r"\t"}
)
_KEY_ESCAPES: Final = str.maketrans(
    {",": r"\,", "=": r"\=", " ": r"\ ", "\n": r"\n", "\r": r"\r", "\t": r"\t"}
)
_STRING_ESCAPES: Final = str.maketrans(
    {'"': r"\"", "\\": r"\\", "\n": r"\n", "\r": r"\r", "\t": r"\t"}
)
_INT64_MIN: Final = -(2**63)
_INT64_MAX: Final = 2**63 - 1
#: A bound on the prefix caches, so odd input cannot grow them without limit.
_CACHE_LIMIT: Final = 100_000


def escape_measurement(name: str) -> str:
    return name.translate(_MEASUREMENT_ESCAPES).rstrip("\\")


def escape_key(text: str) -> str:
    """Escape a tag key, tag value or field key."""
    return text.translate(_KEY_ESCAPES).rstrip("\\")


def escape_string(text: str) -> str:
    """Escape a string field value (without the surrounding quotes)."""
    return text.translate(_STRING_ESCAPES)


def format_value(value: FieldValue) -> str | None:
    """A field value in line protocol (``true``, ``42i``, ``1.5``, ``"text"``); None if unwritable.

    NaN and infinities cannot be written; ints outside int64 are written as floats.
    """
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, int):
        if _INT64_MIN <= value <= _INT64_MAX:
            return f"{value}i"
        value = float(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            return None
        text = repr(value)
        return text[:-2] if text.endswith(".0") else text
    if isinstance(value, str):
        return f'"{escape_string(value)}"'
    return None


def format_tags(tags: Mapping[str, str]) -> str:
    """``,k=v,k2=v2`` with keys sorted and empty values left out."""
    parts = []
    for key in sorted(tags):
        value = escape_key(str(tags[key]))
        if value:
            parts.append(f",{escape_key(key)}={value}")
    return "".join(parts)


def format_line(
    measurement: str,
    tags: Mapping[str, str],
    fields: Mapping[str, FieldValue],
    timestamp_ns: int | None = None,
) -> str | None:
    """One line (without newline) with typed fields sorted by key; None when no field is
    writable. The same text as influxdb-client's ``Point.to_line_protocol()``."""
    rendered = []
    for key, value in sorted(fields.items()):
        text = format_value(value)
        if text is not None:
            rendered.append(f"{escape_key(key)}={text}")
    if not rendered:
        return None
    line = f"{escape_measurement(measurement)}{format_tags(tags)} {','.join(rendered)}"
    return line if timestamp_ns is None else f"{line} {timestamp_ns}"


def _numeric_text(value: float | int, integer_fields: bool) -> str | None:
    """A number for field ``value``: ints as ``42`` (a float in line protocol) or ``42i``."""
    if isinstance(value, float):
        return repr(float(value)) if math.isfinite(value) else None
    if _INT64_MIN <= value <= _INT64_MAX:
        return f"{int(value)}i" if integer_fields else str(int(value))
    as_float = float(value)
    return repr(as_float) if math.isfinite(as_float) else None


class LineEncoder:
    """Encodes Samples and twin states into line protocol for one site and line."""

    def __init__(
        self,
        site: str = "site1",
        line: str = "line1",
        *,
        sample_measurement: str = "sample",
        kpi_measurement: str = "twin_kpi",
        integer_fields: bool = False,
        address_tag: bool = False,
    ) -> None:
        self.site = site
        self.line = line
        self.sample_measurement = sample_measurement
        self.kpi_measurement = kpi_measurement
        self.integer_fields = integer_fields
        self.address_tag = address_tag
        #: values that could not be written (NaN, infinity, unsupported type)
        self.skipped = 0
        self._sample_prefixes: dict[tuple[str, str, str, str], str] = {}
        self._kpi_prefixes: dict[str, str] = {}

    @classmethod
    def from_settings(cls, settings: SeriesSettings) -> LineEncoder:
        return cls(
            settings.site,
            settings.line,
            sample_measurement=settings.sample_measurement,
            kpi_measurement=settings.kpi_measurement,
            integer_fields=settings.integer_fields,
            address_tag=settings.address_tag,
        )

    # -- samples -------------------------------------------------------------------------------

    def _sample_prefix(self, source: str, path: str, quality: str, address: str) -> str:
        tags = {
            "site": self.site,
            "line": self.line,
            "source": source,
            "path": path,
            "quality": quality,
        }
        if self.address_tag:
            tags["address"] = address
        prefix = f"{escape_measurement(self.sample_measurement)}{format_tags(tags)} "
        if len(self._sample_prefixes) >= _CACHE_LIMIT:
            self._sample_prefixes.clear()
        self._sample_prefixes[(source, path, quality, address)] = prefix
        return prefix

    def encode_sample(self, sample: Sample) -> str | None:
        """One line (with its newline), or None when the value cannot be written."""
        lines: list[str] = []
        self._append_samples(lines, (sample,))
        return lines[0] if lines else None

    def encode_samples(self, samples: Iterable[Sample]) -> tuple[bytes, int]:
        """All samples as one UTF-8 block of newline-terminated lines, and the line count."""
        lines: list[str] = []
        self._append_samples(lines, samples)
        return "".join(lines).encode(), len(lines)

    def _append_samples(self, out: list[str], samples: Iterable[Sample]) -> None:
        prefixes = self._sample_prefixes
        integer_fields = self.integer_fields
        with_address = self.address_tag
        append = out.append
        for s in samples:
            address = s.address if with_address else ""
            prefix = prefixes.get((s.source, s.path, s.quality, address))
            if prefix is None:
                prefix = self._sample_prefix(s.source, s.path, s.quality, address)
            value: SampleValue = s.value
            if type(value) is float:
                if value - value == 0.0:  # finite (NaN and inf give NaN)
                    append(f"{prefix}value={value!r} {s.timestamp_ns}\n")
                    continue
            elif type(value) is bool:
                append(f"{prefix}value_bool={'true' if value else 'false'} {s.timestamp_ns}\n")
                continue
            elif type(value) is int:
                text = _numeric_text(value, integer_fields)
                if text is not None:
                    append(f"{prefix}value={text} {s.timestamp_ns}\n")
                    continue
            elif type(value) is str:
                append(f'{prefix}value_str="{value.translate(_STRING_ESCAPES)}" {s.timestamp_ns}\n')
                continue
            else:
                line = self._other_value(prefix, value, s.timestamp_ns)
                if line is not None:
                    append(line)
                    continue
            self.skipped += 1

    def _other_value(self, prefix: str, value: object, timestamp_ns: int) -> str | None:
        """Subclasses of the four types (IntEnum, numpy scalars registered as float, ...)."""
        if isinstance(value, bool):
            return f"{prefix}value_bool={'true' if value else 'false'} {timestamp_ns}\n"
        if isinstance(value, int | float):
            text = _numeric_text(value, self.integer_fields)
            return None if text is None else f"{prefix}value={text} {timestamp_ns}\n"
        if isinstance(value, str):
            return f'{prefix}value_str="{escape_string(value)}" {timestamp_ns}\n'
        return None

    # -- twin KPIs -----------------------------------------------------------------------------

    def _kpi_prefix(self, path: str) -> str:
        tags = {"site": self.site, "line": self.line, "path": path}
        prefix = f"{escape_measurement(self.kpi_measurement)}{format_tags(tags)} value="
        if len(self._kpi_prefixes) >= _CACHE_LIMIT:
            self._kpi_prefixes.clear()
        self._kpi_prefixes[path] = prefix
        return prefix

    def encode_state(
        self, state: Mapping[str, object], timestamp_ns: int | None = None
    ) -> tuple[bytes, int]:
        """The numeric leaves of a twin state (``production_line.temperature``) as KPI lines.

        Nested dicts give dotted paths; booleans, strings, lists and non-finite numbers are
        left out.
        """
        ts = time.time_ns() if timestamp_ns is None else timestamp_ns
        lines: list[str] = []
        for path, value in numeric_leaves(state):
            text = _numeric_text(value, self.integer_fields)
            if text is None:
                self.skipped += 1
                continue
            prefix = self._kpi_prefixes.get(path) or self._kpi_prefix(path)
            lines.append(f"{prefix}{text} {ts}\n")
        return "".join(lines).encode(), len(lines)
