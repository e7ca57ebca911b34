"""The embedded time-series store: the same series as InfluxDB, in SQLite under the data directory.

Used when no InfluxDB is configured, and by the API and the demo for history and latest values.
A *series* is ``(measurement, path, source)``: raw samples go to measurement ``sample`` (source =
connector), twin KPIs to ``twin_kpi`` (source ``twin``). Each point holds a nanosecond timestamp,
the value (float, int or text; booleans are stored as 0/1) and the sample quality. A second
point of the same series with the same timestamp replaces the first, as in InfluxDB.

Writes are cheap and non-blocking (:meth:`EmbeddedStore.write_samples`,
:meth:`EmbeddedStore.write_state`): they are committed in groups on a worker thread. Retention
runs every ``retention_interval_s``: points older than ``max_age_s`` are deleted, then the
oldest-written points beyond ``max_rows``.

Example::

    async with EmbeddedStore(EmbeddedStoreSettings()) as store:
        store.write_samples(samples)
        await store.flush()
        names = await store.series()
        history = await store.points("production_line.temperature", start_ns, end_ns)
        now = await store.latest(["production_line.temperature"])
"""

from __future__ import annotations

import asyncio
import logging
import math
import sqlite3
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from circman5.connectors.sample import Quality, Sample
from circman5.paths import data_path
from circman5.sinks._sqlite import GroupCommitService, SQLiteWorker
from circman5.sinks.config import EmbeddedStoreSettings, SeriesSettings
from circman5.sinks.line_protocol import numeric_leaves

logger = logging.getLogger(__name__)

KPI_SOURCE = "twin"
_QUALITY_CODES = {q.value: i for i, q in enumerate(Quality)}
_QUALITIES = [q.value for q in Quality]
_DELETE_CHUNK = 50_000

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


_SCHEMA = """
CREATE TABLE IF NOT EXISTS series (
    id INTEGER PRIMARY KEY,
    measurement TEXT NOT NULL,
    path TEXT NOT NULL,
    source TEXT NOT NULL,
    UNIQUE (measurement, path, source)
);
CREATE INDEX IF NOT EXISTS series_path ON series (path);
CREATE TABLE IF NOT EXISTS points (
    series_id INTEGER NOT NULL,
    ts INTEGER NOT NULL,
    value,
    quality INTEGER NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS points_series_ts ON points (series_id, ts);
"""

_UPSERT = (
    "INSERT INTO points (series_id, ts, value, quality) VALUES (?, ?, ?, ?)"
    " ON CONFLICT (series_id, ts) DO UPDATE SET value = excluded.value, quality = excluded.quality"
)


@dataclass(frozen=True, slots=True)
class _SampleWrite:
    measurement: str
    samples: Sequence[Sample]


@dataclass(frozen=True, slots=True)
class _KpiWrite:
    measurement: str
    leaves: list[tuple[str, float]]
    timestamp_ns: int


_Write = _SampleWrite | _KpiWrite


