"""The one singleton base: one instance per class, even when created from many threads."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from circman5.singleton import Singleton


class Counter(Singleton):
    created = 0

    def __init__(self) -> None:
        with self._init_lock:
            if self._constructed:
                return
            type(self).created += 1
            self._constructed = True


class Other(Singleton):
    pass


def test_one_instance_per_class_across_threads() -> None:
    Counter._reset_instance()
    Counter.created = 0
    seen: list[Counter] = []
    barrier = threading.Barrier(8)

    def make() -> None:
        barrier.wait()
        seen.append(Counter())

    threads = [threading.Thread(target=make) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len({id(s) for s in seen}) == 1
    assert Counter.created == 1
    assert Other() is not seen[0] and Other() is Other()


def test_reset_gives_a_new_instance() -> None:
    first = Counter()
    Counter._reset_instance()
    assert Counter() is not first


def test_a_second_construction_with_other_arguments_is_refused() -> None:
    from circman5.adapters.services.constants_service import ConstantsService
    from circman5.errors import SingletonConflict
    from circman5.manufacturing.digital_twin.core.twin_core import DigitalTwin, DigitalTwinConfig

    twin = DigitalTwin()
    assert DigitalTwin() is twin  # no arguments: the instance
    with pytest.raises(SingletonConflict, match="DigitalTwin exists already"):
        DigitalTwin(config=DigitalTwinConfig(history_length=3))
    constants = ConstantsService()
    assert ConstantsService(config_dir=None) is constants  # None is "not given"


def test_the_constants_are_passed_in_where_they_are_used(tmp_path: Path) -> None:
    """The twin, its simulation engine and its forecast check use the ConstantsService they
    were given; the edge service builds nothing inline."""
    import json

    from circman5.adapters.services.constants_service import ConstantsService
    from circman5.cli import init_config
    from circman5.errors import SingletonConflict
    from circman5.manufacturing.digital_twin.core.twin_core import DigitalTwin

    directory = tmp_path / "constants"
    init_config(directory, force=False)
    model_file = directory / "digital_twin.json"
    model = json.loads(model_file.read_text())
    model["PARAMETER_THRESHOLDS"]["production_line.temperature"] = [10.0, 31.5]
    model["SIMULATION_PARAMETERS"]["time_step_s"] = 2.5
    model_file.write_text(json.dumps(model))
    constants = ConstantsService(directory)
    twin = DigitalTwin(constants=constants)
    assert twin.initialize()
    assert twin.constants is constants
    assert twin.thresholds["production_line.temperature"].high == 31.5
    assert twin.simulation_engine is not None and twin.simulation_engine.constants is constants
    assert twin.forecast_checker is not None and twin.forecast_checker._step_s == 2.5
    # the singletons refuse a second construction with other arguments
    with pytest.raises(SingletonConflict, match="ConstantsService exists already"):
        ConstantsService(tmp_path)
    assert ConstantsService() is constants and ConstantsService(directory) is constants
    with pytest.raises(SingletonConflict, match="DigitalTwin exists already"):
        DigitalTwin(constants=object())  # type: ignore[arg-type]
    assert DigitalTwin() is twin and DigitalTwin(constants=constants) is twin


def test_the_edge_service_needs_its_constants() -> None:
    import inspect

    from circman5.service.app import EdgeService

    parameter = inspect.signature(EdgeService).parameters["constants"]
    assert parameter.default is inspect.Parameter.empty
