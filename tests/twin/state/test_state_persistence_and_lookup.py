"""StateManager: export/import files, and the time lookup against a brute-force model."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from circman5.manufacturing.digital_twin.core.state_manager import StateManager

# -- export / import ---------------------------------------------------------------------------


def test_export_and_import_round_trip(
    manager: StateManager, sample_state: dict[str, Any], tmp_path: Path
) -> None:
    manager.set_state(sample_state)
    target = tmp_path / "out" / "state.json"
    assert manager.export_state(target) is True
    assert json.loads(target.read_text()) == sample_state
    assert [p.name for p in target.parent.iterdir()] == ["state.json"]  # no temp file left

    StateManager._reset_instance()
    fresh = StateManager(history_length=5, validation_level="standard")
    assert fresh.import_state(target) is True
    assert fresh.get_current_state() == sample_state


def test_export_replaces_an_existing_file(
    manager: StateManager, sample_state: dict[str, Any], tmp_path: Path
) -> None:
    target = tmp_path / "state.json"
    target.write_text("old content")
    manager.set_state(sample_state)
    assert manager.export_state(str(target))
    assert json.loads(target.read_text())["system_status"] == "running"


def test_export_default_path_is_in_the_data_dir(
    manager: StateManager, sample_state: dict[str, Any], isolated_data_dir: Path
) -> None:
    manager.set_state(sample_state)
    assert manager.export_state() is True
    path = isolated_data_dir / "digital_twin" / "state.json"
    assert StateManager.default_export_path() == path
    assert json.loads(path.read_text()) == sample_state


def test_export_without_a_state_fails(manager: StateManager, tmp_path: Path) -> None:
    assert manager.export_state(tmp_path / "state.json") is False
    assert not (tmp_path / "state.json").exists()


def test_export_to_an_unwritable_place_fails(
    manager: StateManager, sample_state: dict[str, Any], tmp_path: Path
) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    manager.set_state(sample_state)
    assert manager.export_state(blocker / "state.json") is False


def test_import_puts_the_previous_state_in_history(
    manager: StateManager, sample_state: dict[str, Any], tmp_path: Path
) -> None:
    path = tmp_path / "state.json"
    path.write_text(json.dumps({**sample_state, "system_status": "idle"}))
    manager.set_state(sample_state)
    assert manager.import_state(path)
    assert manager.get_current_state()["system_status"] == "idle"
    assert manager.get_history() == [sample_state]


def _bad_files(tmp_path: Path) -> dict[str, Path]:
    files = {
        "corrupt": "{ not json",
        "truncated": '{"timestamp": "2025-02-24T14:30:22", "production_line": {',
        "list": "[1, 2, 3]",
        "nan": '{"production_line": {"temperature": NaN}}',
        "bad_timestamp": '{"timestamp": "soon"}',
        "bad_section": '{"production_line": 3}',
        "empty": "",
    }
    paths = {}
    for name, text in files.items():
        path = tmp_path / f"{name}.json"
        path.write_text(text)
        paths[name] = path
    paths["missing"] = tmp_path / "missing.json"
    paths["directory"] = tmp_path
    binary = tmp_path / "binary.json"
    binary.write_bytes(b"\xff\xfe\x00garbage")
    paths["binary"] = binary
    return paths


def test_import_failures_keep_the_current_state(
    manager: StateManager, sample_state: dict[str, Any], tmp_path: Path
) -> None:
    manager.set_state(sample_state)
    for name, path in _bad_files(tmp_path).items():
        assert manager.import_state(path) is False, name
        assert manager.get_current_state() == sample_state, name
    assert manager.get_history() == []


# -- get_state_at_time against a model ---------------------------------------------------------

T0 = datetime(2025, 2, 24, tzinfo=UTC).timestamp()


def _model_lookup(states: list[tuple[float, int]], when: float) -> int | None:
    """Latest state at or before ``when``; among equal times the one stored last."""
    best: tuple[float, int] | None = None
    for epoch, n in states:
        if epoch <= when and (best is None or epoch >= best[0]):
            best = (epoch, n)
    return None if best is None else best[1]


@settings(max_examples=150, deadline=None)
@given(
    offsets=st.lists(st.integers(min_value=0, max_value=40), min_size=1, max_size=30),
    history_length=st.integers(min_value=0, max_value=8),
    queries=st.lists(st.integers(min_value=-2, max_value=42), min_size=1, max_size=10),
    clear_at=st.one_of(st.none(), st.integers(min_value=0, max_value=29)),
)
def test_state_at_time_matches_a_brute_force_model(
    offsets: list[int], history_length: int, queries: list[int], clear_at: int | None
) -> None:
    StateManager._reset_instance()
    manager = StateManager(history_length=history_length, validation_level="basic")
    kept: list[tuple[float, int]] = []  # model of history + current
    for n, offset in enumerate(offsets):
        epoch = T0 + offset
        stamp = datetime.fromtimestamp(epoch, UTC).isoformat()
        assert manager.update_state({"timestamp": stamp, "x": {"n": n}})
        kept.append((epoch, n))
        kept = kept[-(history_length + 1) :]
        if clear_at == n:
            manager.clear_history()
            kept = kept[-1:]
    for query in queries:
        state = manager.get_state_at_time(T0 + query)
        found = None if state is None else state["x"]["n"]
        assert found == _model_lookup(kept, T0 + query)
