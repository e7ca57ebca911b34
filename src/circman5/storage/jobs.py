"""A job queue in PostgreSQL: several workers share it, each job is done once, and the job of a
worker that died (even by ``kill -9``) is retried by the next.

A job is a row of ``jobs``: its ``kind`` (which handler runs it), a JSON ``payload``, and its
state ``queued`` -> ``running`` -> ``done`` / ``failed``. Workers claim the oldest claimable job
with ``SELECT ... FOR UPDATE SKIP LOCKED`` (workers never wait on each other's claims) and hold
it under a **lease**: ``lease_until`` is pushed forward by a heartbeat while the handler runs.
A job whose lease ran out (its worker was killed, hung or lost the network) is claimable again,
so another worker retries it; each claim counts an attempt, and a job that used up
``max_attempts`` is marked ``failed``. Completing checks that the worker still holds the job,
so a worker that lost its lease cannot overwrite the retry's result. Times are the database
server's (``now()``), so workers' clocks do not matter.

An idle worker does not poll blindly: it ``LISTEN``s on the ``circman5_jobs`` channel, and
:meth:`JobQueue.submit` notifies it in the submitting transaction (PostgreSQL delivers the
notification at commit), so a new job is taken at once; ``poll_s`` remains the pause between
looks for jobs whose lease ran out (nobody notifies those).

Handlers should be idempotent, or at least safe to repeat: a worker killed after computing but
before committing the result has its job run again (at-least-once execution; exactly one result
is recorded).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import psycopg

from circman5.errors import InvalidInputError, StorageError

from .migrations import Migration
from .postgres import PostgresDatabase

logger = logging.getLogger(__name__)

__all__ = ["JOB_CHANNEL", "JOB_MIGRATIONS", "Handler", "Job", "JobQueue", "JobWorker"]

#: The ``LISTEN``/``NOTIFY`` channel on which a submission wakes the idle workers.
JOB_CHANNEL = "circman5_jobs"

JOB_MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        1,
        "job queue (processing workers)",
        (
            """CREATE TABLE IF NOT EXISTS jobs (
                id BIGSERIAL PRIMARY KEY,
                kind TEXT NOT NULL,
                payload TEXT NOT NULL,
                status TEXT NOT NULL DEFAULT 'queued'
                    CHECK (status IN ('queued', 'running', 'done', 'failed')),
                attempts INTEGER NOT NULL DEFAULT 0,
                max_attempts INTEGER NOT NULL DEFAULT 3,
                worker TEXT,
                lease_until TIMESTAMPTZ,
                result TEXT,
                error TEXT,
                created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
                started_at TIMESTAMPTZ,
                finished_at TIMESTAMPTZ
            )""",
            "CREATE INDEX IF NOT EXISTS jobs_open ON jobs (id) "
            "WHERE status IN ('queued', 'running')",
        ),
    ),
)

_CLAIM = """
UPDATE jobs SET status = 'running', worker = %(worker)s, attempts = attempts + 1,
       lease_until = now() + make_interval(secs => %(lease)s), started_at = now(),
       error = NULL
WHERE id = (
    SELECT id FROM jobs
    WHERE (status = 'queued' OR (status = 'running' AND lease_until < now()))
      AND attempts < max_attempts
      AND (%(kinds)s::text[] IS NULL OR kind = ANY(%(kinds)s::text[]))
    ORDER BY id
    FOR UPDATE SKIP LOCKED
    LIMIT 1
)
RETURNING id, kind, payload, attempts
"""
# Jobs whose last allowed attempt's lease ran out: nobody may claim them again.
_GIVE_UP = """
UPDATE jobs SET status = 'failed', finished_at = now(),
       error = coalesce(error, 'the worker stopped answering (lease expired) on the last attempt')
