"""Backup and restore of the PostgreSQL deployment as docs/operations.md says: ``pg_dump
--format custom`` while the twin writes, ``pg_restore`` into a new database, and the twin
opened on the restored one finds its events, calibration and saved state."""

from __future__ import annotations

import subprocess
from pathlib import Path

from circman5.manufacturing.digital_twin.core.state_manager import StateManager
from circman5.manufacturing.digital_twin.event_notification.event_types import Event
from circman5.manufacturing.digital_twin.simulation.calibration import (
    Calibration,
    load_active_calibration,
    save_calibration,
)
from simulators.external import PostgreSQL, find_binary
from tests.fixtures.databases import TwinBackend


def _client(name: str, server: PostgreSQL, *args: str) -> None:
    command = [find_binary(name, "postgresql-client"), "--host", "127.0.0.1"]
    command += ["--port", str(server.port), "--username", "postgres", *args]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr


def test_pg_dump_then_pg_restore_into_a_new_database(
    postgresql_server: PostgreSQL, tmp_path: Path
) -> None:
    source = TwinBackend("postgresql", tmp_path, postgresql_server.create_database())
    events = source.events(max_events=None)
    saved = [Event(message=f"before backup {i}") for i in range(300)]
    for event in saved:
        events.save_event(event)
    assert events.acknowledge_event(saved[7].event_id)
    events.flush()
    calibration = save_calibration(
        Calibration(
            version=0,
            created_at="2026-12-06T10:00:00+00:00",
            source="test",
            start=None,
            end=None,
            step_s=1.0,
            min_r2=0.8,
            fits=(),
            parameters={"temperature_regulation": 0.05},
        ),
        store=source.calibrations(),
    )
    manager = StateManager()
    manager.use_store(source.states())
    manager.set_state({"timestamp": "2026-12-06T10:00:00+00:00", "system_status": "running"})
    assert manager.export_state()
    dump = tmp_path / "circman5.dump"
    assert source.dsn is not None
    _client(
        "pg_dump",
        postgresql_server,
        "--format",
        "custom",
        "--file",
        str(dump),
        source.dsn.rsplit("/", 1)[1],
    )
    events.save_event(Event(message="after backup"))  # not in the dump
    events.flush()
    source.close()

    target_dsn = postgresql_server.create_database("restored")
    _client("pg_restore", postgresql_server, "--dbname", target_dsn.rsplit("/", 1)[1], str(dump))
    restored = TwinBackend("postgresql", tmp_path, target_dsn)
    try:
        back = restored.events(max_events=None)
        messages = [e.message for e in back.get_events(limit=None)]
        assert messages == [f"before backup {i}" for i in reversed(range(300))]
        assert [e.acknowledged for e in back.get_events(limit=None)].count(True) == 1
        active = load_active_calibration(store=restored.calibrations())
        assert active is not None and active.version == calibration.version
        states = restored.states()
        assert states is not None and states.count() == 1
        new = Event(message="after restore")  # the restored sequences go on
        back.save_event(new)
        assert back.get_events(limit=1)[0].event_id == new.event_id
    finally:
        restored.close()
