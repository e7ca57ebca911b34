"""Shared pytest setup: an isolated data directory per test, fresh singletons, real servers.

Server fixtures live in ``tests/fixtures/``; each module there is a pytest plugin.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

pytest_plugins = [
    "tests.fixtures.servers",
    "tests.fixtures.simulators",
    "tests.fixtures.node_opcua",
    "tests.fixtures.databases",
]


def reset_singletons() -> None:
    """Forget the spec's singletons (twin, state manager, event manager, constants)."""
    from circman5.adapters.services.constants_service import ConstantsService
    from circman5.manufacturing.digital_twin.core.twin_core import DigitalTwin
    from circman5.manufacturing.digital_twin.event_notification.event_manager import (
        EventManager,
    )

    DigitalTwin._reset_instance()
    EventManager._reset_instance()
    ConstantsService._reset_instance()


@pytest.fixture(autouse=True)
def isolated_data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Every test writes under its own data directory and starts from fresh singletons."""
    data = tmp_path / "data"
    data.mkdir()
    monkeypatch.setenv("CIRCMAN5_DATA_DIR", str(data))
    monkeypatch.delenv("CIRCMAN5_CONFIG_DIR", raising=False)
    reset_singletons()
    yield data
    reset_singletons()
