"""Store-and-forward in front of a remote sink: nothing accepted is lost to an outage or a crash.

A batch handed to :meth:`Outbox.put` is written to a SQLite database (WAL) under the data
directory before ``put`` returns, and leaves that database only after the sink reported that the
server accepted it. A server that is absent (connection refused) is probed every
0.5-1 x ``probe_interval_s``, so delivery resumes within seconds of its return; one that is
overloaded (429/503/5xx, timeouts) gets capped exponential backoff with jitter, and its
``Retry-After`` is honoured. Delivery survives restarts and ``kill -9``: the next run delivers
what the last one accepted.

* **Group commit.** Batches accepted while a commit is running are written together in the next
  transaction, on a worker thread; accepting is a deque append. With ``mergeable=True`` (line
  protocol) small batches are merged into rows of up to ``batch_max_points``.
* **Delivery.** The oldest rows are sent in one ``sink.write`` (up to ``batch_max_points`` /
  ``batch_max_bytes``), then deleted. With ``mergeable=True``, while the server takes data, a
  request that would be short of ``batch_max_points`` waits up to ``linger_s`` for more first
  (not while someone waits in :meth:`drain`): a heavy stream goes out in few, full requests.
  At-least-once: a crash between acceptance and delete sends the batch again (InfluxDB
  overwrites identical points; MQTT consumers see a duplicate).
* **Quarantine.** A batch the server rejects for good (``SinkRejected``: 4xx other than 429) is
  moved to the ``quarantine`` table and reported as an error event; merged requests are retried
  one stored batch at a time first, so only the offending batch is quarantined. Rejections with a
  status in ``hold_statuses`` (401, 403, 404, 407: credentials or a missing bucket) are about the
  configuration, not the batch: batches are held and retried like an outage.
* **Overflow.** When ``max_points``, ``max_bytes`` or ``max_batches`` is exceeded, the oldest
  stored batches are dropped, counted in ``dropped_*`` and reported once per overflow episode
  (``outbox_overflow`` when dropping starts; ``outbox_overflow_ended`` with the episode's and the
  running totals once the outbox drained below ``overflow_low_water`` of its limits or nothing
  was dropped for ``overflow_quiet_s``); the newest data is kept. Batches in the request being
  sent are never dropped, so the outbox can exceed a limit by at most one request
  (``batch_max_points`` / ``batch_max_bytes``).

Why this module is long: accepting, committing, delivering, quarantine and overflow are one state
(the stored rows and their counters, guarded by one condition); the SQLite side (``_Store``) and
the delivery loop change together whenever a guarantee does.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import sqlite3
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from circman5.errors import SinkError, SinkRejected, SinkUnavailable
from circman5.paths import data_path
from circman5.reporting import ProblemReporter
from circman5.retry import ReconnectPolicy
from circman5.sinks._sqlite import GroupCommitService, SQLiteWorker
from circman5.sinks.base import Sink
from circman5.sinks.config import OutboxSettings

logger = logging.getLogger(__name__)

_NAME = re.compile(r"^[A-Za-z0-9_.\-]+$")
_META_ROWS = 4096  # most rows looked at to build one delivery
_LOG_LEVELS = {"info": logging.INFO, "warning": logging.WARNING, "error": logging.ERROR}


@dataclass(frozen=True, slots=True)
class OutboxMetrics:
    """A snapshot of one outbox's figures (counters since this process started).

    A *batch* is one stored row: merged line-protocol batches count once.
    """

    name: str
    depth_batches: int
    depth_points: int
    depth_bytes: int
    oldest_age_s: float | None
    accepted_batches: int
    accepted_points: int
    delivered_batches: int
    delivered_points: int
    retried: int
    quarantined_batches: int
    quarantined_points: int
    quarantine_depth: int
    dropped_batches: int
    dropped_points: int
    last_write_latency_s: float | None
    sink_available: bool
    last_error: str | None
    #: Seconds the sink has been unavailable (None while it is available).
    outage_s: float | None = None
    #: An overflow episode is under way: data is being dropped.
    dropping: bool = False
    #: What the current overflow episode dropped so far (0 outside an episode).
    episode_dropped_batches: int = 0
    episode_dropped_points: int = 0


@dataclass(frozen=True, slots=True)
class QuarantinedBatch:
    """A batch the server refused for good, kept for inspection or :meth:`Outbox.requeue`."""

    id: int
    created: float
    quarantined: float
    points: int
    status: int | None
    error: str
    payload: bytes


_SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
    id INTEGER PRIMARY KEY,
    created REAL NOT NULL,
    points INTEGER NOT NULL,
    size INTEGER NOT NULL,
    payload BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS quarantine (
    id INTEGER PRIMARY KEY,
    created REAL NOT NULL,
    quarantined REAL NOT NULL,
    points INTEGER NOT NULL,
    size INTEGER NOT NULL,
    status INTEGER,
    error TEXT NOT NULL,
    payload BLOB NOT NULL
);
"""


