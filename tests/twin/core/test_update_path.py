"""The twin's update path after the speed work: one walk of the update, one clock read.

What the fast path must not lose: the state's timestamp and its epoch agree (a state is found
by its own timestamp), the leaves the merge records are the values as stored, the caller's dict
is neither changed nor shared, thresholds see every numeric leaf (ints, fractions, numpy
numbers: as stored, a Python number) and
the forecaster learns each sample at its state's time.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from datetime import UTC, datetime
from fractions import Fraction
from typing import Any

import numpy
import pytest

from circman5.manufacturing.digital_twin.core.state_manager import StateManager
from circman5.manufacturing.digital_twin.core.twin_core import DigitalTwin
from circman5.manufacturing.digital_twin.event_notification.event_types import (
    Event,
    ThresholdEvent,
    now_stamp,
)


@pytest.fixture
def twin() -> Iterator[DigitalTwin]:
    DigitalTwin._reset_instance()
    twin = DigitalTwin()
    assert twin.initialize()
    yield twin
    DigitalTwin._reset_instance()


def test_now_stamp_text_reads_back_as_its_epoch() -> None:
    milliseconds = set()
    for _ in range(5000):  # several milliseconds: the cached date prefix is renewed
        text, epoch = now_stamp()
        milliseconds.add(text[:23])
        # the standard library's reading of the text and its own formatting of the epoch
        assert datetime.fromisoformat(text).timestamp() == epoch
        assert datetime.fromtimestamp(epoch, UTC).isoformat(timespec="microseconds") == text
    assert len(milliseconds) > 1
    assert abs(datetime.now(UTC).timestamp() - epoch) < 60


def test_a_stamped_state_is_found_by_its_own_timestamp(twin: DigitalTwin) -> None:
    for i in range(200):
        assert twin.update({"production_line": {"temperature": 22.0 + i * 0.01}})
    manager = twin.state_manager
    states = [*manager.get_history(), manager.get_current_state()]
    for state in states[-200:]:
        found = manager.get_state_at_time(state["timestamp"])
        assert found is not None and found["timestamp"] == state["timestamp"]
        assert found["production_line"]["temperature"] == state["production_line"]["temperature"]


def test_commit_records_each_leaf_as_stored() -> None:
    StateManager._reset_instance()
    manager = StateManager(history_length=10)
    changed: dict[str, Any] = {}
    applied = manager.commit(
        {
            "timestamp": "2025-02-24T14:30:00+00:00",
            "system_status": "running",
            "production_line": {"temperature": 23, "series": (1, 2)},
            "materials": {"silicon_wafer": {"quality": Fraction(1, 2)}},
        },
        changed,
    )
    assert applied is not None
    snapshot, epoch = applied
    assert changed == {
        "system_status": "running",
        "production_line.temperature": 23,
        "production_line.series": [1, 2],
        "materials.silicon_wafer.quality": 0.5,
    }
    assert type(changed["materials.silicon_wafer.quality"]) is float
    assert snapshot["production_line"]["series"] == [1, 2]
    assert epoch == datetime(2025, 2, 24, 14, 30, tzinfo=UTC).timestamp()
    StateManager._reset_instance()


def test_an_invalid_commit_changes_nothing() -> None:
    StateManager._reset_instance()
    manager = StateManager(history_length=10)
    assert manager.set_state({"production_line": {"temperature": 20.0}})
    before = manager.get_current_state()
    update = {"production_line": {"temperature": 21.0, "efficiency": math.inf}}
    assert manager.commit(update, {}) is None
    assert manager.get_current_state() == before
    assert manager.get_history() == []
    StateManager._reset_instance()


def test_update_neither_changes_nor_shares_the_callers_dict(twin: DigitalTwin) -> None:
    data: dict[str, Any] = {"production_line": {"temperature": 23.0, "series": [1, 2]}}
    assert twin.update(data)
    assert data == {"production_line": {"temperature": 23.0, "series": [1, 2]}}
    data["production_line"]["series"].append(3)
    data["production_line"]["temperature"] = 99.0
    line = twin.get_current_state()["production_line"]
    assert line["series"] == [1, 2] and line["temperature"] == 23.0


@pytest.mark.parametrize("value", [30, Fraction(61, 2), numpy.float32(30.5), numpy.int64(31)])
def test_thresholds_see_every_kind_of_number(
    twin: DigitalTwin, captured: list[Event], value: Any
) -> None:
    assert twin.update({"production_line": {"temperature": value}})
    breaches = [e for e in captured if isinstance(e, ThresholdEvent)]
    assert len(breaches) == 1
    assert breaches[0].details["actual_value"] == float(value)
    assert twin.active_alarms == {"production_line.temperature": "high"}


def test_a_value_back_in_range_still_clears_its_alarm(
    twin: DigitalTwin, captured: list[Event]
) -> None:
    assert twin.update({"production_line": {"temperature": 30.0}})
    assert twin.active_alarms == {"production_line.temperature": "high"}
    assert twin.update({"production_line": {"temperature": 22.0}})
    assert twin.active_alarms == {}
    assert [type(e).__name__ for e in captured if e.category.value == "threshold"] == [
        "ThresholdEvent",
        "ThresholdClearedEvent",
    ]


def test_the_forecaster_learns_each_sample_at_its_states_time(twin: DigitalTwin) -> None:
    checker = twin.forecast_checker
    assert checker is not None and checker.statistical is not None
    stamp = "2025-02-24T14:30:00.250000+00:00"
    assert twin.update({"timestamp": stamp, "production_line": {"temperature": 23.0}})
    checker.learn_pending()
    assert checker.statistical.latest_t == datetime.fromisoformat(stamp).timestamp()
    assert twin.update({"production_line": {"temperature": 23.5}})  # stamped now
    checker.learn_pending()
    now = twin.get_current_state()["timestamp"]
    assert checker.statistical.latest_t == datetime.fromisoformat(now).timestamp()
