"""Event publish-and-persist rate, and the StateManager's single-field update rate.

Event figures: events created, published through the event manager (one subscribed handler)
and committed to SQLite, per second: the clock stops when ``flush()`` returns, so every event is
on disk. Target: >= 50,000 events/s on this 2-core machine. Baseline (same run): a naive publish
that inserts the event and commits, one event at a time (same indexes, same WAL settings).

StateManager figures: ``update_state({"production_line": {"temperature": x}, "timestamp": t})``
per second, no target. Baseline (same run): the spec's example StateManager (deepcopy of the
current state per update, deep merge, validate, deepcopy into the history, deepcopy of the new
state).

Every figure is the best of ``REPEAT`` runs (the machine is shared with other work); the CPU
rows (the process's CPU time per event, every thread) vary far less between runs than the rates.
Files go to a temporary data directory, removed afterwards.
"""

from __future__ import annotations

import collections
import copy
import json
import os
import sqlite3
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any, NamedTuple

from benchmarks.report import Row
from tests.fixtures.spec_state import spec_state

REPEAT = 3
N_EVENTS = 100_000
N_NAIVE_EVENTS = 20_000
N_UPDATES = 200_000
N_NAIVE_UPDATES = 20_000
TARGET_EVENTS = 50_000.0


@contextmanager
def _data_dir() -> Iterator[Path]:
    previous = os.environ.get("CIRCMAN5_DATA_DIR")
    with tempfile.TemporaryDirectory(prefix="circman5-bench-") as tmp:
        os.environ["CIRCMAN5_DATA_DIR"] = tmp
        try:
            yield Path(tmp)
        finally:
            if previous is None:
                os.environ.pop("CIRCMAN5_DATA_DIR", None)
            else:
                os.environ["CIRCMAN5_DATA_DIR"] = previous


def _best(measure: Callable[[int], float]) -> float:
    return max(measure(run) for run in range(REPEAT))


class EventRun(NamedTuple):
    rate: float  # events/s, wall clock until every event is on disk
    cpu_us: float  # CPU time of the whole process (every thread) per event, µs


def _best_runs(measure: Callable[[int], EventRun]) -> EventRun:
    """The best wall-clock rate and the least CPU per event of ``REPEAT`` runs."""
    runs = [measure(run) for run in range(REPEAT)]
    return EventRun(max(r.rate for r in runs), min(r.cpu_us for r in runs))


# -- events ------------------------------------------------------------------------------------


def _publish_rate(directory: Path, run: int, max_events: int | None, threads: int = 1) -> EventRun:
    from circman5.manufacturing.digital_twin.event_notification.event_manager import EventManager
    from circman5.manufacturing.digital_twin.event_notification.event_persistence import (
        EventPersistence,
    )
    from circman5.manufacturing.digital_twin.event_notification.event_types import (
        EventSeverity,
        ThresholdEvent,
    )

    store = EventPersistence(directory / f"events-{max_events}-{threads}-{run}.db", max_events)
    manager = EventManager.standalone(persistence=store, config={"max_events": max_events})
    received = [0]

    def handler(event: Any) -> None:
        received[0] += 1

    manager.subscribe(handler)
    per_thread = N_EVENTS // threads
    barrier = threading.Barrier(threads + 1)

    def publish_all() -> None:
        publish, warning = manager.publish, EventSeverity.WARNING
        barrier.wait()
        for i in range(per_thread):
            publish(
                ThresholdEvent(
                    "production_line.temperature",
                    25.0,
                    25.0 + i * 1e-4,
                    severity=warning,
                    source="digital_twin",
                    details={"parameter_path": "production_line.temperature"},
                )
            )

    workers = [threading.Thread(target=publish_all) for _ in range(threads)]
    for worker in workers:
        worker.start()
    barrier.wait()
    start, cpu_start = time.perf_counter(), time.process_time()
    for worker in workers:
        worker.join()
    manager.flush()
    elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu_start
    total = per_thread * threads
    expected = total if max_events is None else min(total, max_events)
    assert received[0] == total, received[0]
    assert store.count() == expected and store.written == total, (store.count(), store.written)
    store.close()
    return EventRun(total / elapsed, cpu / total * 1e6)


def _naive_publish_rate(directory: Path, run: int) -> EventRun:
    """Insert and commit each event as it is published (the straightforward implementation)."""
    from circman5.manufacturing.digital_twin.event_notification.event_types import (
        EventSeverity,
        ThresholdEvent,
    )

    conn = sqlite3.connect(directory / f"naive-{run}.db")
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute(
        "CREATE TABLE events (id INTEGER PRIMARY KEY, event_id TEXT UNIQUE, timestamp TEXT, "
        "category TEXT, severity TEXT, source TEXT, message TEXT, details TEXT, "
        "acknowledged INTEGER)"
    )
    handlers: list[Callable[[Any], None]] = [lambda event: None]

    def publish(event: Any) -> None:
        conn.execute(
            "INSERT INTO events (event_id, timestamp, category, severity, source, message, "
            "details, acknowledged) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (
                event.event_id,
                event.timestamp,
                event.category.value,
                event.severity.value,
                event.source,
                event.message,
                json.dumps(event.details),
                int(event.acknowledged),
            ),
        )
        conn.commit()
        for handler in handlers:
            handler(event)

    start, cpu_start = time.perf_counter(), time.process_time()
    for i in range(N_NAIVE_EVENTS):
        publish(
            ThresholdEvent(
                "production_line.temperature",
                25.0,
                25.0 + i * 1e-4,
                severity=EventSeverity.WARNING,
                source="digital_twin",
                details={"parameter_path": "production_line.temperature"},
            )
        )
    elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu_start
    assert conn.execute("SELECT COUNT(*) FROM events").fetchone()[0] == N_NAIVE_EVENTS
    conn.close()
    return EventRun(N_NAIVE_EVENTS / elapsed, cpu / N_NAIVE_EVENTS * 1e6)


