"""DigitalTwin.update rate: one field per update, threshold checks on.

Target: >= 100,000 updates/s on this 2-core machine. Baseline (same run): the spec's example
update cycle (deepcopy of the whole state per update, validate, history append, a threshold scan
of every configured path).
"""

from __future__ import annotations

import collections
import copy
import os
import tempfile
import time
from datetime import datetime
from typing import Any

from benchmarks.report import Row

N = 200_000
N_BASELINE = 20_000


def _twin_rate() -> float:
    from circman5.manufacturing.digital_twin.core.twin_core import DigitalTwin

    DigitalTwin._reset_instance()
    twin = DigitalTwin()
    twin.initialize()
    update = twin.update
    values = [22.0 + (i % 50) * 0.01 for i in range(N)]
    start = time.perf_counter()
    for value in values:
        update({"production_line": {"temperature": value}})
    elapsed = time.perf_counter() - start
    assert twin.get_current_state()["production_line"]["temperature"] == values[-1]
    DigitalTwin._reset_instance()
    return N / elapsed


class _NaiveTwin:
    """The spec's update cycle, written as its examples show it."""

    def __init__(self, state: dict[str, Any], thresholds: dict[str, tuple[float, float]]) -> None:
        self.current_state = copy.deepcopy(state)
        self.state_history: collections.deque[dict[str, Any]] = collections.deque(maxlen=1000)
        self.thresholds = thresholds

    def _deep_update(self, target: dict[str, Any], updates: dict[str, Any]) -> dict[str, Any]:
        for key, value in updates.items():
            if isinstance(value, dict) and isinstance(target.get(key), dict):
                self._deep_update(target[key], value)
            else:
                target[key] = value
        return target

    def update(self, external_data: dict[str, Any]) -> None:
        update_data = dict(external_data)
        update_data["timestamp"] = datetime.now().isoformat()
        state = self._deep_update(copy.deepcopy(self.current_state), update_data)
        datetime.fromisoformat(state["timestamp"])
        self.state_history.append(copy.deepcopy(self.current_state))
        self.current_state = copy.deepcopy(state)
        for path, (low, high) in self.thresholds.items():
            section, _, key = path.partition(".")
            value = self.current_state.get(section, {}).get(key)
            if isinstance(value, float) and not low <= value <= high:
                pass


def _baseline_rate() -> float:
    from circman5.manufacturing.digital_twin.core.twin_core import default_initial_state

    naive = _NaiveTwin(
        default_initial_state(datetime.now().isoformat()),
        {"production_line.temperature": (18.0, 27.0), "environment.humidity": (30.0, 70.0)},
    )
    start = time.perf_counter()
    for i in range(N_BASELINE):
        naive.update({"production_line": {"temperature": 22.0 + (i % 50) * 0.01}})
    return N_BASELINE / (time.perf_counter() - start)


def main() -> list[Row]:
    with tempfile.TemporaryDirectory() as data:
        os.environ.setdefault("CIRCMAN5_DATA_DIR", data)
        rate = _twin_rate()
        baseline = _baseline_rate()
    return [
        Row(
            "DigitalTwin.update, 1 field, thresholds on",
            rate,
            "updates/s",
            100_000,
            baseline=baseline,
            baseline_label="spec-style deepcopy cycle",
        )
    ]
