"""The blob format of staged runs and chunks: encoding and decoding a run, joining staged runs,
and building the staged runs of one group commit.

``header | time section: timestamps and one quality byte per point | value section``

Staged runs are written cheaply: int64 timestamps, qualities and values as they are. Chunks are
packed: the time section holds the first timestamp's deltas (uint64) and the qualities, deflated
with a small window (regular timestamps and equal qualities shrink to a few bytes, at a few
microseconds per chunk); float and int values stay float64/int64 (sensor noise does not compress
enough to pay for the CPU); text and mixed values are JSON, deflated.
"""

from __future__ import annotations

import copy
import itertools
import json
import math
import struct
import sys
import zlib
from array import array
from collections.abc import Sequence
from itertools import accumulate, chain, compress, islice, repeat
from operator import ge, sub
from typing import Literal, cast

from circman5.errors import SinkError
from circman5.samples import Quality, Sample
from circman5.sinks.embedded.model import INT64_MAX, INT64_MIN, QUALITY_CODES, StoredValue
from circman5.sinks.embedded.runs import Run, run_of_samples

_HEADER = struct.Struct("<BBBxIqI")  # format, flags, value kind, count, first ts, time bytes
_FORMAT = 1
_PACKED = 1  # the time section is deflated, with timestamp deltas
_DEFLATED_VALUES = 2  # the value section is zlib-compressed
_FLOATS, _INTS, _JSON = 0, 1, 2
_SWAP = sys.byteorder == "big"  # the file format is little-endian


def _le_bytes(numbers: array[int] | array[float]) -> bytes:
    if _SWAP:
        numbers = copy.copy(numbers)
        numbers.byteswap()
    return numbers.tobytes()


def _ints(typecode: Literal["q", "Q"], data: bytes | memoryview) -> array[int]:
    numbers = array(typecode)
    numbers.frombytes(data)
    if _SWAP:
        numbers.byteswap()
    return numbers


def _floats(data: bytes | memoryview) -> array[float]:
    numbers = array("d")
    numbers.frombytes(data)
    if _SWAP:
        numbers.byteswap()
    return numbers


def _value_bytes(values: Sequence[StoredValue]) -> tuple[int, bytes]:
    if isinstance(values, array):
        return (_FLOATS if values.typecode == "d" else _INTS), _le_bytes(values)
    kinds = set(map(type, values))
    if kinds == {float}:
        return _FLOATS, _le_bytes(array("d", cast("Sequence[float]", values)))
    if kinds == {int}:
        return _INTS, _le_bytes(array("q", cast("Sequence[int]", values)))
    return _JSON, json.dumps(list(values), separators=(",", ":")).encode()


def encode(run: Run, *, pack: bool) -> bytes:
    """``pack``: a chunk (compact); else a staged run (cheap to write)."""
    kind, values = _value_bytes(run.values)
    ts = run.ts
    flags = 0
    if pack:
        deltas: array[int] = array("Q", map(sub, islice(ts, 1, None), ts))
        deflate = zlib.compressobj(1, zlib.DEFLATED, -9, 1)  # raw deflate, 512 B window
        times = deflate.compress(_le_bytes(deltas)) + deflate.compress(run.qualities)
        times += deflate.flush()
        flags |= _PACKED
        if kind == _JSON:
            values = zlib.compress(values, 1)
            flags |= _DEFLATED_VALUES
    else:
        times = _le_bytes(ts if isinstance(ts, array) else array("q", ts)) + run.qualities
    header = _HEADER.pack(_FORMAT, flags, kind, len(ts), ts[0], len(times))
    return b"".join((header, times, values))


def decode(data: bytes) -> Run:
    fmt, flags, kind, count, first_ts, time_bytes = _HEADER.unpack_from(data)
    if fmt != _FORMAT:
        raise SinkError(f"embedded store: unknown chunk format {fmt}")
    view = memoryview(data)
    times: bytes | memoryview = view[_HEADER.size : _HEADER.size + time_bytes]
    rest: bytes | memoryview = view[_HEADER.size + time_bytes :]
    if flags & _PACKED:
        times = zlib.decompress(times, -15)
        offset = 8 * (count - 1)
        deltas = _ints("Q", times[:offset])
        ts: Sequence[int] = array("q", accumulate(deltas, initial=first_ts))
    else:
        offset = 8 * count
        ts = _ints("q", times[:offset])
    qualities = bytes(times[offset : offset + count])
    if flags & _DEFLATED_VALUES:
        rest = zlib.decompress(rest)
    values: Sequence[StoredValue]
    if kind == _FLOATS:
        values = _floats(rest)
    elif kind == _INTS:
        values = _ints("q", rest)
    else:
        values = json.loads(bytes(rest))
    return Run(ts, values, qualities)


