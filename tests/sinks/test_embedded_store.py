"""The embedded SQLite time-series store: writes, queries, retention, persistence."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import math
import sqlite3
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from unittest import mock

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from circman5.errors import SinkError
from circman5.samples import Quality, Sample
from circman5.sinks.config import (
    EmbeddedStoreSettings,
    InfluxDB2Settings,
    OutputSettings,
    SeriesSettings,
)
from circman5.sinks.embedded import chunks, queries, schema
from circman5.sinks.embedded import store as store_module
from circman5.sinks.embedded.tables import CompactionStep, Tables
from circman5.sinks.embedded_store import EmbeddedStore, SeriesInfo, StoredPoint, StoredValue
from circman5.sinks.timeseries import open_series_output
from simulators.external import VictoriaMetrics
from tests.sinks.helpers import vm_values

T0 = time.time_ns() // 10**9 * 10**9  # recent: the default age limit keeps it
TEMP = "production_line.temperature"


def temperatures(count: int, start: int = 0, t0: int = T0) -> list[Sample]:
    return [Sample("plc", "ns=2;s=T", TEMP, 20.0 + i, t0 + i * 1000) for i in range(start, count)]


async def test_writes_and_queries(isolated_data_dir: Path) -> None:
    async with EmbeddedStore() as store:
        store.write_samples(temperatures(10))
        store.write_samples(
            [
                Sample("mes", "line/status", "production_line.status", "running", T0 + 5),
                Sample("plc", "ns=2;s=R", "production_line.running", True, T0 + 6),
                Sample("plc", "ns=2;s=T2", TEMP, 99.5, T0 + 7, Quality.BAD),
            ]
        )
        store.write_state(
            {"production_line": {"temperature": 21.5, "status": "running"}, "n": 3}, T0 + 50
        )
        await store.flush()
        series = await store.series()
        window = await store.points(TEMP, T0 + 2000, T0 + 5000, measurement="sample")
        everything = await store.points(TEMP)
        latest = await store.latest([TEMP, "production_line.status"])
        kpi_only = await store.latest(measurement="twin_kpi")
        rows = store.rows
    assert (isolated_data_dir / "timeseries.sqlite3").exists()
    assert series == [
        SeriesInfo("twin_kpi", "n", "twin"),
        SeriesInfo("sample", "production_line.running", "plc"),
        SeriesInfo("sample", "production_line.status", "mes"),
        SeriesInfo("sample", TEMP, "plc"),
        SeriesInfo("twin_kpi", TEMP, "twin"),
    ]
    assert [(p.timestamp_ns, p.value) for p in window] == [
        (T0 + 2000, 22.0),
        (T0 + 3000, 23.0),
        (T0 + 4000, 24.0),
    ]
    assert len(everything) == 12  # 10 + the bad one + the KPI
    assert everything[1] == StoredPoint("sample", TEMP, "plc", T0 + 7, 99.5, "bad")
    assert latest == [
        StoredPoint("sample", "production_line.status", "mes", T0 + 5, "running", "good"),
        StoredPoint("sample", TEMP, "plc", T0 + 9000, 29.0, "good"),
        StoredPoint("twin_kpi", TEMP, "twin", T0 + 50, 21.5, "good"),
    ]
    assert [(p.path, p.value) for p in kpi_only] == [("n", 3), (TEMP, 21.5)]
    assert rows == 15  # 10 + 3 samples, 2 KPIs


async def test_same_timestamp_replaces_and_data_survives_reopen() -> None:
    async with EmbeddedStore() as store:
        store.write_samples(temperatures(3))
        store.write_samples([Sample("plc", "x", TEMP, -1.0, T0 + 1000)])
        await store.flush()
    async with EmbeddedStore() as store:
        points = await store.points(TEMP)
    assert [p.value for p in points] == [20.0, -1.0, 22.0]


async def test_retention_by_age_and_by_rows() -> None:
    now = time.time_ns()
    settings = EmbeddedStoreSettings(max_age_s=3600, max_rows=25, retention_interval_s=3600)
    async with EmbeddedStore(settings) as store:
        store.write_samples(temperatures(10, t0=now - 7200 * 10**9))  # two hours old
        store.write_samples(
            [Sample("old", "a", "old.path", 1.0, now - 7200 * 10**9)]  # a series that empties
        )
        store.write_samples(temperatures(30, t0=now))
        await store.flush()
        deleted = await store.apply_retention()
        kept = await store.points(TEMP)
        names = {s.path for s in await store.series()}
    assert deleted == 11 + 5
    assert [p.value for p in kept] == [20.0 + i for i in range(5, 30)]  # the 25 newest
    assert names == {TEMP}


async def test_writes_from_other_threads_are_committed() -> None:
    async with EmbeddedStore() as store:
        await asyncio.gather(
            *(
                asyncio.to_thread(store.write_samples, temperatures(k * 10 + 10, k * 10))
                for k in range(4)
            )
        )
        await store.flush()
        points = await store.points(TEMP)
    assert [p.value for p in points] == [20.0 + i for i in range(40)]


async def test_series_output_without_influxdb_uses_the_embedded_store(
    isolated_data_dir: Path,
) -> None:
    settings = OutputSettings(series=SeriesSettings(sample_measurement="raw"))
    async with open_series_output(settings) as output:
        assert output.outbox is None and output.store is not None
        output.writer.write_samples(temperatures(2))
        output.writer.write_state({"production_line": {"temperature": 20.5}}, T0)
        await output.store.flush()
        measurements = sorted({p.measurement for p in await output.store.points(TEMP)})
    assert measurements == ["raw", "twin_kpi"]
    assert (isolated_data_dir / "timeseries.sqlite3").exists()


async def test_series_output_to_influxdb_and_local_history(
    victoria_metrics: VictoriaMetrics,
) -> None:
    settings = OutputSettings(
        influxdb=InfluxDB2Settings(url=victoria_metrics.url),
        embedded=EmbeddedStoreSettings(mode="always"),
    )
    async with open_series_output(settings) as output:
        assert output.outbox is not None and output.store is not None
        output.writer.write_samples(temperatures(5))
        output.writer.write_state({"production_line": {"temperature": 20.5}}, T0)
        await output.store.flush()
        await asyncio.wait_for(output.outbox.drain(), 10)
        local = await output.store.points(TEMP)
        delivered = output.outbox.metrics.delivered_points
    victoria_metrics.force_flush()
    assert delivered == 6 and len(local) == 6
    assert vm_values(victoria_metrics.url, '{__name__="sample_value"}') == [
        20.0 + i for i in range(5)
    ]
    assert vm_values(victoria_metrics.url, '{__name__="twin_kpi_value"}') == [20.5]


async def test_kpi_records_are_stored_under_their_measurement(tmp_path: Path) -> None:
    from circman5.sinks.config import EmbeddedStoreSettings, SeriesSettings
    from circman5.sinks.embedded_store import EmbeddedStore

    async with EmbeddedStore(
        EmbeddedStoreSettings(), SeriesSettings(), path=tmp_path / "kpi.sqlite3"
    ) as store:
        store.write_kpi(
            "batch_footprint",
            {"total": 123.5, "per_module": 1.25, "label": "x"},  # type: ignore[dict-item]
            {"batch_id": "B-1"},
            1_700_000_000_000_000_000,
        )
        await store.flush()
        points = await store.points("total", measurement="batch_footprint")
        assert [(p.timestamp_ns, p.value) for p in points] == [(1_700_000_000_000_000_000, 123.5)]
        names = {s.path for s in await store.series("batch_footprint")}
        assert names == {"total", "per_module"}


# -- the chunked layout -----------------------------------------------------------------------


#: Commit at once: these tests flush often (the 1 s default would make each flush wait).
FAST = EmbeddedStoreSettings(commit_interval_s=0)
FAST_NO_AGE_LIMIT = EmbeddedStoreSettings(commit_interval_s=0, max_age_s=None)


def chunk_spans(path: Path) -> list[list[tuple[int, int, int]]]:
    """Each series' chunks as ``(start_ts, end_ts, count)`` in time order (read from the file)."""
    spans: dict[int, list[tuple[int, int, int]]] = {}
    with contextlib.closing(sqlite3.connect(path)) as conn:
        for series_id, start, end, count in conn.execute(
            "SELECT series_id, start_ts, end_ts, count FROM chunks ORDER BY series_id, end_ts"
        ):
            spans.setdefault(series_id, []).append((start, end, count))
    return list(spans.values())


