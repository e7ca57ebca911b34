"""The one singleton base: one instance per class, even when created from many threads."""

from __future__ import annotations

import threading

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
