"""Saved twin states on both backends: the standalone export file, or the spec's ``states``
table in PostgreSQL (every save a row), behind the same ``save_state()`` / ``load_state()``."""

from __future__ import annotations

from pathlib import Path

from circman5.manufacturing.digital_twin.core.state_manager import StateManager
from circman5.manufacturing.digital_twin.core.twin_core import DigitalTwin
from simulators.external import PostgreSQL
from tests.fixtures.databases import TwinBackend


def _state(temperature: float, batch: str) -> dict[str, object]:
    return {
        "timestamp": "2026-12-06T10:00:00+00:00",
        "system_status": "running",
        "batch_id": batch,
        "production_line": {"status": "running", "temperature": temperature},
    }


def test_save_state_then_load_state_brings_it_back(
    twin_backend: TwinBackend, isolated_data_dir: Path
) -> None:
    StateManager().use_store(twin_backend.states())
    twin = DigitalTwin()
    twin.state_manager.set_state(_state(21.5, "B-1"))
    assert twin.save_state()
    twin.state_manager.set_state(_state(30.0, "B-2"))
    assert twin.get_current_state()["production_line"]["temperature"] == 30.0
    assert twin.load_state()
    state = twin.get_current_state()
    assert state["production_line"]["temperature"] == 21.5
    assert state["batch_id"] == "B-1"
    export_file = isolated_data_dir / "digital_twin" / "state.json"
    assert export_file.is_file() == (twin_backend.name == "sqlite")


def test_a_named_file_is_a_file_on_both_backends(twin_backend: TwinBackend, tmp_path: Path) -> None:
    StateManager().use_store(twin_backend.states())
    manager = StateManager()
    manager.set_state(_state(22.0, "B-3"))
    target = tmp_path / "exported.json"
    assert manager.export_state(target)
    manager.set_state(_state(25.0, "B-4"))
    assert manager.import_state(target)
    assert manager.get_current_state()["production_line"]["temperature"] == 22.0


def test_every_save_is_a_row_another_client_reads(postgresql_server: PostgreSQL) -> None:
    backend = TwinBackend(
        "postgresql", postgresql_server.workdir, postgresql_server.create_database()
    )
    try:
        store = backend.states()
        assert store is not None
        manager = StateManager()
        manager.use_store(store)
        assert not manager.import_state()  # nothing saved yet: the current state stays
        for temperature, batch in ((20.0, "B-10"), (20.5, "B-11")):
            manager.set_state(_state(temperature, batch))
            assert manager.export_state()
        name = backend.dsn.rsplit("/", 1)[1] if backend.dsn else ""
        rows = postgresql_server.psql(
            "SELECT batch_id, version, (state_data::jsonb #>> '{production_line,temperature}')"
            " FROM states ORDER BY id",
            name,
        )
        assert rows.splitlines() == ["B-10|1|20.0", "B-11|1|20.5"]
        assert store.count() == 2
        latest = store.latest()
        assert latest is not None and store.get(latest.id) == latest
    finally:
        backend.close()