def assert_chunks_disjoint(path: Path) -> None:
    for spans in chunk_spans(path):
        for (_, end, _), (start, _, _) in itertools.pairwise(spans):
            assert end < start, spans


def typed(points: list[StoredPoint]) -> list[tuple[int, str, str]]:
    """Timestamp, value with its type (``repr``: 1 is not 1.0, -0.0 is not 0.0), quality."""
    return [(p.timestamp_ns, repr(p.value), p.quality) for p in points]


def at(values: dict[int, float], path: str = TEMP) -> list[Sample]:
    return [Sample("plc", "x", path, v, T0 + t) for t, v in values.items()]


def relative(points: list[StoredPoint]) -> list[tuple[int, StoredValue]]:
    return [(p.timestamp_ns - T0, p.value) for p in points]


MIXED = [
    Sample("plc", "a", "f", 1.5, T0 + 1, Quality.GOOD),
    Sample("plc", "a", "f", -0.0, T0 + 2, Quality.UNCERTAIN),
    Sample("plc", "a", "f", math.inf, T0 + 3),  # skipped
    Sample("plc", "a", "f", math.nan, T0 + 4),  # skipped
    Sample("plc", "b", "i", 7, T0 + 1, Quality.BAD),
    Sample("plc", "b", "i", -(2**63), T0 + 2, Quality.STALE),
    Sample("plc", "b", "i", 2**63 - 1, T0 + 3),
    Sample("plc", "b", "i", 2**64, T0 + 4),  # skipped: SQLite holds 64-bit integers
    Sample("plc", "c", "s", "running", T0 + 1),
    Sample("plc", "c", "s", "", T0 + 2, Quality.BAD),
    Sample("plc", "c", "s", "ünïcode ☃", T0 + 3),
    Sample("plc", "d", "b", True, T0 + 1),
    Sample("plc", "d", "b", False, T0 + 2),
    Sample("plc", "e", "m", 1, T0 + 1),  # one series, three types
    Sample("plc", "e", "m", 2.0, T0 + 2),
    Sample("plc", "e", "m", "three", T0 + 3, Quality.UNCERTAIN),
]
MIXED_STORED = {
    "b": [(T0 + 1, "1", "good"), (T0 + 2, "0", "good")],
    "f": [(T0 + 1, "1.5", "good"), (T0 + 2, "-0.0", "uncertain")],
    "i": [(T0 + 1, "7", "bad"), (T0 + 2, str(-(2**63)), "stale"), (T0 + 3, str(2**63 - 1), "good")],
    "m": [(T0 + 1, "1", "good"), (T0 + 2, "2.0", "good"), (T0 + 3, "'three'", "uncertain")],
    "s": [(T0 + 1, "'running'", "good"), (T0 + 2, "''", "bad"), (T0 + 3, "'ünïcode ☃'", "good")],
}