@dataclass(frozen=True, slots=True)
class _Row:
    id: int
    points: int
    size: int
    payload: bytes


class _Store:
    """The outbox tables and their running totals. Every method runs on the worker thread."""

    def __init__(self, conn: sqlite3.Connection, settings: OutboxSettings) -> None:
        self.settings = settings
        self.inflight_last = 0  # rows up to this id are being sent: never dropped
        conn.executescript(_SCHEMA)
        self.recount(conn)

    def recount(self, conn: sqlite3.Connection) -> None:
        batches, points, size = conn.execute(
            "SELECT count(*), coalesce(sum(points), 0), coalesce(sum(size), 0) FROM outbox"
        ).fetchone()
        self.batches: int = batches
        self.points: int = points
        self.bytes: int = size
        self.quarantine_depth: int = conn.execute("SELECT count(*) FROM quarantine").fetchone()[0]
        self.oldest: float | None = None
        self._refresh_oldest(conn)

    def _refresh_oldest(self, conn: sqlite3.Connection) -> None:
        row = conn.execute("SELECT created FROM outbox ORDER BY id LIMIT 1").fetchone()
        self.oldest = None if row is None else float(row[0])

    def over(self) -> bool:
        s = self.settings
        return (
            self.points > s.max_points or self.bytes > s.max_bytes or self.batches > s.max_batches
        )

    def below_low_water(self) -> bool:
        """Below ``overflow_low_water`` of every limit: an overflow episode may end."""
        s = self.settings
        f = s.overflow_low_water
        return (
            self.points <= s.max_points * f
            and self.bytes <= s.max_bytes * f
            and self.batches <= s.max_batches * f
        )

    def insert(self, conn: sqlite3.Connection, rows: list[tuple[bytes, int]]) -> tuple[int, int]:
        """Store rows in one transaction; drop the oldest on overflow. Returns dropped counts."""
        now = time.time()
        conn.execute("BEGIN IMMEDIATE")
        try:
            conn.executemany(
                "INSERT INTO outbox (created, points, size, payload) VALUES (?, ?, ?, ?)",
                [(now, points, len(payload), payload) for payload, points in rows],
            )
            self.batches += len(rows)
            self.points += sum(points for _, points in rows)
            self.bytes += sum(len(payload) for payload, _ in rows)
            dropped = self._drop_oldest(conn) if self.over() else (0, 0)
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        if self.oldest is None or dropped[0]:
            self._refresh_oldest(conn)
        return dropped

    def _drop_oldest(self, conn: sqlite3.Connection) -> tuple[int, int]:
        newest = conn.execute("SELECT max(id) FROM outbox").fetchone()[0]
        batches = points = size = 0
        last = 0
        cursor = conn.execute(
            "SELECT id, points, size FROM outbox WHERE id > ? AND id < ? ORDER BY id",
            (self.inflight_last, newest),
        )
        for row_id, row_points, row_size in cursor:
            last = row_id
            batches += 1
            points += row_points
            size += row_size
            self.batches -= 1
            self.points -= row_points
            self.bytes -= row_size
            if not self.over():
                break
        cursor.close()
        if batches:
            conn.execute("DELETE FROM outbox WHERE id > ? AND id <= ?", (self.inflight_last, last))
        return batches, points

    def read(
        self, conn: sqlite3.Connection, max_points: int, max_bytes: int, single_through: int
    ) -> list[_Row]:
        """The oldest rows that fit in one delivery (always at least one row; only one while
        the oldest id is at most ``single_through``)."""
        meta = conn.execute(
            "SELECT id, points, size FROM outbox ORDER BY id LIMIT ?", (_META_ROWS,)
        ).fetchall()
        if not meta:
            return []
        only_one = meta[0][0] <= single_through
        take, points, size = 0, 0, 0
        for _, row_points, row_size in meta:
            if take and (
                only_one or points + row_points > max_points or size + row_size > max_bytes
            ):
                break
            take += 1
            points += row_points
            size += row_size
        first, last = meta[0][0], meta[take - 1][0]
        payloads = conn.execute(
            "SELECT payload FROM outbox WHERE id BETWEEN ? AND ? ORDER BY id", (first, last)
        ).fetchall()
        self.inflight_last = last
        return [
            _Row(row_id, row_points, row_size, payload[0])
            for (row_id, row_points, row_size), payload in zip(meta[:take], payloads, strict=True)
        ]

    def delete(self, conn: sqlite3.Connection, rows: Sequence[_Row]) -> None:
        """Remove delivered rows."""
        conn.execute("DELETE FROM outbox WHERE id BETWEEN ? AND ?", (rows[0].id, rows[-1].id))
        self.batches -= len(rows)
        self.points -= sum(r.points for r in rows)
        self.bytes -= sum(r.size for r in rows)
        self.inflight_last = 0
        self._refresh_oldest(conn)
        if self.batches == 0:
            conn.execute("PRAGMA incremental_vacuum")

    def release(self, conn: sqlite3.Connection) -> None:
        """The rows being sent were not delivered; they may be dropped again."""
        self.inflight_last = 0

    def quarantine(
        self, conn: sqlite3.Connection, row: _Row, status: int | None, error: str
    ) -> None:
        conn.execute("BEGIN IMMEDIATE")
        try:
            conn.execute(
                "INSERT INTO quarantine"
                " (created, quarantined, points, size, status, error, payload)"
                " SELECT created, ?, points, size, ?, ?, payload FROM outbox WHERE id = ?",
                (time.time(), status, error, row.id),
            )
            conn.execute("DELETE FROM outbox WHERE id = ?", (row.id,))
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        self.batches -= 1
        self.points -= row.points
        self.bytes -= row.size
        self.quarantine_depth += 1
        self.inflight_last = 0
        self._refresh_oldest(conn)

    def quarantined(self, conn: sqlite3.Connection, limit: int) -> list[QuarantinedBatch]:
        rows = conn.execute(
            "SELECT id, created, quarantined, points, status, error, payload FROM quarantine"
            " ORDER BY id LIMIT ?",
            (limit,),
        ).fetchall()
        return [QuarantinedBatch(*row) for row in rows]

    def requeue(self, conn: sqlite3.Connection, ids: Sequence[int] | None) -> int:
        """Move quarantined batches back to the end of the outbox."""
        where, args = "", tuple[int, ...]()
        if ids is not None:
            where = f" WHERE id IN ({','.join('?' * len(ids))})"
            args = tuple(ids)
        conn.execute("BEGIN IMMEDIATE")
        try:
            moved = conn.execute(
                "INSERT INTO outbox (created, points, size, payload)"
                f" SELECT created, points, size, payload FROM quarantine{where} ORDER BY id",
                args,
            ).rowcount
            conn.execute(f"DELETE FROM quarantine{where}", args)
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        self.recount(conn)
        return int(moved)


