"""Calibrations on both backends (the standalone files, PostgreSQL): numbered versions, the
active one, and the simulation engine following it wherever it is kept."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

from circman5.errors import ConfigError, InvalidInputError
from circman5.manufacturing.digital_twin.simulation.calibration import (
    Calibration,
    activate_calibration,
    active_calibration_stamp,
    calibrate,
    list_calibrations,
    load_active_calibration,
    load_calibration,
    save_calibration,
    use_calibration_store,
)
from circman5.manufacturing.digital_twin.simulation.known_history import generate_history
from circman5.manufacturing.digital_twin.simulation.simulation_engine import SimulationEngine
from tests.fixtures.databases import TwinBackend

SLOW_REGULATION = {"temperature_regulation": 0.04, "ambient_temperature": 21.0}


@pytest.fixture(scope="module")
def fitted() -> Calibration:
    return calibrate(generate_history(SLOW_REGULATION, segments=6, segment_steps=120, seed=3))


@pytest.fixture
def configured(twin_backend: TwinBackend) -> Iterator[TwinBackend]:
    """The backend's calibrations as the process's (what the service does at start)."""
    use_calibration_store(twin_backend.calibrations())
    yield twin_backend
    use_calibration_store(None)


def test_versions_are_numbered_and_the_last_saved_is_active(
    twin_backend: TwinBackend, fitted: Calibration
) -> None:
    store = twin_backend.calibrations()
    assert load_active_calibration(store=store) is None
    assert active_calibration_stamp(store=store) is None
    first = save_calibration(fitted, store=store)
    second = save_calibration(fitted, activate=False, store=store)
    assert (first.version, second.version) == (1, 2)
    assert list_calibrations(store=store) == [1, 2]
    active = load_active_calibration(store=store)
    assert active is not None and active.version == 1
    assert active.parameters == fitted.parameters
    assert active.accepted_paths == fitted.accepted_paths
    stamp = active_calibration_stamp(store=store)
    activate_calibration(2, store=store)
    assert active_calibration_stamp(store=store) != stamp
    assert load_calibration(2, store=store).to_dict() == second.to_dict()
    with pytest.raises(InvalidInputError, match="no calibration 7"):
        activate_calibration(7, store=store)
    again = twin_backend.calibrations()  # what a restarted process finds
    reloaded = load_active_calibration(store=again)
    assert reloaded is not None and reloaded.version == 2


def test_two_writers_at_once_get_different_versions(
    twin_backend: TwinBackend, fitted: Calibration
) -> None:
    stores = [twin_backend.calibrations(), twin_backend.calibrations()]
    saved: list[int] = []
    lock = threading.Lock()

    def save(index: int) -> None:
        for _ in range(5):
            version = save_calibration(fitted, store=stores[index]).version
            with lock:
                saved.append(version)

    threads = [threading.Thread(target=save, args=(i,)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(saved) == list(range(1, 11))
    assert list_calibrations(store=stores[0]) == list(range(1, 11))


def test_a_broken_document_names_where_it_is(twin_backend: TwinBackend) -> None:
    store = twin_backend.calibrations()
    version = store.add(lambda version: '{"format": "something else"}', activate=True)
    with pytest.raises(ConfigError, match=rf"{version:06d}|version {version}"):
        load_active_calibration(store=store)


def test_the_engine_follows_the_active_calibration_of_the_configured_store(
    configured: TwinBackend, fitted: Calibration, tmp_path_factory: pytest.TempPathFactory
) -> None:
    engine = SimulationEngine(None)
    assert engine.parameter_set == "built-in defaults"
    saved = save_calibration(fitted)  # no store named: the configured one
    assert engine.parameter_set == f"calibration {saved.version}"
    assert engine.parameters.temperature_regulation == fitted.parameters["temperature_regulation"]
    # the data directory's files are not where it went
    assert list_calibrations(data_dir=tmp_path_factory.mktemp("empty")) == [saved.version]
    use_calibration_store(None)
    assert list_calibrations(data_dir=tmp_path_factory.mktemp("files")) == []