async def test_values_keep_their_type_and_quality_staged_compacted_and_reopened() -> None:
    async def stored(store: EmbeddedStore) -> dict[str, list[tuple[int, str, str]]]:
        return {path: typed(await store.points(path)) for path in MIXED_STORED}

    async with EmbeddedStore(FAST) as store:
        store.write_samples(MIXED)
        await store.flush()
        staged, staged_points = await stored(store), store.staged_points
        await store.compact()
        compacted, left_staged = await stored(store), store.staged_points
        latest = typed(await store.latest())
    async with EmbeddedStore(FAST) as store:
        reopened, rows = await stored(store), store.rows
    assert staged == compacted == reopened == MIXED_STORED
    assert (staged_points, left_staged, rows) == (13, 0, 13)
    assert latest == [points[-1] for _, points in sorted(MIXED_STORED.items())]


async def test_same_timestamp_in_staged_runs_and_chunks_keeps_the_later_write(
    isolated_data_dir: Path,
) -> None:
    async with EmbeddedStore(FAST) as store:
        store.write_samples(at({0: 1.0, 10: 1.0, 20: 1.0}))
        await store.flush()
        await store.compact()  # a chunk: 0, 10, 20
        store.write_samples(at({10: 2.0, 30: 2.0}))  # 10 is in the chunk
        await store.flush()
        store.write_samples(at({30: 3.0, 40: 3.0}))  # 30 is in the previous staged run
        await store.flush()
        store.write_samples(at({40: 3.5}))  # the newest point again
        await store.flush()
        staged_view = relative(await store.points(TEMP))
        staged_latest = relative(await store.latest([TEMP]))
        staged_rows = store.rows
        await store.compact()  # chunks [0, 20] and [30, 40]
        store.write_samples(at({20: 4.0, 40: 4.0, 50: 4.0}))  # one point in each chunk
        await store.flush()
        await store.compact()
        final = relative(await store.points(TEMP))
        final_latest = relative(await store.latest([TEMP]))
        rows = store.rows
    assert staged_view == [(0, 1.0), (10, 2.0), (20, 1.0), (30, 3.0), (40, 3.5)]
    assert staged_latest == [(40, 3.5)]
    assert staged_rows == 8  # staged duplicates count until they are compacted
    assert final == [(0, 1.0), (10, 2.0), (20, 4.0), (30, 3.0), (40, 4.0), (50, 4.0)]
    assert final_latest == [(50, 4.0)]
    assert rows == 6
    assert_chunks_disjoint(isolated_data_dir / "timeseries.sqlite3")


