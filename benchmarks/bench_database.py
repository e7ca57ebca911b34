"""Event persistence into PostgreSQL against SQLite, in the same run.

Workload (both backends, through the documented ``EventPersistence``): ``N_EVENTS`` threshold
events saved from one publishing thread, with an acknowledgement every ``ACK_EVERY`` events
(``acknowledge_event`` writes what is queued, then updates the row: the operator's click on a
busy line), timed until ``flush()`` returns, i.e. every event is committed. The writer thread
groups what accumulates between acknowledgements into one transaction per batch.

* PostgreSQL: a private cluster started here (Debian ``postgresql``, durable settings: fsync
  and full page writes on), reached over TCP on loopback through psycopg 3 and its pool.
  Target: >= 20,000 events/s on this 2-core machine.
* Baseline (same run): the same workload into the SQLite file (WAL, ``synchronous=NORMAL``),
  the standalone deployment.

Two figures: keeping every event (``max_events=None``), and with the default retention of
1,000 events (each batch also deletes the oldest). Best of ``REPEAT`` runs (the machine is
shared).
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from benchmarks.report import Row
from circman5.manufacturing.digital_twin.event_notification.event_persistence import (
    EventPersistence,
)
from circman5.manufacturing.digital_twin.event_notification.event_types import ThresholdEvent
from circman5.storage.postgres import PostgresDatabase
from simulators.external import PostgreSQL

REPEAT = 3
N_EVENTS = 50_000
ACK_EVERY = 1_000
TARGET_EVENTS = 20_000.0


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
        finally:
            server.remove()
    return rows