# -- state manager -----------------------------------------------------------------------------

_STATE: dict[str, Any] = spec_state()


def _updates(n: int) -> list[dict[str, Any]]:
    base = 1_740_407_422.0
    return [
        {
            "production_line": {"temperature": 22.0 + (i % 50) * 0.01},
            "timestamp": datetime.fromtimestamp(base + i * 0.01).isoformat(),
        }
        for i in range(n)
    ]


def _update_rate(_run: int, fast_path: bool = False) -> float:
    from circman5.manufacturing.digital_twin.core.state_manager import StateManager

    StateManager._reset_instance()
    manager = StateManager(history_length=1000, validation_level="standard")
    manager.set_state(_STATE)
    updates = _updates(N_UPDATES)
    update = manager.apply_update if fast_path else manager.update_state
    start = time.perf_counter()
    for item in updates:
        update(item)
    elapsed = time.perf_counter() - start
    current = manager.get_current_state()
    assert (
        current["production_line"]["temperature"] == updates[-1]["production_line"]["temperature"]
    )
    assert len(manager.get_history()) == 1000
    StateManager._reset_instance()
    return N_UPDATES / elapsed


class _SpecStateManager:
    """The state manager as the spec's examples write it: deepcopies all the way."""

    def __init__(self, history_length: int) -> None:
        self.current_state: dict[str, Any] = {}
        self.state_history: collections.deque[dict[str, Any]] = collections.deque(
            maxlen=history_length
        )
        self._lock = threading.RLock()

    def validate_state(self, state: Any) -> tuple[bool, str]:
        if not isinstance(state, dict):
            return False, "State must be a dictionary"
        if "timestamp" not in state:
            return False, "Missing 'timestamp' field"
        try:
            if isinstance(state["timestamp"], str):
                datetime.fromisoformat(state["timestamp"])
        except (ValueError, TypeError):
            return False, "Invalid timestamp format"
        return True, "Valid state"

    def set_state(self, state: dict[str, Any]) -> bool:
        with self._lock:
            valid, _ = self.validate_state(state)
            if not valid:
                return False
            if self.current_state:
                self.state_history.append(copy.deepcopy(self.current_state))
            self.current_state = copy.deepcopy(state)
            return True

    def _deep_update(self, target: dict[str, Any], updates: dict[str, Any]) -> dict[str, Any]:
        for key, value in updates.items():
            if isinstance(value, dict) and isinstance(target.get(key), dict):
                self._deep_update(target[key], value)
            else:
                target[key] = value
        return target

    def update_state(self, updates: dict[str, Any]) -> None:
        with self._lock:
            current_state = copy.deepcopy(self.current_state)
            updated_state = self._deep_update(current_state, updates)
            self.set_state(updated_state)


def _naive_update_rate(_run: int) -> float:
    manager = _SpecStateManager(history_length=1000)
    manager.set_state(_STATE)
    updates = _updates(N_NAIVE_UPDATES)
    start = time.perf_counter()
    for item in updates:
        manager.update_state(item)
    elapsed = time.perf_counter() - start
    assert manager.current_state["timestamp"] == updates[-1]["timestamp"]
    return N_NAIVE_UPDATES / elapsed


def main() -> list[Row]:
    with _data_dir() as directory:
        naive = _best_runs(lambda run: _naive_publish_rate(directory, run))
        retained = _best_runs(lambda run: _publish_rate(directory, run, 1000))
        all_kept = _best_runs(lambda run: _publish_rate(directory, run, None))
        two_threads = _best_runs(lambda run: _publish_rate(directory, run, None, threads=2))
    naive_events = naive.rate
    naive_updates = _best(_naive_update_rate)
    updates = _best(_update_rate)
    fast_updates = _best(lambda run: _update_rate(run, fast_path=True))
    label = "naive insert+commit per event"
    return [
        Row(
            "events create+publish+persist (max_events 1000)",
            retained.rate,
            "events/s",
            TARGET_EVENTS,
            baseline=naive_events,
            baseline_label=label,
        ),
        Row(
            "  same, CPU time per event (every thread)",
            retained.cpu_us,
            "µs",
            None,
            baseline=naive.cpu_us,
            baseline_label=label,
        ),
        Row(
            "events create+publish+persist (every event kept)",
            all_kept.rate,
            "events/s",
            TARGET_EVENTS,
            baseline=naive_events,
            baseline_label=label,
        ),
        Row(
            "  same, CPU time per event (every thread)",
            all_kept.cpu_us,
            "µs",
            None,
            baseline=naive.cpu_us,
            baseline_label=label,
        ),
        Row(
            "  same, 2 publishing threads",
            two_threads.rate,
            "events/s",
            None,
            baseline=naive_events,
            baseline_label=label,
        ),
        Row(
            "StateManager.update_state, one field",
            updates,
            "updates/s",
            None,
            baseline=naive_updates,
            baseline_label="spec example (deepcopy per update)",
        ),
        Row(
            "StateManager.apply_update, one field",
            fast_updates,
            "updates/s",
            None,
            baseline=naive_updates,
            baseline_label="spec example (deepcopy per update)",
        ),
    ]