async def test_late_points_are_merged_into_the_chunk_whose_span_they_fall_in(
    isolated_data_dir: Path,
) -> None:
    first = {t: float(t) for t in range(0, 3000, 10)}  # 300 points: a full chunk
    second = {t: float(t) for t in range(10_000, 13_000, 10)}
    late = {5: -5.0, 10: -10.0, 5000: -1.0, 11_000: -2.0, 11_005: -3.0, 20_000: -4.0}
    async with EmbeddedStore(FAST_NO_AGE_LIMIT) as store:
        for values in (first, second, late):
            store.write_samples(at(values))
            await store.flush()
            await store.compact()
        points = await store.points(TEMP)
        rows = store.rows
    expected = first | second | late
    assert relative(points) == sorted(expected.items())
    assert rows == len(expected) == 604
    spans = chunk_spans(isolated_data_dir / "timeseries.sqlite3")
    assert [(start - T0, end - T0, count) for start, end, count in spans[0]] == [
        (0, 2990, 301),  # + 5
        (5000, 5000, 1),  # in the gap: a chunk of its own
        (10_000, 12_990, 301),  # + 11 005
        (20_000, 20_000, 1),
    ]


async def test_large_runs_are_split_into_bounded_chunks(isolated_data_dir: Path) -> None:
    async with EmbeddedStore(FAST_NO_AGE_LIMIT) as store:
        store.write_samples(temperatures(10_000))
        await store.flush()
        await store.compact()
        points = await store.points(TEMP)
        tail = await store.points(TEMP, T0 + 9_990 * 1000)
    (spans,) = chunk_spans(isolated_data_dir / "timeseries.sqlite3")
    assert [p.value for p in points] == [20.0 + i for i in range(10_000)]
    assert [p.value for p in tail] == [20.0 + i for i in range(9_990, 10_000)]
    assert [count for *_, count in spans] == [3333, 3333, 3334]
    assert_chunks_disjoint(isolated_data_dir / "timeseries.sqlite3")


