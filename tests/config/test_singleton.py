"""The one singleton base: one instance per class, even when created from many threads."""

from __future__ import annotations

import threading

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
