"""What only the PostgreSQL backend has to take care of, checked with psql (not our driver)."""

from __future__ import annotations

import os
import signal
from pathlib import Path

from circman5.manufacturing.digital_twin.event_notification.event_types import Event
from simulators.external import PostgreSQL
from tests.fixtures.databases import TwinBackend


def _database(backend: TwinBackend) -> str:
    assert backend.dsn is not None
    return backend.dsn.rsplit("/", 1)[1]


def test_events_are_rows_another_client_reads(postgresql_server: PostgreSQL) -> None:
    backend = TwinBackend(
        "postgresql", postgresql_server.workdir, postgresql_server.create_database()
    )
    try:
        store = backend.events(max_events=None)
        events = [Event(message=f"m{i}", source="plc") for i in range(250)]
        for event in events:
            store.save_event(event)
        assert store.acknowledge_event(events[10].event_id)
        store.flush()
        name = _database(backend)
        assert postgresql_server.psql("SELECT count(*) FROM events", name) == "250"
        assert (
            postgresql_server.psql(
                f"SELECT acknowledged FROM events WHERE event_id = '{events[10].event_id}'", name
            )
            == "t"
        )
        newest = postgresql_server.psql("SELECT message FROM events ORDER BY id DESC LIMIT 1", name)
        assert newest == "m249"
    finally:
        backend.close()


def test_nul_characters_do_not_lose_the_batch(postgresql_server: PostgreSQL) -> None:
    backend = TwinBackend(
        "postgresql", postgresql_server.workdir, postgresql_server.create_database()
    )
    try:
        store = backend.events()
        store.save_event(Event(message="before"))
        store.save_event(Event(message="nul\x00here", source="s\x00", details={"k": "v\x00"}))
        store.save_event(Event(message="after"))
        stored = store.get_events()
        assert [e.message for e in stored] == ["after", "nul\ufffdhere", "before"]
        assert stored[1].details == {"k": "v\x00"}  # JSON text keeps it escaped
        assert store.dropped == 0
    finally:
        backend.close()


def test_an_id_twice_in_one_batch_keeps_the_last(postgresql_server: PostgreSQL) -> None:
    backend = TwinBackend(
        "postgresql", postgresql_server.workdir, postgresql_server.create_database()
    )
    try:
        store = backend.events()
        event = Event(message="first")
        with store._db_lock:  # one batch
            store.save_event(event)
            store.save_event(Event(message="other"))
            event.message = "second"
            store.save_event(event)
        assert [e.message for e in store.get_events()] == ["second", "other"]
        assert store.count() == 2
    finally:
        backend.close()


def test_retention_holds_on_every_insert_path(postgresql_server: PostgreSQL) -> None:
    """COPY, the upsert (an id stored before) and the careful path (NUL, an id twice in the
    batch) each delete the oldest beyond ``max_events`` in their transaction."""
    backend = TwinBackend(
        "postgresql", postgresql_server.workdir, postgresql_server.create_database()
    )
    try:
        store = backend.events(max_events=4)
        kept = Event(message="kept")
        with store._db_lock:  # COPY
            for i in range(6):
                store.save_event(Event(message=f"copy {i}"))
            store.save_event(kept)
        store.flush()
        assert [e.message for e in store.get_events()] == ["kept", "copy 5", "copy 4", "copy 3"]
        with store._db_lock:  # an id stored before: the upsert
            store.save_event(Event(message="new 0"))
            kept.message = "kept again"
            store.save_event(kept)
        assert [e.message for e in store.get_events()] == [
            "kept again",
            "new 0",
            "copy 5",
            "copy 4",
        ]
        twice = Event(message="twice 1")
        with store._db_lock:  # NUL and an id twice: the careful path
            store.save_event(twice)
            store.save_event(Event(message="nul\x00"))
            twice.message = "twice 2"
            store.save_event(twice)
        assert [e.message for e in store.get_events()] == [
            "twice 2",
            "nul\ufffd",
            "kept again",
            "new 0",
        ]
        assert store.count() == 4
        assert store.dropped == 0
    finally:
        backend.close()


def _crash(server: PostgreSQL) -> None:
    """SIGKILL the postmaster and every backend (its process group), as a power cut would
    stop them: nothing is written after, shared memory is gone; then start it again."""
    assert server.process is not None
    os.killpg(server.process.pid, signal.SIGKILL)
    server.process.wait()
    server.process = None
    server.start()


def test_committed_event_batches_survive_a_crash_of_postgresql(tmp_path: Path) -> None:
    """``flush()`` returned: the events are in the WAL PostgreSQL wrote, not in its buffers
    (``synchronous_commit`` stays on for event batches), so crash recovery finds every one."""
    server = PostgreSQL(tmp_path / "crash").start()
    try:
        backend = TwinBackend("postgresql", tmp_path, server.create_database())
        try:
            store = backend.events(max_events=None)
            events = [Event(message=f"m{i}") for i in range(2_000)]
            for event in events:
                store.save_event(event)
            assert store.acknowledge_event(events[-1].event_id)
            store.flush()
            _crash(server)
            name = _database(backend)
            assert server.psql("SELECT count(*) FROM events", name) == "2000"
            assert server.psql("SELECT count(*) FROM events WHERE acknowledged", name) == "1"
        finally:
            backend.close()
    finally:
        server.remove()


def test_retention_over_many_batches_and_a_late_row_below_the_cutoff(
    postgresql_server: PostgreSQL,
) -> None:
    """Retention deletes between its last cutoff and the new one; a row committed late below
    that cutoff (another writer's) goes at the next full sweep (every 100th retention)."""
    backend = TwinBackend(
        "postgresql", postgresql_server.workdir, postgresql_server.create_database()
    )
    try:
        store = backend.events(max_events=3)
        for i in range(60):
            store.save_event(Event(message=f"{i}"))
            store.flush()
        name = _database(backend)
        postgresql_server.psql(  # as if committed late by another writer, with an old id
            "INSERT INTO events (id, event_id, timestamp, ts_epoch, category, severity, source,"
            " message, details) VALUES (1, 'late', '2026-01-01T00:00:00', 0, 'system', 'info',"
            " 'other', 'late', '{}')",
            name,
        )
        for i in range(60, 150):
            store.save_event(Event(message=f"{i}"))
            store.flush()
        assert [e.message for e in store.get_events()] == ["149", "148", "147"]
        assert postgresql_server.psql("SELECT count(*) FROM events", name) == "3"
    finally:
        backend.close()
