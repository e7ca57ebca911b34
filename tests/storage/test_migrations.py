"""Versioned schemas: applied at open on both backends, old SQLite files adopted, a newer
schema refused naming both versions, concurrent starts migrate once."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import pytest

from circman5.errors import SchemaVersionError, StorageError
from circman5.manufacturing.digital_twin.event_notification.event_persistence import (
    EventPersistence,
)
from circman5.manufacturing.digital_twin.event_notification.event_types import Event
from circman5.manufacturing.digital_twin.simulation.scenario_manager import ScenarioManager
from circman5.storage import postgres as pg_backend
from circman5.storage import sqlite as sqlite_backend
from circman5.storage.migrations import Migration, pending
from circman5.storage.postgres import PostgresDatabase
from simulators.external import PostgreSQL

# The events table exactly as releases before the storage package created it.
OLD_EVENTS_SCHEMA = """CREATE TABLE events (
    id INTEGER PRIMARY KEY, event_id TEXT NOT NULL, timestamp TEXT NOT NULL,
    ts_epoch REAL NOT NULL, category TEXT NOT NULL, severity TEXT NOT NULL, source TEXT NOT NULL,
    message TEXT NOT NULL, details TEXT NOT NULL, acknowledged INTEGER NOT NULL DEFAULT 0,
    event_type TEXT NOT NULL DEFAULT 'Event')"""


def test_pending_steps_and_a_newer_schema() -> None:
    steps = (Migration(1, "one", ("A",)), Migration(2, "two", ("B",)))
    assert [m.version for m in pending("db", "events", steps, 0)] == [1, 2]
    assert [m.version for m in pending("db", "events", steps, 1)] == [2]
    assert pending("db", "events", steps, 2) == []
    with pytest.raises(SchemaVersionError, match="version 3, newer than the version 2"):
        pending("db", "events", steps, 3)
    with pytest.raises(ValueError, match="numbered"):
        pending("db", "events", (Migration(2, "gap", ()),), 0)


def test_sqlite_files_record_their_schema_version(tmp_path: Path) -> None:
    events = EventPersistence(tmp_path / "events.db")
    events.save_event(Event(message="x"))
    events.close()
    ScenarioManager(db_path=tmp_path / "scenarios.db")
    assert sqlite_backend.schema_version(tmp_path / "events.db", "events") == 1
    assert sqlite_backend.schema_version(tmp_path / "scenarios.db", "scenarios") == 1


def test_an_existing_sqlite_file_is_adopted_with_its_events(tmp_path: Path) -> None:
    path = tmp_path / "events.db"
    with sqlite3.connect(path) as conn:
        conn.execute(OLD_EVENTS_SCHEMA)
        conn.execute(
            "INSERT INTO events (event_id, timestamp, ts_epoch, category, severity, source, "
            "message, details) VALUES ('old-1', '2026-01-01T00:00:00+00:00', 0, 'system', "
            "'info', 'plc', 'from an old release', '{}')"
        )
    conn.close()
    store = EventPersistence(path)
    try:
        assert [e.message for e in store.get_events()] == ["from an old release"]
        assert sqlite_backend.schema_version(path, "events") == 1
    finally:
        store.close()


def _bump_sqlite(path: Path, component: str) -> None:
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE schema_version SET version = 7 WHERE component = ?", (component,))
    conn.close()


def test_sqlite_refuses_a_newer_schema(tmp_path: Path) -> None:
    events_path, scenarios_path = tmp_path / "events.db", tmp_path / "scenarios.db"
    first = EventPersistence(events_path)
    first.save_event(Event())
    first.close()
    ScenarioManager(db_path=scenarios_path)
    _bump_sqlite(events_path, "events")
    _bump_sqlite(scenarios_path, "scenarios")

    store = EventPersistence(events_path)
    with pytest.raises(SchemaVersionError) as caught:
        store.count()
    assert (caught.value.found, caught.value.known) == (7, 1)
    assert str(events_path) in str(caught.value)
    store.close()
    with pytest.raises(SchemaVersionError, match="'scenarios' schema is at version 7"):
        ScenarioManager(db_path=scenarios_path)


def test_postgres_migrates_at_open_and_refuses_a_newer_schema(
    postgresql_server: PostgreSQL, postgres_dsn: str
) -> None:
    with PostgresDatabase(postgres_dsn) as database:
        assert database.schema_version("events") == len(pg_backend.EVENT_MIGRATIONS)
        assert database.schema_version("scenarios") == len(pg_backend.SCENARIO_MIGRATIONS)
    database_name = postgres_dsn.rsplit("/", 1)[1]
    # psql, not our driver, reads what the migration wrote
    tables = postgresql_server.psql(
        "SELECT string_agg(table_name, ',' ORDER BY table_name) FROM information_schema.tables "
        "WHERE table_schema = 'public'",
        database_name,
    )
    assert tables == (
        "calibration_active,calibrations,events,models,scenarios,schema_version,simulations,"
        "states,users"
    )
    components = postgresql_server.psql(
        "SELECT string_agg(component || '=' || version, ',' ORDER BY component) "
        "FROM schema_version",
        database_name,
    )
    assert components == "calibrations=1,events=1,models=1,scenarios=1,states=1,users=2"
    postgresql_server.psql(
        "UPDATE schema_version SET version = 9 WHERE component = 'scenarios'", database_name
    )
    with pytest.raises(SchemaVersionError) as caught:
        PostgresDatabase(postgres_dsn)
    assert (caught.value.component, caught.value.found, caught.value.known) == (
        "scenarios",
        9,
        1,
    )
    assert isinstance(caught.value, StorageError)


def test_postgres_processes_starting_together_migrate_once(postgres_dsn: str) -> None:
    barrier = threading.Barrier(4)
    opened: list[PostgresDatabase] = []
    errors: list[BaseException] = []

    def start() -> None:
        barrier.wait()
        try:
            opened.append(PostgresDatabase(postgres_dsn))
        except BaseException as err:  # reported below
            errors.append(err)

    threads = [threading.Thread(target=start) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    try:
        assert errors == []
        assert len(opened) == 4
        assert all(db.schema_version("events") == 1 for db in opened)
    finally:
        for database in opened:
            database.close()