_Item = tuple[bytes, int, "asyncio.Future[None] | None", "Callable[[], None] | None"]


class Outbox(GroupCommitService[_Item]):
    """A disk-backed, bounded store-and-forward queue in front of one :class:`Sink`.

    Use it as an async context manager (``async with Outbox(sink, name="influxdb") as outbox``),
    or run :meth:`run` as a task of the service's TaskGroup. ``name`` names the database file
    (``<data dir>/outbox/<name>.sqlite3`` unless ``path`` is given), the logs and the metrics.
    ``mergeable`` says that records may be concatenated (true for line protocol).
    """

    def __init__(
        self,
        sink: Sink,
        *,
        name: str,
        settings: OutboxSettings | None = None,
        reporter: ProblemReporter | None = None,
        path: Path | None = None,
        mergeable: bool = False,
    ) -> None:
        if not _NAME.match(name):
            raise ValueError(f"outbox name {name!r}: use letters, digits, '_', '.', '-'")
        super().__init__()
        self.name = name
        self.sink = sink
        self.settings = settings or OutboxSettings()
        self.reporter = reporter
        self.mergeable = mergeable
        self._path = path
        self._db: SQLiteWorker | None = None
        self._store: _Store | None = None
        self._changed: asyncio.Condition | None = None
        self._nudge: asyncio.Event | None = None
        self._ready = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        # an absent sink is probed every 0.5-1 x probe_interval_s; an overloaded one backs off
        self._retry = ReconnectPolicy(
            self.settings.backoff_initial_s,
            self.settings.backoff_max_s,
            absent_interval_s=0.75 * self.settings.probe_interval_s,
            jitter=1 / 3,
        )
        self._isolate_through = 0
        self._drainers = 0  # callers waiting in drain(): deliver at once, no linger
        # metrics
        self._accepted_batches = 0
        self._accepted_points = 0
        self._delivered_batches = 0
        self._delivered_points = 0
        self._retried = 0
        self._quarantined_batches = 0
        self._quarantined_points = 0
        self._dropped_batches = 0
        self._dropped_points = 0
        self._last_latency: float | None = None
        self._available = True
        self._outage_since = 0.0
        self._last_error: str | None = None
        self._overflowing = False
        self._overflow_dropped = (0, 0)
        self._overflow_since = 0.0
        self._last_drop = 0.0
        self._store_failing = False

    # -- accepting -----------------------------------------------------------------------------

    async def put(self, payload: bytes, points: int = 1) -> None:
        """Accept a batch; returns once it is on disk (safe from a crash from then on).

        Before the outbox started, waits for it; once it is stopping, raises ``RuntimeError``.
        """
        if not self._ready.is_set() and not self._stopping:
            await self._ready.wait()
        if self._stopping:
            raise RuntimeError(f"outbox {self.name} is stopped")
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._intake.push((payload, points, future, None))
        await future

    def submit(
        self, payload: bytes, points: int = 1, on_commit: Callable[[], None] | None = None
    ) -> None:
        """Accept a batch from any thread without waiting; it is on disk after the next group
        commit (milliseconds). Batches submitted before the outbox starts are kept in memory
        until it does.

        ``on_commit()`` runs on the event loop once the batch is on disk (in submission order);
        never if storing it failed (the batch is then counted as dropped).
        """
        self._intake.push((payload, points, None, on_commit))

    def nudge(self) -> None:
        """Retry now instead of waiting out the backoff (e.g. the broker is back). Thread-safe."""
        nudge = self._nudge
        if nudge is None:
            return
        loop = self._loop
        if loop is not None:
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(nudge.set)

    # -- lifecycle (``async with``, ``run`` and ``stop`` come from BackgroundService) -------------

    async def _open(self) -> None:
        if self._db is not None:
            raise RuntimeError(f"outbox {self.name} is already open")
        path = self._path or data_path("outbox", f"{self.name}.sqlite3")
        db = SQLiteWorker(path, f"outbox-{self.name}", self.settings.synchronous)
        await db.open(page_size=16384)
        try:
            self._store = await db.call(_Store, self.settings)
        except BaseException:
            await db.close()
            raise
        self._db = db
        self._loop = asyncio.get_running_loop()
        self._changed = asyncio.Condition()
        self._nudge = asyncio.Event()
        self._intake.bind(self._loop)
        self._ready.set()
        store = self._store
        if store.batches:
            logger.info(
                "outbox %s: %d batches (%d points) waiting from an earlier run",
                self.name,
                store.batches,
                store.points,
            )

    async def _close(self) -> None:
        db = self._db
        if db is None:
            return
        try:
            await self._commit_pending()  # whatever the cancelled loop did not commit
        finally:
            self._intake.unbind()
            self._ready.clear()
            self._db = None
            self._changed = None
            self._nudge = None
            await db.close()

    # -- committing ----------------------------------------------------------------------------

    def _rows(self, items: list[_Item]) -> list[tuple[bytes, int]]:
        if not self.mergeable:
            return [(payload, points) for payload, points, _, _ in items]
        rows: list[tuple[bytes, int]] = []
        parts: list[bytes] = []
        points_acc = size_acc = 0
        max_points, max_bytes = self.settings.batch_max_points, self.settings.batch_max_bytes
        for payload, points, _, _ in items:
            if parts and (points_acc + points > max_points or size_acc + len(payload) > max_bytes):
                rows.append((b"".join(parts), points_acc))
                parts, points_acc, size_acc = [], 0, 0
            parts.append(payload)
            points_acc += points
            size_acc += len(payload)
        if parts:
            rows.append((b"".join(parts), points_acc))
        return rows

    async def _commit_pending(self) -> None:
        db, store, changed = self._db, self._store, self._changed
        if db is None or store is None or changed is None:
            return
        while len(self._intake):
            items = self._intake.take()
            rows = self._rows(items)
            self._committing = True
            job = db.submit(store.insert, rows)
            try:
                await asyncio.shield(job)
            except asyncio.CancelledError:
                # the transaction is under way on the worker thread: see it through so that
                # no caller of put() waits forever, then stop
                await asyncio.wait([job])
                self._settle(items, rows, job)
                raise
            except sqlite3.Error:
                pass  # settled below
            self._settle(items, rows, job)
            async with changed:
                changed.notify_all()

    def _settle(
        self,
        items: list[_Item],
        rows: list[tuple[bytes, int]],
        job: asyncio.Future[tuple[int, int]],
    ) -> None:
        """Resolve the callers of a finished commit and count it."""
        self._committing = False
        err = job.exception()
        if err is not None:
            failure = SinkError(f"outbox {self.name}: cannot store batches: {err}")
            lost = [(payload, points) for payload, points, fut, _ in items if fut is None]
            self._dropped_batches += len(lost)  # submitted without a caller to tell
            self._dropped_points += sum(points for _, points in lost)
            if not self._store_failing:
                self._store_failing = True
                self._report(
                    "error",
                    "outbox_store_failed",
                    f"{failure}; batches are refused until it works again",
                    {"outbox": self.name, "error": str(err)},
                )
            for _, _, fut, _ in items:
                if fut is not None and not fut.done():
                    fut.set_exception(failure)
            return
        if self._store_failing:
            self._store_failing = False
            self._report(
                "info",
                "outbox_store_recovered",
                f"outbox {self.name}: storing batches again",
                {"outbox": self.name},
            )
        self._accepted_batches += len(rows)
        self._accepted_points += sum(points for _, points in rows)
        for _, _, fut, on_commit in items:
            if fut is not None and not fut.done():
                fut.set_result(None)
            if on_commit is not None:
                try:
                    on_commit()
                except Exception:  # a caller's callback must not stop the outbox
                    logger.exception("outbox %s: commit callback failed", self.name)
        dropped = job.result()
        if dropped[0]:
            self._on_dropped(*dropped)
        else:
            self._check_overflow_end()

    def _report(
        self, severity: str, error_type: str, message: str, details: dict[str, object]
    ) -> None:
        """Log a state change once, and hand it to the injected reporter, if any."""
        logger.log(_LOG_LEVELS.get(severity, logging.WARNING), "%s", message)
        if self.reporter is not None:
            self.reporter.report(severity, error_type, message, details)

    def _on_dropped(self, batches: int, points: int) -> None:
        """One overflow episode, one story: an event when dropping starts, one when it ends."""
        self._dropped_batches += batches
        self._dropped_points += points
        b, p = self._overflow_dropped
        self._overflow_dropped = (b + batches, p + points)
        self._last_drop = time.monotonic()
        if not self._overflowing:
            self._overflowing = True
            self._overflow_since = self._last_drop
            s = self.settings
            message = (
                f"outbox {self.name} is full (limits: {s.max_points} points, {s.max_bytes} bytes,"
                f" {s.max_batches} batches): dropping the oldest batches"
            )
            self._report(
                "warning",
                "outbox_overflow",
                message,
                {
                    "outbox": self.name,
                    "dropped_batches": batches,
                    "dropped_points": points,
                    "total_dropped_batches": self._dropped_batches,
                    "total_dropped_points": self._dropped_points,
                },
            )

    def _check_overflow_end(self) -> None:
        """End the episode once the outbox drained below its low-water mark, or nothing was
        dropped for ``overflow_quiet_s`` (hysteresis: not after every commit that fits)."""
        store = self._store
        if not self._overflowing or store is None:
            return
        quiet = time.monotonic() - self._last_drop >= self.settings.overflow_quiet_s
        if quiet or store.below_low_water():
            self._on_overflow_end(store.points)

    def _on_overflow_end(self, waiting_points: int) -> None:
        self._overflowing = False
        batches, points = self._overflow_dropped
        self._overflow_dropped = (0, 0)
        lasted = time.monotonic() - self._overflow_since
        message = (
            f"outbox {self.name} stopped dropping after {lasted:.1f} s: {batches} batches"
            f" ({points} points) dropped in this episode, {self._dropped_points} points in total"
            f" since the start; {waiting_points} points waiting"
        )
        self._report(
            "warning",
            "outbox_overflow_ended",
            message,
            {
                "outbox": self.name,
                "dropped_batches": batches,
                "dropped_points": points,
                "episode_s": round(lasted, 3),
                "total_dropped_batches": self._dropped_batches,
                "total_dropped_points": self._dropped_points,
                "waiting_points": waiting_points,
            },
        )

    # -- delivering ----------------------------------------------------------------------------

    async def _companion(self) -> None:
        """The delivery loop."""
        db, store, changed, nudge = self._db, self._store, self._changed, self._nudge
        assert db is not None and store is not None and changed is not None and nudge is not None
        s = self.settings
        while True:
            if store.batches == 0:
                async with changed:
                    await changed.wait_for(lambda: store.batches > 0)
            await self._linger(changed, store)
            rows = await db.call(
                store.read, s.batch_max_points, s.batch_max_bytes, self._isolate_through
            )
            if not rows:  # the totals disagree with the table: trust the table
                await db.call(store.recount)
                continue
            nudge.clear()  # a nudge from now on cuts the wait after a failure
            started = time.monotonic()
            try:
                await self.sink.write([row.payload for row in rows])
            except SinkRejected as err:
                if err.status not in s.hold_statuses and len(rows) == 1:
                    await self._quarantine(rows[0], err)
                else:
                    await db.call(store.release)
                    if err.status in s.hold_statuses:
                        await self._on_unavailable(err, None, severity="error")
                    else:
                        self._isolate_through = rows[-1].id  # find the offending stored batch
            except SinkUnavailable as err:
                await db.call(store.release)
                await self._on_unavailable(err, err.retry_after)
            else:
                self._last_latency = time.monotonic() - started
                await db.call(store.delete, rows)
                self._delivered_batches += len(rows)
                self._delivered_points += sum(row.points for row in rows)
                self._retry.reset()
                if not self._available:
                    self._on_recovered()
                self._check_overflow_end()
            async with changed:
                changed.notify_all()

    async def _linger(self, changed: asyncio.Condition, store: _Store) -> None:
        """Wait up to ``linger_s`` for a full request (see the module documentation)."""
        s = self.settings
        if not (self.mergeable and s.linger_s and self._available):
            return
        full = s.batch_max_points
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(s.linger_s), changed:
                await changed.wait_for(lambda: store.points >= full or self._drainers > 0)

    async def _on_unavailable(
        self, err: SinkError, retry_after: float | None, severity: str = "warning"
    ) -> None:
        self._retried += 1
        self._last_error = str(err)
        if self._available:
            self._available = False
            self._outage_since = time.monotonic()
            message = (
                f"outbox {self.name}: sink {self.sink.name} unavailable ({err});"
                " holding batches and retrying"
            )
            self._report(
                severity,
                "sink_unavailable",
                message,
                {"outbox": self.name, "sink": self.sink.name, "error": str(err)},
            )
        self._check_overflow_end()
        if retry_after is not None:
            await asyncio.sleep(min(retry_after, self.settings.max_retry_after_s))
            return
        absent = isinstance(err, SinkUnavailable) and not err.overloaded
        if absent:
            self._retry.reset()  # absent, not overloaded: probe it often, resume within seconds
        delay = self._retry.next_delay(absent)
        nudge = self._nudge
        assert nudge is not None
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(nudge.wait(), delay)

    def sink_down(self, reason: str) -> None:
        """The sink knows it is unreachable (e.g. the broker connection dropped): report the
        outage now, not only at the next delivery attempt. Loop thread; idempotent."""
        if not self._available:
            return
        self._available = False
        self._outage_since = time.monotonic()
        self._last_error = reason
        self._report(
            "warning",
            "sink_unavailable",
            f"outbox {self.name}: sink {self.sink.name} unavailable ({reason});"
            " holding batches and probing",
            {"outbox": self.name, "sink": self.sink.name, "error": reason},
        )

    def sink_up(self) -> None:
        """The sink is reachable again: report the outage's end and deliver now. Loop thread."""
        if self._nudge is not None:
            self._nudge.set()
        if not self._available:
            self._on_recovered()

    def _on_recovered(self) -> None:
        self._available = True
        down = time.monotonic() - self._outage_since
        store = self._store
        waiting = store.batches if store is not None else 0
        message = (
            f"outbox {self.name}: sink {self.sink.name} available again after {down:.1f} s;"
            f" {waiting} batches still to send"
        )
        self._report(
            "info",
            "sink_recovered",
            message,
            {"outbox": self.name, "sink": self.sink.name, "outage_s": round(down, 3)},
        )

    async def _quarantine(self, row: _Row, err: SinkRejected) -> None:
        db, store = self._db, self._store
        assert db is not None and store is not None
        error = str(err)[:2000]
        await db.call(store.quarantine, row, err.status, error)
        self._quarantined_batches += 1
        self._quarantined_points += row.points
        message = (
            f"outbox {self.name}: sink {self.sink.name} rejected a batch of {row.points} points"
            f" (status {err.status}); moved to quarantine"
        )
        self._report(
            "error",
            "batch_quarantined",
            f"{message}: {error}",
            {
                "outbox": self.name,
                "sink": self.sink.name,
                "batch_id": row.id,
                "points": row.points,
                "status": err.status,
                "error": error,
            },
        )

    # -- inspection ----------------------------------------------------------------------------

    async def flush(self) -> None:
        """Until every batch accepted so far is on disk."""
        changed = self._changed
        if changed is None:
            raise RuntimeError(f"outbox {self.name} is not running")
        async with changed:
            await changed.wait_for(lambda: not len(self._intake) and not self._committing)

    async def drain(self) -> None:
        """Until everything accepted so far was delivered (or quarantined/dropped)."""
        changed, store = self._changed, self._store
        if changed is None or store is None:
            raise RuntimeError(f"outbox {self.name} is not running")
        self._drainers += 1
        try:
            async with changed:
                changed.notify_all()  # a lingering delivery goes now
                await changed.wait_for(
                    lambda: not len(self._intake) and not self._committing and store.batches == 0
                )
        finally:
            self._drainers -= 1

    async def quarantined(self, limit: int = 1000) -> list[QuarantinedBatch]:
        """The quarantined batches, oldest first."""
        db, store = self._require_open()
        return await db.call(store.quarantined, limit)

    async def requeue(self, ids: Sequence[int] | None = None) -> int:
        """Send quarantined batches again (all, or those ``ids``), e.g. after a schema fix."""
        db, store = self._require_open()
        moved = await db.call(store.requeue, ids)
        if moved and self._changed is not None:
            async with self._changed:
                self._changed.notify_all()
        return moved

    def _require_open(self) -> tuple[SQLiteWorker, _Store]:
        if self._db is None or self._store is None:
            raise RuntimeError(f"outbox {self.name} is not running")
        return self._db, self._store

    @property
    def metrics(self) -> OutboxMetrics:
        store = self._store
        oldest = store.oldest if store is not None else None
        return OutboxMetrics(
            name=self.name,
            depth_batches=store.batches if store else 0,
            depth_points=store.points if store else 0,
            depth_bytes=store.bytes if store else 0,
            oldest_age_s=None if oldest is None else max(0.0, time.time() - oldest),
            accepted_batches=self._accepted_batches,
            accepted_points=self._accepted_points,
            delivered_batches=self._delivered_batches,
            delivered_points=self._delivered_points,
            retried=self._retried,
            quarantined_batches=self._quarantined_batches,
            quarantined_points=self._quarantined_points,
            quarantine_depth=store.quarantine_depth if store else 0,
            dropped_batches=self._dropped_batches,
            dropped_points=self._dropped_points,
            last_write_latency_s=self._last_latency,
            sink_available=self._available,
            last_error=self._last_error,
            outage_s=None if self._available else time.monotonic() - self._outage_since,
            dropping=self._overflowing,
            episode_dropped_batches=self._overflow_dropped[0],
            episode_dropped_points=self._overflow_dropped[1],
        )