WHERE status = 'running' AND lease_until < now() AND attempts >= max_attempts
"""


@dataclass(frozen=True)
class Job:
    """A job as stored."""

    id: int
    kind: str
    payload: dict[str, Any]
    status: str
    attempts: int
    worker: str | None
    result: Any
    error: str | None
    #: When it was queued and finished (ISO 8601, the database server's clock).
    created_at: str | None = None
    finished_at: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """The job as JSON-ready data (the API's answer)."""
        return {
            "id": self.id,
            "kind": self.kind,
            "payload": self.payload,
            "status": self.status,
            "attempts": self.attempts,
            "worker": self.worker,
            "result": self.result,
            "error": self.error,
            "created_at": self.created_at,
            "finished_at": self.finished_at,
        }


class JobQueue:
    """The ``jobs`` table of a :class:`~circman5.storage.postgres.PostgresDatabase` (migrated
    when the queue is created)."""

    def __init__(self, database: PostgresDatabase) -> None:
        self._db = database
        database.migrate("jobs", JOB_MIGRATIONS)

    def submit(self, kind: str, payload: Mapping[str, Any], max_attempts: int = 3) -> int:
        """Queue a job; its id."""
        if not kind:
            raise InvalidInputError("a job needs a kind")
        if max_attempts < 1:
            raise InvalidInputError(f"max_attempts must be >= 1, got {max_attempts}")
        with self._db.transaction() as conn:
            row = conn.execute(
                "INSERT INTO jobs (kind, payload, max_attempts) VALUES (%s, %s, %s) RETURNING id",
                (kind, json.dumps(dict(payload)), max_attempts),
            ).fetchone()
            conn.execute("SELECT pg_notify(%s, %s)", (JOB_CHANNEL, kind))  # sent at commit
        assert row is not None
        return int(row[0])

    @contextlib.contextmanager
    def listening(self) -> Iterator[Callable[[float], bool]]:
        """``LISTEN`` for submissions on a connection of the pool, held for the block; yields
        ``wait(timeout_s) -> bool``: True when a job was submitted (since the block began)."""
        try:
            with self._db.transaction_raw() as conn:
                conn.rollback()
                conn.autocommit = True
                conn.execute(f"LISTEN {JOB_CHANNEL}")
                try:
                    yield lambda timeout: _notified(conn, timeout)
                finally:
                    if not conn.closed:  # back to the pool as it came
                        conn.execute("UNLISTEN *")
                        conn.autocommit = False
        except psycopg.Error as err:
            raise StorageError(f"database {self._db.location}: listening for jobs: {err}") from err

    def claim(
        self, worker: str, lease_s: float, kinds: list[str] | None = None
    ) -> tuple[int, str, dict[str, Any], int] | None:
        """Take the oldest claimable job for ``lease_s`` seconds: (id, kind, payload,
        attempt), or None when there is none."""
        with self._db.transaction() as conn:
            conn.execute(_GIVE_UP)
            row = conn.execute(
                _CLAIM, {"worker": worker, "lease": float(lease_s), "kinds": kinds}
            ).fetchone()
        if row is None:
            return None
        return int(row[0]), str(row[1]), json.loads(row[2]), int(row[3])

    def heartbeat(self, job_id: int, worker: str, lease_s: float) -> bool:
        """Extend the lease; False when the worker no longer holds the job."""
        with self._db.transaction() as conn:
            cursor = conn.execute(
                "UPDATE jobs SET lease_until = now() + make_interval(secs => %s) "
                "WHERE id = %s AND worker = %s AND status = 'running'",
                (float(lease_s), job_id, worker),
            )
            return cursor.rowcount == 1

    def complete(self, job_id: int, worker: str, result: object) -> bool:
        """Record the result (as JSON; what JSON cannot hold as its ``str``); False (nothing
        written) when the worker lost the job."""
        with self._db.transaction() as conn:
            cursor = conn.execute(
                "UPDATE jobs SET status = 'done', result = %s, finished_at = now(), "
                "lease_until = NULL WHERE id = %s AND worker = %s AND status = 'running'",
                (json.dumps(result, default=str), job_id, worker),
            )
            return cursor.rowcount == 1

    def fail(self, job_id: int, worker: str, error: str) -> None:
        """The handler raised: retry later while attempts remain, else ``failed``."""
        with self._db.transaction() as conn:
            conn.execute(
                "UPDATE jobs SET status = CASE WHEN attempts >= max_attempts THEN 'failed' "
                "ELSE 'queued' END, error = %s, lease_until = NULL, "
                "finished_at = CASE WHEN attempts >= max_attempts THEN now() END "
                "WHERE id = %s AND worker = %s AND status = 'running'",
                (error[:10_000], job_id, worker),
            )

    def get(self, job_id: int) -> Job | None:
        with self._db.transaction() as conn:
            row = conn.execute(f"{_SELECT_JOB} WHERE id = %s", (job_id,)).fetchone()
        return None if row is None else _job_of(row)

    def recent(self, limit: int = 50, kind: str | None = None) -> list[Job]:
        """The newest ``limit`` jobs (of ``kind``, when given), newest first."""
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
            raise InvalidInputError(f"limit must be a positive int, got {limit!r}")
        with self._db.transaction() as conn:
            rows = conn.execute(
                f"{_SELECT_JOB} WHERE (%(kind)s::text IS NULL OR kind = %(kind)s) "
                "ORDER BY id DESC LIMIT %(limit)s",
                {"kind": kind, "limit": limit},
            ).fetchall()
        return [_job_of(row) for row in rows]


_SELECT_JOB = (
    "SELECT id, kind, payload, status, attempts, worker, result, error, created_at, "
    "finished_at FROM jobs"
)


def _job_of(row: Any) -> Job:
    return Job(
        id=int(row[0]),
        kind=row[1],
        payload=json.loads(row[2]),
        status=row[3],
        attempts=int(row[4]),
        worker=row[5],
        result=json.loads(row[6]) if row[6] is not None else None,
        error=row[7],
        created_at=row[8].isoformat() if row[8] is not None else None,
        finished_at=row[9].isoformat() if row[9] is not None else None,
    )


def _notified(conn: psycopg.Connection[Any], timeout: float) -> bool:
    return any(True for _ in conn.notifies(timeout=timeout, stop_after=1))


Handler = Callable[[dict[str, Any]], Any]


class JobWorker:
    """Takes jobs from a :class:`JobQueue` and runs them with ``handlers`` (kind -> function of
    the payload returning a JSON-able result), one at a time, keeping the lease alive from a
    heartbeat thread while a handler runs.

    ``worker_id`` defaults to ``host:pid``. ``lease_s``: how long a silent worker keeps its job
    (a killed worker's job is retried after at most this long). ``poll_s``: the pause when the
    queue is empty.
    """

    def __init__(
        self,
        queue: JobQueue,
        handlers: Mapping[str, Handler],
        *,
        worker_id: str | None = None,
        lease_s: float = 30.0,
        poll_s: float = 0.5,
    ) -> None:
        if lease_s <= 0 or poll_s <= 0:
            raise InvalidInputError("lease_s and poll_s must be > 0")
        self.queue = queue
        self.handlers = dict(handlers)
        self.worker_id = worker_id or f"{socket.gethostname()}:{os.getpid()}"
        self.lease_s = lease_s
        self.poll_s = poll_s
        #: Jobs completed / failed by this worker.
        self.completed = 0
        self.failed = 0
        #: Set while the worker waits with nothing to do.
        self.idle = threading.Event()

    def run_once(self) -> bool:
        """Claim and run one job; False when none was claimable."""
        claimed = self.queue.claim(self.worker_id, self.lease_s, sorted(self.handlers))
        if claimed is None:
            return False
        job_id, kind, payload, attempt = claimed
        logger.info("job %d (%s) attempt %d taken by %s", job_id, kind, attempt, self.worker_id)
        done = threading.Event()
        beat = threading.Thread(
            target=self._heartbeat, args=(job_id, done), name=f"job-{job_id}-heartbeat"
        )
        beat.start()
        try:
            result = self.handlers[kind](payload)
        except Exception as err:  # the handler's failure is the job's, not the worker's
            done.set()
            beat.join()
            logger.warning("job %d (%s) failed: %s", job_id, kind, err)
            self.queue.fail(job_id, self.worker_id, f"{type(err).__name__}: {err}")
            self.failed += 1
            return True
        done.set()
        beat.join()
        if self.queue.complete(job_id, self.worker_id, result):
            self.completed += 1
        else:
            logger.warning("job %d: lease lost before the result was recorded", job_id)
        return True

    def _heartbeat(self, job_id: int, done: threading.Event) -> None:
        while not done.wait(self.lease_s / 3):
            try:
                if not self.queue.heartbeat(job_id, self.worker_id, self.lease_s):
                    logger.warning("job %d: lease lost", job_id)
                    return
            except StorageError as err:
                logger.warning("job %d: heartbeat failed: %s", job_id, err)

    def run(self, stop: threading.Event) -> None:
        """Work until ``stop`` is set (the job in hand is finished first). Idle, it waits for
        a submission's notification, and looks again every ``poll_s`` for expired leases."""
        while not stop.is_set():
            try:
                with self.queue.listening() as wait:
                    while not stop.is_set():
                        if not self.run_once():
                            self._idle(wait, stop)
            except StorageError as err:
                logger.warning("job queue unavailable: %s", err)
                stop.wait(self.poll_s)

    def _idle(self, wait: Callable[[float], bool], stop: threading.Event) -> None:
        """Until a job is submitted, ``poll_s`` passes or ``stop`` is set."""
        deadline = time.monotonic() + self.poll_s
        self.idle.set()
        try:
            while not stop.is_set() and (left := deadline - time.monotonic()) > 0:
                if wait(min(left, 0.25)):  # short slices: a stop is seen within a quarter second
                    return
        finally:
            self.idle.clear()