async def test_queries_span_chunks_and_staged_runs() -> None:
    async with EmbeddedStore(FAST) as store:
        store.write_samples(temperatures(100))
        store.write_state({"production_line": {"temperature": 50.0}}, T0 + 50_500)
        await store.flush()
        await store.compact()
        store.write_samples(temperatures(150, start=100))
        store.write_state({"production_line": {"temperature": 51.0}}, T0 + 120_000)
        await store.flush()
        window = await store.points(TEMP, T0 + 95_000, T0 + 105_000, measurement="sample")
        across = await store.points(TEMP, T0 + 50_000, T0 + 51_000)
        limited = await store.points(TEMP, T0 + 98_000, limit=4, source="plc")
        on_tie = await store.points(TEMP, T0 + 120_000, T0 + 120_001)
        everything = await store.points(TEMP)
        latest = await store.latest([TEMP])
        later = await store.points(TEMP, T0 + 10**12)
        unknown = await store.points("no.such.path")
    assert [p.value for p in window] == [20.0 + i for i in range(95, 105)]
    assert [(p.measurement, p.value) for p in across] == [("sample", 70.0), ("twin_kpi", 50.0)]
    assert [p.value for p in limited] == [118.0, 119.0, 120.0, 121.0]
    assert [p.measurement for p in on_tie] == ["sample", "twin_kpi"]  # same time: by name
    assert len(everything) == 152
    assert [p.timestamp_ns for p in everything] == sorted(p.timestamp_ns for p in everything)
    assert [(p.measurement, p.value) for p in latest] == [("sample", 169.0), ("twin_kpi", 51.0)]
    assert later == [] and unknown == []


async def test_retention_by_age_drops_old_chunks_and_trims_the_one_across_the_limit() -> None:
    now = time.time_ns()
    hour = 3600 * 10**9
    settings = EmbeddedStoreSettings(
        max_age_s=3600, max_rows=None, retention_interval_s=3600, commit_interval_s=0
    )
    cutoff = now - hour  # about: the test takes far less than the 30 s margins below
    async with EmbeddedStore(settings) as store:
        store.write_samples(temperatures(300, t0=now - 3 * hour))  # a whole chunk, too old
        store.write_samples([Sample("old", "a", "old.path", 1.0, now - 2 * hour)])
        await store.flush()
        await store.compact()
        store.write_samples(  # a chunk across the limit: 5 points before it, 5 after it
            [
                Sample("plc", "x", TEMP, float(i), cutoff + (2 * i - 9) * 30 * 10**9)
                for i in range(10)
            ]
        )
        await store.flush()
        await store.compact()
        store.write_samples([Sample("plc", "x", TEMP, 99.0, now)])  # staged at retention time
        await store.flush()
        deleted = await store.apply_retention()
        kept = [p.value for p in await store.points(TEMP)]
        names = {s.path for s in await store.series()}
        rows = store.rows
    assert deleted == 300 + 1 + 5
    assert kept == [5.0, 6.0, 7.0, 8.0, 9.0, 99.0]
    assert rows == 6
    assert names == {TEMP}


async def test_retention_by_rows_drops_the_oldest_chunks_then_part_of_one() -> None:
    settings = EmbeddedStoreSettings(max_rows=25, retention_interval_s=3600, commit_interval_s=0)
    async with EmbeddedStore(settings) as store:
        for k, path in enumerate(["p1", "p2", "p3", TEMP]):  # one chunk each, p1 the oldest
            store.write_samples(at({(10 * k + i) * 10**9: float(i) for i in range(10)}, path))
        await store.flush()
        await store.compact()
        deleted = await store.apply_retention()
        p2 = [p.value for p in await store.points("p2")]
        counts = {path: len(await store.points(path)) for path in ("p1", "p3", TEMP)}
        names = {s.path for s in await store.series()}
        rows = store.rows
        again = await store.apply_retention()
    assert deleted == 10 + 5
    assert p2 == [5.0, 6.0, 7.0, 8.0, 9.0]  # the older half went
    assert counts == {"p1": 0, "p3": 10, TEMP: 10}
    assert names == {"p2", "p3", TEMP}
    assert rows == 25
    assert again == 0


async def test_everything_committed_survives_a_restart_before_and_after_compaction() -> None:
    async with EmbeddedStore(FAST) as store:
        store.write_samples(temperatures(20))
        await store.flush()
    async with EmbeddedStore(FAST) as store:  # staged only
        staged = ([p.value for p in await store.points(TEMP)], store.staged_points, store.rows)
        await store.compact()
        store.write_samples(temperatures(30, start=20))
        await store.flush()
    async with EmbeddedStore(FAST) as store:  # chunks and staged
        both = ([p.value for p in await store.points(TEMP)], store.staged_points, store.rows)
        latest = [p.value for p in await store.latest([TEMP])]
        await store.compact()
    async with EmbeddedStore(FAST) as store:  # chunks only
        chunked = ([p.value for p in await store.points(TEMP)], store.staged_points, store.rows)
    assert staged == ([20.0 + i for i in range(20)], 20, 20)
    assert both == ([20.0 + i for i in range(30)], 10, 30)
    assert latest == [49.0]
    assert chunked == ([20.0 + i for i in range(30)], 0, 30)


