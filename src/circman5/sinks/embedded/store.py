"""The embedded store as an async service: non-blocking writes committed in groups on a worker
thread, queries, and compaction and retention in the background (see
:mod:`circman5.sinks.embedded_store`)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import sqlite3
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from pathlib import Path

from circman5.errors import SinkError
from circman5.paths import data_path
from circman5.samples import Sample
from circman5.sinks._sqlite import GroupCommitService, SQLiteWorker
from circman5.sinks.config import EmbeddedStoreSettings, SeriesSettings
from circman5.sinks.embedded import queries
from circman5.sinks.embedded.model import SeriesInfo, StoredPoint
from circman5.sinks.embedded.tables import KpiWrite, SampleWrite, Tables, Write
from circman5.state_paths import numeric_leaves

logger = logging.getLogger(__name__)

#: Most staged points one compaction step (one transaction) takes, unless one staged run is
#: larger: bounds the compaction's memory (the staged runs and new chunks of one step) and how
#: long it holds the worker.
COMPACT_STEP_POINTS = 50_000
#: Most chunks one retention transaction deletes.
RETENTION_STEP_CHUNKS = 5_000


class EmbeddedStore(GroupCommitService[Write]):
    """The local SQLite time-series store (see :mod:`circman5.sinks.embedded_store`).

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
        self._tables: Tables | None = None
        self._changed: asyncio.Condition | None = None
        self._maintenance: asyncio.Lock | None = None
        self._compaction_wanted = asyncio.Event()
        self._commit_interval_s = self.settings.commit_interval_s
        self._urgent_interval_s = self.settings.acknowledged_commit_interval_s
        self.points_written = 0
        self.points_deleted = 0
        self.compactions = 0  # compactions that moved staged points into chunks
        self.writes_lost = 0  # write calls that failed to commit (disk full, ...)
        self._failing = False
        self._maintenance_failing = False

    # -- writing (any thread, non-blocking) ----------------------------------------------------

    def write_samples(
        self, samples: Iterable[Sample], on_durable: Callable[[], None] | None = None
    ) -> None:
        """Queue samples for the next group commit; ``on_durable()`` runs (on the event loop)
        once they are committed, never if the commit failed. With ``on_durable`` (call from the
        event loop) the commit comes within ``acknowledged_commit_interval_s``."""
        batch = samples if isinstance(samples, list | tuple) else list(samples)
        if batch:
            self._intake.push(SampleWrite(self.sample_measurement, batch, on_durable))
            if on_durable is not None:
                self._hurry_commit()  # a source waits for it (MQTT PUBACKs)
        elif on_durable is not None:
            on_durable()

    def write_state(self, state: Mapping[str, object], timestamp_ns: int | None = None) -> None:
        """Queue the numeric leaves of a twin state as KPI points."""
        leaves = [(p, v) for p, v in numeric_leaves(state) if math.isfinite(v)]
        if leaves:
            ts = time.time_ns() if timestamp_ns is None else timestamp_ns
            self._intake.push(KpiWrite(self.kpi_measurement, leaves, ts))

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
            self._intake.push(KpiWrite(measurement, leaves, ts))

    async def flush(self) -> None:
        """Until everything queued so far is committed."""
        changed = self._require_changed()
        async with changed:
            await changed.wait_for(lambda: not len(self._intake) and not self._committing)

    # -- queries -------------------------------------------------------------------------------

    async def series(self, measurement: str | None = None) -> list[SeriesInfo]:
        """Every series (``measurement, path, source``), sorted by path."""
        db, _ = self._require_open()
        return await db.call(queries.series, measurement)

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
        return await db.call(queries.points, path, start_ns, end_ns, measurement, source, limit)

    async def latest(
        self, paths: Iterable[str] | None = None, *, measurement: str | None = None
    ) -> list[StoredPoint]:
        """The newest point of every series (of the given paths), sorted by path."""
        db, _ = self._require_open()
        wanted = None if paths is None else list(paths)
        return await db.call(queries.latest, wanted, measurement)

    # -- maintenance ---------------------------------------------------------------------------

    async def compact(self) -> None:
        """Move every staged point into chunks now (done every ``compact_interval_s``, and
        when ``max_staged_points`` are staged)."""
        async with self._require_maintenance():
            await self._compact()

    async def _compact(self) -> None:
        db, tables = self._require_open()
        if not tables.staged_points:
            return
        until = await db.call(tables.last_staged_id)
        if until is None:
            return
        steps = await db.call(tables.compaction_plan, COMPACT_STEP_POINTS, until)
        for step in steps:
            await db.call(tables.compact_step, step)
        await db.call(tables.finish_compaction, until, sum(step.points for step in steps))
        self.compactions += 1

    async def apply_retention(self) -> int:
        """Apply the age and row limits now; returns the number of points deleted."""
        async with self._require_maintenance():
            db, tables = self._require_open()
            await self._compact()  # retention works on chunks
            max_age_s, max_rows = self.settings.max_age_s, self.settings.max_rows
            deleted = 0
            if max_age_s is not None:
                cutoff = time.time_ns() - int(max_age_s * 1e9)
                more = True
                while more:
                    step, more = await db.call(tables.expire, cutoff, RETENTION_STEP_CHUNKS)
                    deleted += step
            if max_rows is not None:
                more = True
                while more:
                    step, more = await db.call(tables.trim_to, max_rows, RETENTION_STEP_CHUNKS)
                    deleted += step
            if deleted:
                await db.call(tables.drop_empty_series)
        self.points_deleted += deleted
        return deleted

    @property
    def rows(self) -> int:
        """Points stored (a staged point that replaces another counts until compacted)."""
        return self._tables.rows if self._tables is not None else 0

    @property
    def staged_points(self) -> int:
        """Points in the staging table, not yet compacted into chunks."""
        return self._tables.staged_points if self._tables is not None else 0

    def _require_open(self) -> tuple[SQLiteWorker, Tables]:
        if self._db is None or self._tables is None:
            raise RuntimeError("embedded store is not open")
        return self._db, self._tables

    def _require_changed(self) -> asyncio.Condition:
        if self._changed is None:
            raise RuntimeError("embedded store is not open")
        return self._changed

    def _require_maintenance(self) -> asyncio.Lock:
        if self._maintenance is None:
            raise RuntimeError("embedded store is not open")
        return self._maintenance

    # -- lifecycle -----------------------------------------------------------------------------

    async def _open(self) -> None:
        path = self._path or data_path(self.settings.file)
        db = SQLiteWorker(path, "embedded-store", self.settings.synchronous)
        await db.open()
        try:
            self._tables = await db.call(Tables)
        except BaseException:
            await db.close()
            raise
        self._db = db
        self._changed = asyncio.Condition()
        self._maintenance = asyncio.Lock()
        self._compaction_wanted = asyncio.Event()
        if self._tables.staged_points >= self.settings.max_staged_points:  # left from last run
            self._compaction_wanted.set()
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
                self._committed(writes)
            finally:
                self._committing = False
            if tables.staged_points >= self.settings.max_staged_points:
                self._compaction_wanted.set()
            async with changed:
                changed.notify_all()

    @staticmethod
    def _committed(writes: list[Write]) -> None:
        for write in writes:
            if type(write) is SampleWrite and write.on_durable is not None:
                try:
                    write.on_durable()
                except Exception:  # a caller's callback must not stop the store
                    logger.exception("embedded store: commit callback failed")

    async def _companion(self) -> None:
        """Compaction (every ``compact_interval_s`` or when asked) and retention."""
        loop = asyncio.get_running_loop()
        wanted = self._compaction_wanted
        next_compaction = loop.time() + self.settings.compact_interval_s
        next_retention = loop.time() + self.settings.retention_interval_s
        while True:
            timeout = min(next_compaction, next_retention) - loop.time()
            if timeout > 0 and not wanted.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(wanted.wait(), timeout)
            now = loop.time()
            if wanted.is_set() or now >= next_compaction:
                wanted.clear()
                await self._maintain(self.compact)
                next_compaction = loop.time() + self.settings.compact_interval_s
            if now >= next_retention:
                await self._maintain(self.apply_retention)
                next_retention = loop.time() + self.settings.retention_interval_s

    async def _maintain(self, job: Callable[[], Awaitable[object]]) -> None:
        """Run a compaction or retention pass; a database error is logged (once) and the pass
        is retried at its next turn (staged points stay where they are, nothing is lost)."""
        try:
            await job()
        except (sqlite3.Error, SinkError) as err:
            if not self._maintenance_failing:
                self._maintenance_failing = True
                logger.error("embedded store: maintenance failed (%s); will retry", err)
        else:
            if self._maintenance_failing:
                self._maintenance_failing = False
                logger.info("embedded store: maintenance works again")

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
            self._maintenance = None
            await db.close()
