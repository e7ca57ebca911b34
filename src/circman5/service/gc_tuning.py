"""The garbage collector's settings for a long-running process with a per-message path."""

from __future__ import annotations

import gc

__all__ = ["YOUNG_THRESHOLD", "tune_garbage_collector"]

#: Allocations between two collections of the youngest generation (Python's default: 700).
YOUNG_THRESHOLD = 20_000


def tune_garbage_collector() -> None:
    """Fewer, cheaper collections once start-up is done (call it then, once).

    Everything built at start-up lives as long as the process: frozen, it is left out of the
    collector's passes (full passes otherwise rescan it many times a second under load). A flood
    of messages allocates a few tracked objects per message (message tuples, samples), almost
    none in reference cycles: with Python's default the youngest generation is collected every
    700 allocations; every :data:`YOUNG_THRESHOLD` is enough (cycles are still collected, a
    little later).
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(YOUNG_THRESHOLD, 10, 10)
    gc.enable()  # ``circman5 run`` starts with the collector off (circman5.cli.main)
