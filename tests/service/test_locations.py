"""The data and constants directories are passed in, never written to the process environment."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from circman5 import paths
from circman5.adapters.services.constants_service import ConstantsService
from circman5.manufacturing.digital_twin.event_notification.event_manager import event_manager
from circman5.manufacturing.digital_twin.event_notification.event_persistence import (
    DEFAULT_DB_PARTS,
)
from circman5.manufacturing.digital_twin.event_notification.event_types import ErrorEvent
from circman5.service.app import EdgeService
from circman5.settings import load_settings
from tests.ingestion.conftest import eventually

ROOT = Path(__file__).resolve().parents[2]


def test_chosen_directories_beat_the_environment_only_inside_the_block(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(paths.DATA_DIR_ENV, str(tmp_path / "from-env"))
    monkeypatch.delenv(paths.CONFIG_DIR_ENV, raising=False)
    environment = dict(os.environ)
    assert paths.data_dir(create=False) == tmp_path / "from-env"
    with paths.locations(tmp_path / "chosen", ROOT / "config") as chosen:
        assert chosen.data_dir == tmp_path / "chosen"
        assert paths.data_dir(create=False) == tmp_path / "chosen"
        assert paths.config_dir() == ROOT / "config"
        with paths.locations(constants_dir=tmp_path / "inner"):
            # an inner choice of one directory keeps the outer choice of the other
            assert paths.data_dir(create=False) == tmp_path / "chosen"
            assert paths.config_dir() == tmp_path / "inner"
        assert paths.config_dir() == ROOT / "config"
        assert dict(os.environ) == environment
    # the user's environment variables are honoured again after the block
    assert paths.data_dir(create=False) == tmp_path / "from-env"
    assert paths.config_dir() is None


async def test_the_service_passes_its_data_dir_without_touching_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # (CIRCMAN5_DATA_DIR would beat the TOML's data_dir, as documented)
    monkeypatch.delenv(paths.DATA_DIR_ENV, raising=False)
    monkeypatch.delenv(paths.CONFIG_DIR_ENV, raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))  # nothing lands in $HOME
    environment = dict(os.environ)
    data = tmp_path / "service-data"
    config = tmp_path / "edge.toml"
    config.write_text(
        f'data_dir = "{data}"\nconfig_dir = "{ROOT / "config"}"\n'
        "[health]\nenabled = false\n[api]\nenabled = false\n"
    )
    ConstantsService._reset_instance()
    constants = ConstantsService(ROOT / "config")
    service = EdgeService(load_settings(config), constants)
    runner = asyncio.create_task(service.run())
    try:
        await asyncio.wait_for(service.ready.wait(), 30)
        assert paths.data_dir(create=False) == data
        assert paths.config_dir() == ROOT / "config"
        assert dict(os.environ) == environment
        # events of the running service go to the database under its data directory
        event = ErrorEvent(error_type="LocationProbe", error_message="where am I", details={})
        event_manager.publish(event)
        event_manager.flush()
        database = data.joinpath(*DEFAULT_DB_PARTS)
        await eventually(database.exists, what="the events database in the service's data_dir")
    finally:
        service.stop()
        await asyncio.wait_for(runner, 30)
        ConstantsService._reset_instance()
    assert dict(os.environ) == environment
    assert paths.data_dir_source() is None
    assert paths.config_dir() is None
