"""What the embedded store holds: series, stored points, and the values it can keep."""

from __future__ import annotations

import math
from dataclasses import dataclass

from circman5.samples import Quality

#: The source of twin KPI series.
KPI_SOURCE = "twin"
#: A quality as stored (one byte), and back.
QUALITY_CODES = {q.value: i for i, q in enumerate(Quality)}
QUALITIES = [q.value for q in Quality]
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1

StoredValue = float | int | str


@dataclass(frozen=True, slots=True)
class SeriesInfo:
    measurement: str
    path: str
    source: str


@dataclass(frozen=True, slots=True)
class StoredPoint:
    measurement: str
    path: str
    source: str
    timestamp_ns: int
    value: StoredValue
    quality: str


def storable(value: object) -> StoredValue | None:
    """``value`` as stored (booleans as 0/1), or None when SQLite cannot hold it (non-finite
    floats, ints beyond 64 bits, other types)."""
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, float):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, int):
        return int(value) if INT64_MIN <= value <= INT64_MAX else None
    if isinstance(value, str):
        return str.__str__(value)
    return None


def stored_point(
    measurement: str, path: str, source: str, ts: int, value: StoredValue, quality: int
) -> StoredPoint:
    name = QUALITIES[quality] if 0 <= quality < len(QUALITIES) else "unknown"
    return StoredPoint(measurement, path, source, ts, value, name)
