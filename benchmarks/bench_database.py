"""Event persistence into PostgreSQL against SQLite, in the same run.

Workload (both backends, through the documented ``EventPersistence``): ``N_EVENTS`` threshold
events saved from one publishing thread, with an acknowledgement every ``ACK_EVERY`` events
(``acknowledge_event`` writes what is queued and updates the row in one transaction: the
operator's click on a busy line), timed until ``flush()`` returns, i.e. every event is
committed. The writer thread groups what accumulates between acknowledgements into one
transaction per batch.

* PostgreSQL: a private cluster started here (Debian ``postgresql``, durable settings: fsync,
  full page writes and ``synchronous_commit`` on: each batch's commit waits for its WAL flush),
  reached over TCP on loopback through psycopg 3 and its pool; batches go in by binary COPY
  with retention in the same transaction (see :mod:`circman5.storage.postgres_events`).
  Target: >= 20,000 events/s on this 2-core machine.
* Baseline (same run): the same workload into the SQLite file (WAL, ``synchronous=NORMAL``),
  the standalone deployment.

Two figures: keeping every event (``max_events=None``), and with the default retention of
1,000 events (each batch also deletes the oldest). Best of ``REPEAT`` runs (the machine is
shared).

Job queue (:mod:`circman5.storage.jobs`): ``N_JOBS`` trivial jobs queued, then drained by 1 and
by 2 worker processes (``benchmarks/job_worker.py``, polling every 10 ms when idle): jobs/s from
the workers' start to the last result (the baseline of 2 workers is 1 worker, same run); and
the latency from submitting one job to its result with idle workers (median of
``N_LATENCY``). No targets: the issue asks for the figures.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.report import Row
from circman5.manufacturing.digital_twin.event_notification.event_persistence import (
    EventPersistence,
)
from circman5.manufacturing.digital_twin.event_notification.event_types import ThresholdEvent
from circman5.storage.jobs import JobQueue
from circman5.storage.postgres import PostgresDatabase
from simulators.external import PostgreSQL

REPEAT = 3
N_EVENTS = 50_000
ACK_EVERY = 1_000
TARGET_EVENTS = 20_000.0
N_JOBS = 2_000
N_LATENCY = 50
ROOT = Path(__file__).resolve().parents[1]


def _run(store: EventPersistence) -> float:
    events = [ThresholdEvent("production_line.temperature", 25.0, 25.5) for _ in range(N_EVENTS)]
    started = time.perf_counter()
    for index, event in enumerate(events, 1):
        store.save_event(event)
        acknowledged = index % ACK_EVERY != 0 or store.acknowledge_event(
            events[index - ACK_EVERY // 2].event_id
        )
        if not acknowledged:
            raise RuntimeError("an acknowledged event was not found")
    store.flush()
    elapsed = time.perf_counter() - started
    expected = N_EVENTS if store.max_events is None else store.max_events
    if store.count() != expected:
        raise RuntimeError(f"{store.count()} events stored, expected {expected}")
    return N_EVENTS / elapsed


def _sqlite_rate(directory: Path, run: int, max_events: int | None) -> float:
    store = EventPersistence(directory / f"events-{max_events}-{run}.db", max_events)
    try:
        return _run(store)
    finally:
        store.close()


def _postgres_rate(server: PostgreSQL, max_events: int | None) -> float:
    database = PostgresDatabase(server.create_database("bench"))
    store = EventPersistence(max_events=max_events, store=database.events)
    try:
        return _run(store)
    finally:
        store.close()
        database.close()


def _start_workers(dsn: str, count: int) -> list[subprocess.Popen[str]]:
    workers = []
    for index in range(count):
        process = subprocess.Popen(
            [sys.executable, "-m", "benchmarks.job_worker", dsn, f"w{index}"],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            text=True,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
        )
        workers.append(process)
    for process in workers:
        assert process.stdout is not None
        if process.stdout.readline().strip() != "ready":
            raise RuntimeError("a job worker did not start")
    return workers


def _stop_workers(workers: list[subprocess.Popen[str]]) -> None:
    for process in workers:
        process.terminate()
    for process in workers:
        process.wait(timeout=60)
        if process.stdout is not None:
            process.stdout.close()


def _open_jobs(database: PostgresDatabase) -> int:
    with database.transaction() as conn:
        row = conn.execute("SELECT count(*) FROM jobs WHERE status <> 'done'").fetchone()
    return int(row[0]) if row else 0


def _queue_figures(server: PostgreSQL, count: int) -> tuple[float, float]:
    """(jobs/s draining N_JOBS, median submit-to-result latency in ms) with ``count`` workers."""
    dsn = server.create_database("jobs")
    with PostgresDatabase(dsn) as database:
        queue = JobQueue(database)
        for n in range(N_JOBS):
            queue.submit("square", {"n": n})
        started = time.perf_counter()
        workers = _start_workers(dsn, count)
        try:
            while _open_jobs(database):
                time.sleep(0.005)
            rate = N_JOBS / (time.perf_counter() - started)
            latencies = []
            for n in range(N_LATENCY):
                submitted = time.perf_counter()
                job_id = queue.submit("square", {"n": n})
                while (job := queue.get(job_id)) is None or job.status != "done":
                    time.sleep(0.001)
                latencies.append((time.perf_counter() - submitted) * 1000)
        finally:
            _stop_workers(workers)
    return rate, statistics.median(latencies)


def main() -> list[Row]:
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="circman5-bench-db-") as tmp:
        server = PostgreSQL(Path(tmp) / "postgresql", durable=True).start()
        try:
            for max_events, label in ((None, "keeping every event"), (1000, "retention 1,000")):
                postgres = max(_postgres_rate(server, max_events) for _ in range(REPEAT))
                sqlite = max(_sqlite_rate(Path(tmp), run, max_events) for run in range(REPEAT))
                rows.append(
                    Row(
                        f"events into PostgreSQL, ack every {ACK_EVERY:,} ({label})",
                        postgres,
                        "events/s",
                        TARGET_EVENTS,
                        baseline=sqlite,
                        baseline_label="SQLite file, same workload",
                    )
                )
            one_rate, one_latency = _queue_figures(server, 1)
            two_rate, two_latency = _queue_figures(server, 2)
            rows += [
                Row(f"job queue: {N_JOBS:,} jobs drained, 1 worker", one_rate, "jobs/s", None),
                Row(
                    f"job queue: {N_JOBS:,} jobs drained, 2 workers",
                    two_rate,
                    "jobs/s",
                    None,
                    baseline=one_rate,
                    baseline_label="1 worker",
                ),
                Row("job queue: submit to result, 1 idle worker", one_latency, "ms", None, False),
                Row(
                    "job queue: submit to result, 2 idle workers",
                    two_latency,
                    "ms",
                    None,
                    False,
                    baseline=one_latency,
                    baseline_label="1 worker",
                ),
            ]
        finally:
            server.remove()
    return rows