def write_old_layout(path: Path) -> None:
    """A data file as the row-per-point version wrote it (schema version 0, table ``points``)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with contextlib.closing(sqlite3.connect(path)) as conn, conn:
        conn.executescript(
            """
            CREATE TABLE series (id INTEGER PRIMARY KEY, measurement TEXT NOT NULL,
                path TEXT NOT NULL, source TEXT NOT NULL, UNIQUE (measurement, path, source));
            CREATE INDEX series_path ON series (path);
            CREATE TABLE points (series_id INTEGER NOT NULL, ts INTEGER NOT NULL, value,
                quality INTEGER NOT NULL);
            CREATE UNIQUE INDEX points_series_ts ON points (series_id, ts);
            """
        )
        conn.executemany(
            "INSERT INTO series (id, measurement, path, source) VALUES (?, ?, ?, ?)",
            [
                (1, "sample", TEMP, "plc"),
                (2, "sample", "production_line.status", "mes"),
                (3, "twin_kpi", TEMP, "twin"),
            ],
        )
        rows = [(1, T0 + i * 1000, 20.0 + i, i % 4) for i in range(5000)]  # two chunks' worth
        rows += [(2, T0 + 1, "running", 0), (2, T0 + 2, 1, 2), (3, T0 + 5, 21.5, 0)]
        conn.executemany("INSERT INTO points VALUES (?, ?, ?, ?)", reversed(rows))


async def test_a_file_of_the_row_per_point_layout_is_migrated(
    isolated_data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = isolated_data_dir / "timeseries.sqlite3"
    write_old_layout(path)  # newest rows first: each batch is older than the chunks before it
    monkeypatch.setattr(schema, "MIGRATION_BATCH_POINTS", 700)
    async with EmbeddedStore(FAST) as store:
        temperature = await store.points(TEMP, measurement="sample")
        status = typed(await store.points("production_line.status"))
        latest = typed(await store.latest())
        rows, staged = store.rows, store.staged_points
        store.write_samples([Sample("plc", "x", TEMP, -1.0, T0 + 3000)])  # replaces a point
        await store.flush()
        await store.compact()
        replaced = [p.value for p in await store.points(TEMP, T0 + 2000, T0 + 5000)]
    with contextlib.closing(sqlite3.connect(path)) as conn:
        tables = {name for (name,) in conn.execute("SELECT name FROM sqlite_master")}
        version = conn.execute("PRAGMA user_version").fetchone()[0]
    assert [p.value for p in temperature] == [20.0 + i for i in range(5000)]
    assert [p.quality for p in temperature[:5]] == ["good", "uncertain", "bad", "stale", "good"]
    assert status == [(T0 + 1, "'running'", "good"), (T0 + 2, "1", "bad")]
    assert latest == [
        (T0 + 2, "1", "bad"),
        (T0 + 4_999_000, "5019.0", "stale"),
        (T0 + 5, "21.5", "good"),
    ]
    assert (rows, staged) == (5003, 0)
    assert replaced == [22.0, -1.0, 24.0]
    assert "points" not in tables and {"series", "chunks", "recent"} <= tables
    assert version == 2
    assert_chunks_disjoint(path)


async def test_a_file_of_a_newer_schema_is_refused(isolated_data_dir: Path) -> None:
    path = isolated_data_dir / "timeseries.sqlite3"
    with contextlib.closing(sqlite3.connect(path)) as conn:
        conn.execute("PRAGMA user_version = 99")
    with pytest.raises(SinkError, match="schema version 99"):
        async with EmbeddedStore():
            pass


async def test_compaction_starts_when_max_staged_points_are_staged() -> None:
    settings = EmbeddedStoreSettings(
        compact_interval_s=3600, max_staged_points=1000, commit_interval_s=0
    )
    async with EmbeddedStore(settings) as store:
        store.write_samples(temperatures(999))
        await store.flush()
        below = store.staged_points
        store.write_samples(temperatures(1000, start=999))
        await store.flush()
        await eventually(lambda: store.staged_points == 0)
        points = [p.value for p in await store.points(TEMP)]
        compactions = store.compactions
    assert below == 999  # below the threshold, within the interval: still staged
    assert points == [20.0 + i for i in range(1000)]
    assert compactions == 1


async def test_compaction_runs_every_compact_interval_s() -> None:
    settings = EmbeddedStoreSettings(compact_interval_s=0.05, commit_interval_s=0)
    async with EmbeddedStore(settings) as store:
        for round_ in range(3):
            store.write_samples(temperatures(10 * round_ + 10, start=10 * round_))
            await store.flush()
            await eventually(lambda: store.staged_points == 0)
        points = [p.value for p in await store.points(TEMP)]
    assert points == [20.0 + i for i in range(30)]


def test_compaction_settings_are_validated() -> None:
    with pytest.raises(ValidationError, match="compact_interval_s"):
        EmbeddedStoreSettings(compact_interval_s=0)
    with pytest.raises(ValidationError, match="max_staged_points"):
        EmbeddedStoreSettings(max_staged_points=10)
    assert EmbeddedStoreSettings().compact_interval_s == 30.0


STEP_SERIES = [f"s{k}" for k in range(30)]


def step_commits() -> list[list[Sample]]:
    """20 commits: 30 series of 5 points each, "big" of 200 points each (8,500 points in all,
    with "bulk": one run of 1,500 points in the first commit)."""
    commits = []
    for i in range(20):
        batch = [
            Sample("plc", "x", path, float(i * 5 + j), T0 + i * 10 + j)
            for path in STEP_SERIES
            for j in range(5)
        ]
        batch += [
            Sample("plc", "x", "big", float(i * 200 + j), T0 + i * 1000 + j) for j in range(200)
        ]
        if i == 0:
            batch += [Sample("plc", "x", "bulk", float(j), T0 + j) for j in range(1500)]
        commits.append(batch)
    return commits


def step_expected() -> dict[str, list[tuple[int, StoredValue]]]:
    expected: dict[str, list[tuple[int, StoredValue]]] = {}
    for batch in step_commits():
        for sample in batch:
            expected.setdefault(sample.path, []).append((sample.timestamp_ns, sample.value))
    return expected


async def test_a_compaction_step_takes_at_most_compact_step_points(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(store_module, "COMPACT_STEP_POINTS", 1000)
    expected = step_expected()
    taken: list[int] = []
    between: list[bool] = []  # queries between two steps read every point once
    compact_step = Tables.compact_step

    def spy(self: Tables, conn: sqlite3.Connection, step: CompactionStep) -> int:
        points = compact_step(self, conn, step)
        taken.append(points)
        read = {
            path: [
                (p.timestamp_ns, p.value) for p in queries.points(conn, path, *[None] * 4, 10**6)
            ]
            for path in expected
        }
        newest = [(p.path, p.value) for p in queries.latest(conn, None, None)]
        between.append(
            read == expected and newest == [(k, v[-1][1]) for k, v in sorted(expected.items())]
        )
        return points

    monkeypatch.setattr(Tables, "compact_step", spy)
    path = tmp_path / "steps.sqlite3"
    async with EmbeddedStore(FAST, path=path) as store:
        for batch in step_commits():
            store.write_samples(batch)
            await store.flush()
        await store.compact()
        read = {
            p: [(point.timestamp_ns, point.value) for point in await store.points(p)]
            for p in expected
        }
        counts = store.rows, store.staged_points, store.compactions
    assert max(t for t in taken if t != 1500) <= 1000  # one staged run of 1,500: a step alone
    assert 1500 in taken and sum(taken) == 8500 and len(taken) >= 8
    assert all(between) and read == expected
    assert counts == (8500, 0, 1)
    assert_chunks_disjoint(path)


async def test_a_compaction_stopped_between_steps_is_completed_by_the_next(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(store_module, "COMPACT_STEP_POINTS", 1000)
    expected = step_expected()
    compact_step = Tables.compact_step
    calls = 0

    def failing_second_step(self: Tables, conn: sqlite3.Connection, step: CompactionStep) -> int:
        nonlocal calls
        calls += 1
        if calls == 2:
            raise sqlite3.OperationalError("disk I/O error")
        return compact_step(self, conn, step)

    path = tmp_path / "stopped.sqlite3"
    async with EmbeddedStore(FAST, path=path) as store:
        for batch in step_commits():
            store.write_samples(batch)
            await store.flush()
        with (
            mock.patch.object(Tables, "compact_step", failing_second_step),
            pytest.raises(sqlite3.OperationalError),
        ):
            await store.compact()  # the first step's points are in chunks and still staged
        stopped = {p: [(q.timestamp_ns, q.value) for q in await store.points(p)] for p in expected}
        await store.compact()
        read = {p: [(q.timestamp_ns, q.value) for q in await store.points(p)] for p in expected}
        counts = store.rows, store.staged_points
    async with EmbeddedStore(FAST, path=path) as store:
        reopened = store.rows, store.staged_points
    assert stopped == read == expected
    assert counts == reopened == (8500, 0)
    assert_chunks_disjoint(path)


async def eventually(condition: Callable[[], bool], within_s: float = 10.0) -> None:
    """Poll a condition set by the store's own background task (no flush covers it)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within_s
    while not condition():
        if loop.time() > deadline:
            raise TimeoutError("condition not met")
        await asyncio.sleep(0.01)