class _Tables:
    """The store's tables. Every method runs on the worker thread."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        conn.executescript(_SCHEMA)
        self.rows: int = conn.execute("SELECT count(*) FROM points").fetchone()[0]
        self._ids: dict[tuple[str, str, str], int] = {}
        self._load_ids(conn)

    def _load_ids(self, conn: sqlite3.Connection) -> None:
        self._ids = {
            (m, p, s): i
            for i, m, p, s in conn.execute("SELECT id, measurement, path, source FROM series")
        }

    def _series_id(self, conn: sqlite3.Connection, key: tuple[str, str, str]) -> int:
        series_id = self._ids.get(key)
        if series_id is None:
            conn.execute(
                "INSERT OR IGNORE INTO series (measurement, path, source) VALUES (?, ?, ?)", key
            )
            series_id = conn.execute(
                "SELECT id FROM series WHERE measurement = ? AND path = ? AND source = ?", key
            ).fetchone()[0]
            self._ids[key] = series_id
        return series_id

    def insert(self, conn: sqlite3.Connection, writes: list[_Write]) -> int:
        rows: list[tuple[int, int, StoredValue, int]] = []
        conn.execute("BEGIN IMMEDIATE")
        try:
            for write in writes:
                m = write.measurement
                if isinstance(write, _SampleWrite):
                    for s in write.samples:
                        value = _storable(s.value)
                        if value is None:
                            continue
                        sid = self._series_id(conn, (m, s.path, s.source))
                        rows.append((sid, s.timestamp_ns, value, _QUALITY_CODES.get(s.quality, 0)))
                else:
                    ts = write.timestamp_ns
                    for path, number in write.leaves:
                        rows.append((self._series_id(conn, (m, path, KPI_SOURCE)), ts, number, 0))
            conn.executemany(_UPSERT, rows)
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            self._load_ids(conn)
            raise
        self.rows += len(rows)
        return len(rows)

    def retain(
        self, conn: sqlite3.Connection, max_age_s: float | None, max_rows: int | None
    ) -> int:
        deleted = 0
        if max_age_s is not None:
            cutoff = time.time_ns() - int(max_age_s * 1e9)
            for series_id in list(self._ids.values()):
                while True:
                    cur = conn.execute(
                        "DELETE FROM points WHERE rowid IN (SELECT rowid FROM points"
                        " WHERE series_id = ? AND ts < ? LIMIT ?)",
                        (series_id, cutoff, _DELETE_CHUNK),
                    )
                    deleted += cur.rowcount
                    if cur.rowcount < _DELETE_CHUNK:
                        break
        if max_rows is not None:
            self.rows = conn.execute("SELECT count(*) FROM points").fetchone()[0]
            while self.rows > max_rows:
                chunk = min(self.rows - max_rows, _DELETE_CHUNK)
                cur = conn.execute(
                    "DELETE FROM points WHERE rowid IN"
                    " (SELECT rowid FROM points ORDER BY rowid LIMIT ?)",
                    (chunk,),
                )
                deleted += cur.rowcount
                self.rows -= cur.rowcount
        if deleted:
            conn.execute(
                "DELETE FROM series WHERE NOT EXISTS"
                " (SELECT 1 FROM points WHERE points.series_id = series.id)"
            )
            self._load_ids(conn)
            conn.execute("PRAGMA incremental_vacuum")
        return deleted

    # -- queries -------------------------------------------------------------------------------

    @staticmethod
    def series(conn: sqlite3.Connection, measurement: str | None) -> list[SeriesInfo]:
        sql = "SELECT measurement, path, source FROM series"
        args: tuple[str, ...] = ()
        if measurement is not None:
            sql += " WHERE measurement = ?"
            args = (measurement,)
        return [
            SeriesInfo(*row)
            for row in conn.execute(sql + " ORDER BY path, measurement, source", args)
        ]

    @staticmethod
    def points(
        conn: sqlite3.Connection,
        path: str,
        start_ns: int | None,
        end_ns: int | None,
        measurement: str | None,
        source: str | None,
        limit: int,
    ) -> list[StoredPoint]:
        sql = (
            "SELECT s.measurement, s.path, s.source, p.ts, p.value, p.quality"
            " FROM series s JOIN points p ON p.series_id = s.id WHERE s.path = ?"
        )
        args: list[object] = [path]
        for clause, value in (
            (" AND s.measurement = ?", measurement),
            (" AND s.source = ?", source),
            (" AND p.ts >= ?", start_ns),
            (" AND p.ts < ?", end_ns),
        ):
            if value is not None:
                sql += clause
                args.append(value)
        sql += " ORDER BY p.ts, s.measurement, s.source LIMIT ?"
        args.append(limit)
        return [_point(row) for row in conn.execute(sql, args)]

    @staticmethod
    def latest(
        conn: sqlite3.Connection, paths: Sequence[str] | None, measurement: str | None
    ) -> list[StoredPoint]:
        sql = (
            "SELECT s.measurement, s.path, s.source, p.ts, p.value, p.quality"
            " FROM series s JOIN points p ON p.series_id = s.id"
            " AND p.ts = (SELECT max(ts) FROM points WHERE series_id = s.id)"
        )
        where: list[str] = []
        args: list[object] = []
        if paths is not None:
            where.append(f"s.path IN ({','.join('?' * len(paths))})")
            args.extend(paths)
        if measurement is not None:
            where.append("s.measurement = ?")
            args.append(measurement)
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY s.path, s.measurement, s.source"
        return [_point(row) for row in conn.execute(sql, args)]


def _storable(value: object) -> StoredValue | None:
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, int | str):
        return value
    return None


def _point(row: tuple[str, str, str, int, StoredValue, int]) -> StoredPoint:
    m, p, s, ts, value, quality = row
    name = _QUALITIES[quality] if 0 <= quality < len(_QUALITIES) else "unknown"
    return StoredPoint(m, p, s, ts, value, name)


class EmbeddedStore(GroupCommitService[_Write]):
    """The local SQLite time-series store (see the module docstring).

    ``path`` overrides the file location (default: ``settings.file`` under the data directory).
    """

    def __init__(
        self,
        settings: EmbeddedStoreSettings | None = None,
        series: SeriesSettings | None = None,
        *,
        path: Path | None = None,
    ) -> None:
        super().__init__()
        self.settings = settings or EmbeddedStoreSettings()
        names = series or SeriesSettings()
        self.sample_measurement = names.sample_measurement
        self.kpi_measurement = names.kpi_measurement
        self._path = path
        self._db: SQLiteWorker | None = None
        self._tables: _Tables | None = None
        self._changed: asyncio.Condition | None = None
        self._commit_interval_s = self.settings.commit_interval_s
        self.points_written = 0
        self.points_deleted = 0
        self.writes_lost = 0  # write calls that failed to commit (disk full, ...)
        self._failing = False

    # -- writing (any thread, non-blocking) ----------------------------------------------------

    def write_samples(self, samples: Iterable[Sample]) -> None:
        """Queue samples for the next group commit."""
        batch = samples if isinstance(samples, list | tuple) else list(samples)
        if batch:
            self._intake.push(_SampleWrite(self.sample_measurement, batch))

    def write_state(self, state: Mapping[str, object], timestamp_ns: int | None = None) -> None:
        """Queue the numeric leaves of a twin state as KPI points."""
        leaves = [(p, v) for p, v in numeric_leaves(state) if math.isfinite(v)]
        if leaves:
            ts = time.time_ns() if timestamp_ns is None else timestamp_ns
            self._intake.push(_KpiWrite(self.kpi_measurement, leaves, ts))

    def write_kpi(
        self,
        measurement: str,
        fields: Mapping[str, float],
        tags: Mapping[str, str],
        timestamp_ns: int | None = None,
    ) -> None:
        """Queue one KPI record (e.g. a batch footprint): its numeric fields become points of
        ``measurement`` with path ``<field>`` (tags are not stored locally)."""
        leaves = [
            (name, float(value))
            for name, value in fields.items()
            if isinstance(value, int | float)
            and not isinstance(value, bool)
            and math.isfinite(value)
        ]
        if leaves:
            ts = time.time_ns() if timestamp_ns is None else timestamp_ns
            self._intake.push(_KpiWrite(measurement, leaves, ts))

    async def flush(self) -> None:
        """Until everything queued so far is committed."""
        changed = self._require_changed()
        async with changed:
            await changed.wait_for(lambda: not len(self._intake) and not self._committing)

    # -- queries -------------------------------------------------------------------------------

    async def series(self, measurement: str | None = None) -> list[SeriesInfo]:
        """Every series (``measurement, path, source``), sorted by path."""
        db, _ = self._require_open()
        return await db.call(_Tables.series, measurement)

    async def points(
        self,
        path: str,
        start_ns: int | None = None,
        end_ns: int | None = None,
        *,
        measurement: str | None = None,
        source: str | None = None,
        limit: int = 100_000,
    ) -> list[StoredPoint]:
        """Points of one path with ``start_ns <= timestamp < end_ns``, oldest first."""
        db, _ = self._require_open()
        return await db.call(_Tables.points, path, start_ns, end_ns, measurement, source, limit)

    async def latest(
        self, paths: Iterable[str] | None = None, *, measurement: str | None = None
    ) -> list[StoredPoint]:
        """The newest point of every series (of the given paths), sorted by path."""
        db, _ = self._require_open()
        wanted = None if paths is None else list(paths)
        return await db.call(_Tables.latest, wanted, measurement)

    async def apply_retention(self) -> int:
        """Apply the age and row limits now; returns the number of points deleted."""
        db, tables = self._require_open()
        deleted = await db.call(tables.retain, self.settings.max_age_s, self.settings.max_rows)
        self.points_deleted += deleted
        return deleted

    @property
    def rows(self) -> int:
        """Points stored (approximate between retention passes)."""
        return self._tables.rows if self._tables is not None else 0

    def _require_open(self) -> tuple[SQLiteWorker, _Tables]:
        if self._db is None or self._tables is None:
            raise RuntimeError("embedded store is not open")
        return self._db, self._tables

    def _require_changed(self) -> asyncio.Condition:
        if self._changed is None:
            raise RuntimeError("embedded store is not open")
        return self._changed

    # -- lifecycle -----------------------------------------------------------------------------

    async def _open(self) -> None:
        path = self._path or data_path(self.settings.file)
        db = SQLiteWorker(path, "embedded-store", self.settings.synchronous)
        await db.open()
        try:
            self._tables = await db.call(_Tables)
        except BaseException:
            await db.close()
            raise
        self._db = db
        self._changed = asyncio.Condition()
        self._intake.bind(asyncio.get_running_loop())

    async def _commit_pending(self) -> None:
        db, tables, changed = self._db, self._tables, self._changed
        if db is None or tables is None or changed is None:
            return
        while len(self._intake):
            writes = self._intake.take()
            self._committing = True
            try:
                self.points_written += await db.call(tables.insert, writes)
            except sqlite3.Error as err:
                self.writes_lost += len(writes)
                if not self._failing:
                    self._failing = True
                    logger.error("embedded store: cannot store points (%s); dropping them", err)
            else:
                if self._failing:
                    self._failing = False
                    logger.info("embedded store: storing points again")
            finally:
                self._committing = False
            async with changed:
                changed.notify_all()

    async def _companion(self) -> None:
        """The retention loop."""
        while True:
            await asyncio.sleep(self.settings.retention_interval_s)
            await self.apply_retention()

    async def _close(self) -> None:
        db = self._db
        if db is None:
            return
        try:
            await self._commit_pending()
        finally:
            self._intake.unbind()
            self._db = None
            self._tables = None
            self._changed = None
            await db.close()
