"""Runs: the points of one series, sorted by timestamp, one point per timestamp; merging runs
(on equal timestamps the later write wins)."""

from __future__ import annotations

import math
from array import array
from bisect import bisect_left
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from itertools import chain, islice, pairwise, repeat
from operator import lt
from typing import cast

from circman5.samples import Sample
from circman5.sinks.embedded.model import (
    INT64_MAX,
    INT64_MIN,
    QUALITY_CODES,
    StoredValue,
    storable,
)

#: A row of table ``recent`` or ``chunks``: ``(series_id, start_ts, end_ts, count, last_value,
#: last_quality, data)``.
RunRow = tuple[int, int, int, int, StoredValue, int, bytes]


@dataclass(frozen=True, slots=True)
class Run:
    ts: Sequence[int]
    values: Sequence[StoredValue]
    qualities: bytes

    def __len__(self) -> int:
        return len(self.ts)

    @property
    def start(self) -> int:
        return self.ts[0]

    @property
    def end(self) -> int:
        return self.ts[-1]

    def slice(self, lo: int, hi: int) -> Run:
        if lo <= 0 and hi >= len(self.ts):
            return self
        return Run(self.ts[lo:hi], self.values[lo:hi], self.qualities[lo:hi])

    def between(self, start_ns: int | None, end_ns: int | None) -> Run:
        """The points with ``start_ns <= ts < end_ns``."""
        lo = 0 if start_ns is None else bisect_left(self.ts, start_ns)
        hi = len(self.ts) if end_ns is None else bisect_left(self.ts, end_ns)
        return self.slice(lo, hi)

    @property
    def last(self) -> tuple[StoredValue, int]:
        """The value and quality of the newest point."""
        return self.values[-1], self.qualities[-1]

    def row(self, series_id: int, data: bytes) -> RunRow:
        return (
            series_id,
            self.ts[0],
            self.ts[-1],
            len(self.ts),
            self.values[-1],
            self.qualities[-1],
            data,
        )


EMPTY = Run((), (), b"")


def run_of_samples(samples: list[Sample]) -> Run:
    """One series' samples in write order as a run: sorted by timestamp (the later write wins a
    tie), booleans as 0/1, and without the values SQLite cannot hold (non-finite floats, ints
    beyond 64 bits, other types) and timestamps beyond 64 bits."""
    values: list[StoredValue] = [s.value for s in samples]
    kinds = set(map(type, values))
    if kinds == {float}:
        plain = all(map(math.isfinite, cast("list[float]", values)))
    elif kinds == {int}:
        numbers = cast("list[int]", values)
        plain = min(numbers) >= INT64_MIN and max(numbers) <= INT64_MAX
    else:
        plain = kinds == {str}
    if not plain:
        kept: list[Sample] = []
        values = []
        for sample in samples:
            value = storable(sample.value)
            if value is not None:
                kept.append(sample)
                values.append(value)
        samples = kept
    ts = [s.timestamp_ns for s in samples]
    qualities = bytes(map(QUALITY_CODES.get, [s.quality for s in samples], repeat(0)))
    return sorted_run(ts, values, qualities)


def sorted_run(ts: list[int], values: list[StoredValue], qualities: bytes) -> Run:
    """Points in write order as a run: sorted by timestamp, the later write kept on a tie, and
    without timestamps beyond 64 bits."""
    if len(ts) > 1 and not all(map(lt, ts, islice(ts, 1, None))):
        last_index = {t: i for i, t in enumerate(ts)}  # later writes overwrite earlier ones
        order = sorted(last_index.values(), key=ts.__getitem__)
        ts = [ts[i] for i in order]
        values = [values[i] for i in order]
        qualities = bytes(qualities[i] for i in order)
    if ts and (ts[0] < INT64_MIN or ts[-1] > INT64_MAX):
        keep = [i for i, t in enumerate(ts) if INT64_MIN <= t <= INT64_MAX]
        ts = [ts[i] for i in keep]
        values = [values[i] for i in keep]
        qualities = bytes(qualities[i] for i in keep)
    return Run(ts, values, qualities) if ts else EMPTY


def concat(runs: Sequence[Run]) -> Run:
    """Runs that follow each other in time (``a.end < b.start``), as one run."""
    if len(runs) == 1:
        return runs[0]
    ts: array[int] = array("q")
    for run in runs:
        ts.extend(run.ts)
    first = runs[0].values
    values: Sequence[StoredValue]
    if isinstance(first, array) and all(
        isinstance(r.values, array) and r.values.typecode == first.typecode for r in runs
    ):
        joined = array(first.typecode)
        for run in runs:
            joined.extend(run.values)  # type: ignore[arg-type]
        values = joined
    else:
        values = list(chain.from_iterable(r.values for r in runs))
    return Run(ts, values, b"".join(r.qualities for r in runs))


def merge(runs: Iterable[Run]) -> Run:
    """Runs of one series in write order as one run; on equal timestamps the later run wins."""
    present = [r for r in runs if len(r)]
    if not present:
        return EMPTY
    if all(a.end < b.start for a, b in pairwise(present)):
        return concat(present)
    merged: dict[int, tuple[StoredValue, int]] = {}
    for run in present:
        merged.update(zip(run.ts, zip(run.values, run.qualities, strict=True), strict=True))
    ts = sorted(merged)
    pairs = [merged[t] for t in ts]
    return Run(ts, [v for v, _ in pairs], bytes(q for _, q in pairs))