# -- against a model: any interleaving of writes and compactions reads back as a dict would -----

_VALUES = st.one_of(
    st.floats(allow_nan=False, allow_infinity=False),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.text(max_size=3),
    st.booleans(),
)
_POINT = st.tuples(
    st.sampled_from(["a", "b"]), st.integers(0, 40), _VALUES, st.sampled_from(Quality)
)
_STEP = st.one_of(st.lists(_POINT, min_size=1, max_size=12), st.just("compact"), st.just("flush"))


@settings(max_examples=60, deadline=None)
@given(steps=st.lists(_STEP, min_size=1, max_size=12))
def test_reads_match_a_model_of_later_writes_winning(steps: list[object]) -> None:
    model: dict[str, dict[int, tuple[StoredValue, str]]] = {"a": {}, "b": {}}
    for step in steps:
        if isinstance(step, list):
            for path, t, value, quality in step:
                stored = int(value) if isinstance(value, bool) else value
                model[path][T0 + t] = (stored, quality.value)

    Reads = tuple[dict[str, list[tuple[int, str, str]]], list[tuple[int, str, str]]]

    async def reads(store: EmbeddedStore) -> Reads:
        return {path: typed(await store.points(path)) for path in model}, typed(
            await store.latest()
        )

    async def run(file: Path) -> tuple[Reads, Reads, int]:
        async with EmbeddedStore(FAST, path=file) as store:
            for step in steps:
                if step == "compact":
                    await store.flush()
                    await store.compact()
                elif step == "flush":
                    await store.flush()
                else:
                    assert isinstance(step, list)
                    store.write_samples(
                        [
                            Sample("plc", "x", path, value, T0 + t, quality)
                            for path, t, value, quality in step
                        ]
                    )
            await store.flush()
            before = await reads(store)  # whatever is still staged, and chunks
            await store.compact()
            return before, await reads(store), store.rows

    with (
        tempfile.TemporaryDirectory() as tmp,
        # tiny chunks and compaction steps: many chunks, splits, gaps and partial compactions
        mock.patch.multiple(chunks, MAX_CHUNK_POINTS=5, SMALL_CHUNK_POINTS=3),
        mock.patch.object(store_module, "COMPACT_STEP_POINTS", 7),
    ):
        before, after, rows = asyncio.run(run(Path(tmp) / "model.sqlite3"))
        assert_chunks_disjoint(Path(tmp) / "model.sqlite3")
    points = {
        path: [(t, repr(v), q) for t, (v, q) in sorted(series.items())]
        for path, series in model.items()
    }
    latest = [series[-1] for series in points.values() if series]
    assert before == after == (points, latest)
    assert rows == sum(map(len, model.values()))
