"""Outputs benchmark: line-protocol encoding, and points per second through the outbox into
VictoriaMetrics, each beside a baseline measured in the same run.

* encoding: :class:`LineEncoder` on Samples vs influxdb-client ``Point.to_line_protocol()``;
* delivery: prebuilt lines accepted by the outbox (``put``: on disk before it returns), stored in
  SQLite and sent with influxdb-client, until VictoriaMetrics accepted every point, vs a bare
  influxdb-client write loop of the same lines in requests of the same size;
* accept cost: the time ``Outbox.submit`` takes on the caller's thread, per batch;
* embedded store: CPU per second of data at 1,000 series x 10 Hz (one group commit per second,
  compaction every 30 s, retention every 60 s with ``max_rows`` = 1,000,000 so it deletes in the
  measured window), measured over seconds 120-180 of simulated data, vs the previous
  row-per-point layout (a UNIQUE (series, ts) index and upserts) fed the same samples; and the
  size of each file at the end (1,000,000 points, plus staged points and free pages).

Run: ``python -m benchmarks outputs``.
"""

from __future__ import annotations

import asyncio
import math
import sqlite3
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from influxdb_client.client.influxdb_client import InfluxDBClient
from influxdb_client.client.write.point import Point
from influxdb_client.client.write_api import SYNCHRONOUS
from influxdb_client.domain.write_precision import WritePrecision

from benchmarks.report import Row
from circman5.samples import Quality, Sample
from circman5.sinks._sqlite import SQLiteWorker
from circman5.sinks.config import EmbeddedStoreSettings, InfluxDB2Settings, OutboxSettings
from circman5.sinks.embedded_store import EmbeddedStore
from circman5.sinks.influxdb import InfluxDB2Sink
from circman5.sinks.line_protocol import LineEncoder
from circman5.sinks.outbox import Outbox
from simulators.external import VictoriaMetrics

POINTS = 1_000_000
PRODUCER_BATCH = 1_000  # lines per put: a few ticks of a busy line
REQUEST_POINTS = 10_000  # lines per HTTP request (outbox batch_max_points, baseline requests)
PRODUCERS = 4
TARGET_POINTS_PER_S = 200_000.0
T0 = 1_700_000_000_000_000_000

STORE_SERIES = 1_000
STORE_TICKS_PER_S = 10
STORE_WARMUP_S = 120  # simulated seconds before the measured window
STORE_MEASURED_S = 60
STORE_COMPACT_EVERY_S = 30
STORE_RETENTION_EVERY_S = 60
STORE_MAX_ROWS = 1_000_000
STORE_TARGET_MS = 20.0


def make_samples(count: int) -> list[Sample]:
    return [
        Sample("plc", f"ns=2;i={i % 200}", f"line.machine{i % 200}.value", i * 0.5, T0 + i * 1000)
        for i in range(count)
    ]


def bench_encoding(samples: list[Sample]) -> Row:
    encoder = LineEncoder("site1", "line1")
    start = time.perf_counter()
    for i in range(0, len(samples), PRODUCER_BATCH):
        encoder.encode_samples(samples[i : i + PRODUCER_BATCH])
    ours = len(samples) / (time.perf_counter() - start)
    subset = samples[:100_000]
    start = time.perf_counter()
    for s in subset:
        Point("sample").tag("site", "site1").tag("line", "line1").tag("source", s.source).tag(
            "path", s.path
        ).tag("quality", s.quality.value).field("value", s.value).time(
            s.timestamp_ns
        ).to_line_protocol()
    baseline = len(subset) / (time.perf_counter() - start)
    return Row(
        "encode Samples to line protocol",
        ours,
        "points/s",
        TARGET_POINTS_PER_S,
        baseline=baseline,
        baseline_label="influxdb-client Point",
    )


def bench_bare_client(url: str, requests: list[bytes]) -> float:
    client = InfluxDBClient(url=url, token="", org="bench", retries=False)
    try:
        write_api = client.write_api(write_options=SYNCHRONOUS)
        start = time.perf_counter()
        for body in requests:
            write_api.write(bucket="bench", record=body, write_precision=WritePrecision.NS)
        elapsed = time.perf_counter() - start
    finally:
        client.close()
    return POINTS / elapsed


async def bench_outbox(url: str, batches: list[bytes], path: Path) -> tuple[float, float, float]:
    """(points/s end to end, submit µs per batch, most points waiting in the outbox)."""
    settings = OutboxSettings(batch_max_points=REQUEST_POINTS)
    peak = 0
    async with (
        InfluxDB2Sink(InfluxDB2Settings(url=url, bucket="bench", org="bench")) as sink,
        Outbox(sink, name="bench", settings=settings, path=path, mergeable=True) as outbox,
    ):

        async def produce(mine: list[bytes]) -> None:
            nonlocal peak
            for body in mine:
                await outbox.put(body, PRODUCER_BATCH)
                peak = max(peak, outbox.metrics.depth_points)

        start = time.perf_counter()
        async with asyncio.TaskGroup() as tg:
            for k in range(PRODUCERS):
                tg.create_task(produce(batches[k::PRODUCERS]))
        await outbox.drain()
        rate = POINTS / (time.perf_counter() - start)
        assert outbox.metrics.delivered_points == POINTS, outbox.metrics

        # the caller's cost of accepting a batch (the commit happens on the worker thread)
        few = batches[:2000]
        start = time.perf_counter()
        for body in few:
            outbox.submit(body, PRODUCER_BATCH)
        submit_us = (time.perf_counter() - start) / len(few) * 1e6
        await outbox.drain()
    return rate, submit_us, float(peak)