def join_staged(blobs: Sequence[bytes]) -> Run | None:
    """Staged runs that follow each other in time, as one run, without decoding each one; None
    when they are not all plain float or all plain int runs."""
    kinds: set[int] = set()
    ts_parts: list[memoryview] = []
    quality_parts: list[memoryview] = []
    value_parts: list[memoryview] = []
    for data in blobs:
        fmt, flags, kind, count, _, time_bytes = _HEADER.unpack_from(data)
        if fmt != _FORMAT or flags or kind == _JSON:
            return None
        kinds.add(kind)
        view = memoryview(data)
        split, end = _HEADER.size + 8 * count, _HEADER.size + time_bytes
        ts_parts.append(view[_HEADER.size : split])
        quality_parts.append(view[split:end])
        value_parts.append(view[end:])
    if len(kinds) != 1:
        return None
    joined = b"".join(value_parts)
    values = _floats(joined) if kinds == {_FLOATS} else _ints("q", joined)
    return Run(_ints("q", b"".join(ts_parts)), values, b"".join(quality_parts))


#: A series: ``(measurement, path, source)``.
SeriesKey = tuple[str, str, str]
#: ``(series, start_ts, end_ts, count, last value, last quality, data)``.
StagedRun = tuple[SeriesKey, int, int, int, StoredValue, int, bytes]


def staged_runs(by_series: dict[SeriesKey, list[Sample]]) -> list[StagedRun]:
    """The staged run of each series of one commit: ``(series, start_ts, end_ts, count, last
    value, last quality, data)``.

    Usually each series gets a few points per commit, so the per-series work is what counts:
    timestamps, values and qualities are extracted and converted once for the whole commit,
    and a series whose points are in time order with plain values (finite floats, ints, text)
    only takes slices of them. Any other series goes through :func:`run_of_samples`.
    """
    groups = list(by_series.values())
    flat = groups[0] if len(groups) == 1 else list(chain.from_iterable(groups))
    count = len(flat)
    ts = [s.timestamp_ns for s in flat]
    values = [s.value for s in flat]
    quality_list = [s.quality for s in flat]
    if quality_list.count(Quality.GOOD) == count:
        qualities = bytes((QUALITY_CODES[Quality.GOOD],)) * count
    else:
        qualities = bytes(map(QUALITY_CODES.get, quality_list, repeat(0)))
    types = [type(v) for v in values]
    floats = cast("list[float]", values)
    all_floats = types.count(float) == count and all(map(math.isfinite, floats))
    float_bytes = memoryview(_le_bytes(array("d", floats)) if all_floats else b"")
    try:
        ts_bytes = memoryview(_le_bytes(array("q", ts)))
    except OverflowError:  # a timestamp beyond 64 bits: series by series
        ts_bytes = memoryview(b"")
    # positions i where ts[i + 1] <= ts[i]: fine between two series, not inside one
    steps_back = list(compress(itertools.count(), map(ge, ts, islice(ts, 1, None))))
    pack_header = _HEADER.pack
    staged: list[StagedRun] = []
    lo = back = 0
    for key, group in zip(by_series, groups, strict=True):
        hi = lo + len(group)
        while back < len(steps_back) and steps_back[back] < lo:
            back += 1
        kind = -1
        value_bytes: bytes | memoryview = b""
        if ts_bytes and (back == len(steps_back) or steps_back[back] >= hi - 1):
            if all_floats:
                kind, value_bytes = _FLOATS, float_bytes[8 * lo : 8 * hi]
            else:
                kind, value_bytes = _plain_value_bytes(types[lo:hi], values[lo:hi])
        if kind >= 0:
            n = hi - lo
            data = b"".join(
                (
                    pack_header(_FORMAT, 0, kind, n, ts[lo], 9 * n),
                    ts_bytes[8 * lo : 8 * hi],
                    qualities[lo:hi],
                    value_bytes,
                )
            )
            staged.append((key, ts[lo], ts[hi - 1], n, values[hi - 1], qualities[hi - 1], data))
        else:
            run = run_of_samples(group)
            if len(run):
                data = encode(run, pack=False)
                staged.append((key, run.start, run.end, len(run), *run.last, data))
        lo = hi
    return staged


def _plain_value_bytes(types: list[type], values: Sequence[object]) -> tuple[int, bytes]:
    """``(kind, encoded values)`` when the values are all finite floats, all 64-bit ints or all
    text; ``(-1, b"")`` otherwise."""
    kinds = set(types)
    if kinds == {float}:
        floats = cast("Sequence[float]", values)
        if all(map(math.isfinite, floats)):
            return _FLOATS, _le_bytes(array("d", floats))
    elif kinds == {int}:
        ints = cast("Sequence[int]", values)
        if min(ints) >= INT64_MIN and max(ints) <= INT64_MAX:
            return _INTS, _le_bytes(array("q", ints))
    elif kinds == {str}:
        return _JSON, json.dumps(values, separators=(",", ":")).encode()
    return -1, b""