# -- the embedded store ------------------------------------------------------------------------


STORE_ADDRESSES = [f"ns=2;i={i}" for i in range(STORE_SERIES)]  # like a tag map: the strings
STORE_PATHS = [f"line.machine{i}.value" for i in range(STORE_SERIES)]  # are shared by samples


def store_second(second: int, t0: int) -> list[list[Sample]]:
    """One second of data: a batch of one sample per series for each of the 10 ticks."""
    ticks = []
    for tick in range(STORE_TICKS_PER_S):
        ts = t0 + second * 1_000_000_000 + tick * (1_000_000_000 // STORE_TICKS_PER_S)
        phase = (second * STORE_TICKS_PER_S + tick) * 0.01
        ticks.append(
            [
                Sample(
                    "plc",
                    STORE_ADDRESSES[i],
                    STORE_PATHS[i],
                    round(20.0 + 5.0 * math.sin(phase + i) + (i % 7) * 0.1, 3),
                    ts,
                    Quality.GOOD,
                )
                for i in range(STORE_SERIES)
            ]
        )
    return ticks


async def simulate_store(
    commit: Callable[[list[list[Sample]]], Awaitable[None]],
    compact: Callable[[], Awaitable[None]],
    retain: Callable[[], Awaitable[None]],
) -> float:
    """Feed ``STORE_WARMUP_S + STORE_MEASURED_S`` simulated seconds; ms CPU per second of data
    spent in ``commit`` / ``compact`` / ``retain`` during the measured window."""
    t0 = time.time_ns() - 3600 * 1_000_000_000
    spent = 0.0
    for second in range(1, STORE_WARMUP_S + STORE_MEASURED_S + 1):
        batches = store_second(second, t0)  # not timed: the producer's work
        start = time.process_time()
        await commit(batches)
        if second % STORE_COMPACT_EVERY_S == 0:
            await compact()
        if second % STORE_RETENTION_EVERY_S == 0:
            await retain()
        if second > STORE_WARMUP_S:
            spent += time.process_time() - start
    return spent / STORE_MEASURED_S * 1000


async def bench_store(path: Path) -> float:
    """ms CPU per second of data: the store through its public API,
    one commit per simulated second (``flush``), compaction and retention at their intervals."""
    settings = EmbeddedStoreSettings(
        commit_interval_s=0.0,  # the benchmark decides when a commit happens (flush)
        compact_interval_s=3600.0,  # ... and when compaction and retention run
        retention_interval_s=3600.0,
        max_rows=STORE_MAX_ROWS,
    )
    async with EmbeddedStore(settings, path=path) as store:

        async def commit(batches: list[list[Sample]]) -> None:
            for batch in batches:
                store.write_samples(batch)
            await store.flush()

        async def retain() -> None:
            await store.apply_retention()

        ms = await simulate_store(commit, store.compact, retain)
        assert store.rows == STORE_MAX_ROWS, store.rows
    return ms


_OLD_SCHEMA = """
CREATE TABLE series (id INTEGER PRIMARY KEY, measurement TEXT NOT NULL, path TEXT NOT NULL,
                     source TEXT NOT NULL, UNIQUE (measurement, path, source));
CREATE INDEX series_path ON series (path);
CREATE TABLE points (series_id INTEGER NOT NULL, ts INTEGER NOT NULL, value,
                     quality INTEGER NOT NULL);
CREATE UNIQUE INDEX points_series_ts ON points (series_id, ts);
"""
_OLD_UPSERT = (
    "INSERT INTO points (series_id, ts, value, quality) VALUES (?, ?, ?, ?)"
    " ON CONFLICT (series_id, ts) DO UPDATE SET value = excluded.value, quality = excluded.quality"
)
_QUALITY_CODES = {q.value: i for i, q in enumerate(Quality)}


class OldLayout:
    """The previous store's commit and retention (row per point, unique index, upserts)."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        conn.executescript(_OLD_SCHEMA)
        self.ids: dict[tuple[str, str, str], int] = {}
        self.rows = 0

    def insert(self, conn: sqlite3.Connection, batches: list[list[Sample]]) -> None:
        rows = []
        conn.execute("BEGIN IMMEDIATE")
        for batch in batches:
            for s in batch:
                value = s.value
                if isinstance(value, float) and not math.isfinite(value):
                    continue
                key = ("sample", s.path, s.source)
                sid = self.ids.get(key)
                if sid is None:
                    conn.execute(
                        "INSERT INTO series (measurement, path, source) VALUES (?,?,?)", key
                    )
                    sid = self.ids[key] = conn.execute("SELECT last_insert_rowid()").fetchone()[0]
                rows.append((sid, s.timestamp_ns, value, _QUALITY_CODES.get(s.quality, 0)))
        conn.executemany(_OLD_UPSERT, rows)
        conn.execute("COMMIT")
        self.rows += len(rows)

    def retain(self, conn: sqlite3.Connection, max_age_s: float, max_rows: int) -> None:
        chunk, deleted = 50_000, 0
        cutoff = time.time_ns() - int(max_age_s * 1e9)
        for series_id in list(self.ids.values()):
            while True:
                cur = conn.execute(
                    "DELETE FROM points WHERE rowid IN (SELECT rowid FROM points"
                    " WHERE series_id = ? AND ts < ? LIMIT ?)",
                    (series_id, cutoff, chunk),
                )
                deleted += cur.rowcount
                if cur.rowcount < chunk:
                    break
        self.rows = conn.execute("SELECT count(*) FROM points").fetchone()[0]
        while self.rows > max_rows:
            cur = conn.execute(
                "DELETE FROM points WHERE rowid IN (SELECT rowid FROM points ORDER BY rowid"
                " LIMIT ?)",
                (min(self.rows - max_rows, chunk),),
            )
            deleted += cur.rowcount
            self.rows -= cur.rowcount
        if deleted:
            conn.execute(
                "DELETE FROM series WHERE NOT EXISTS"
                " (SELECT 1 FROM points WHERE points.series_id = series.id)"
            )
            conn.execute("PRAGMA incremental_vacuum")


async def bench_old_store(path: Path) -> float:
    """The baseline: the same samples, commits and retention schedule into the old layout."""
    db = SQLiteWorker(path, "bench-old-store")
    await db.open()
    try:
        old = await db.call(OldLayout)
        max_age_s = EmbeddedStoreSettings().max_age_s or math.inf

        async def commit(batches: list[list[Sample]]) -> None:
            await db.call(old.insert, batches)

        async def compact() -> None:
            pass

        async def retain() -> None:
            await db.call(old.retain, max_age_s, STORE_MAX_ROWS)

        ms = await simulate_store(commit, compact, retain)
        assert old.rows == STORE_MAX_ROWS, old.rows
    finally:
        await db.close()
    return ms


def bench_embedded_store(tmp: Path) -> list[Row]:
    ms = asyncio.run(bench_store(tmp / "store.sqlite3"))
    size = (tmp / "store.sqlite3").stat().st_size
    old_ms = asyncio.run(bench_old_store(tmp / "old-store.sqlite3"))
    old_size = (tmp / "old-store.sqlite3").stat().st_size
    label = "row per point + unique index"
    return [
        Row(
            "embedded store CPU per second of data, 1,000 series at 10 Hz",
            ms,
            "ms",
            STORE_TARGET_MS,
            False,
            baseline=old_ms,
            baseline_label=label,
        ),
        Row(
            f"embedded store file holding {STORE_MAX_ROWS:,} points",
            size / 1024**2,
            "MB",
            None,
            False,
            baseline=old_size / 1024**2,
            baseline_label=label,
        ),
    ]


def main() -> list[Row]:
    samples = make_samples(POINTS)
    rows = [bench_encoding(samples)]
    encoder = LineEncoder("site1", "line1")
    batches = [
        encoder.encode_samples(samples[i : i + PRODUCER_BATCH])[0]
        for i in range(0, POINTS, PRODUCER_BATCH)
    ]
    per_request = REQUEST_POINTS // PRODUCER_BATCH
    requests = [b"".join(batches[i : i + per_request]) for i in range(0, len(batches), per_request)]
    with (
        tempfile.TemporaryDirectory(prefix="circman5-bench-") as tmp,
        VictoriaMetrics(Path(tmp) / "vm") as vm,
    ):
        baseline = bench_bare_client(vm.url, requests)
        rate, submit_us, peak = asyncio.run(
            bench_outbox(vm.url, batches, Path(tmp) / "outbox.sqlite3")
        )
    rows += [
        Row(
            "outbox -> VictoriaMetrics (on disk before put returns)",
            rate,
            "points/s",
            TARGET_POINTS_PER_S,
            baseline=baseline,
            baseline_label="bare influxdb-client write",
        ),
        Row("outbox submit, caller's cost per 1,000-point batch", submit_us, "µs", 50.0, False),
        Row("most points waiting in the outbox during the run", peak, "points", None, False),
    ]
    with tempfile.TemporaryDirectory(prefix="circman5-bench-") as tmp:
        rows += bench_embedded_store(Path(tmp))
    return rows
