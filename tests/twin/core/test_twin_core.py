"""The DigitalTwin: the spec's documented calls, threshold alarms with flood control, events."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from circman5.adapters.services.constants_service import ConstantsService
from circman5.manufacturing.digital_twin.core.state_manager import StateManager
from circman5.manufacturing.digital_twin.core.twin_core import DigitalTwin
from circman5.manufacturing.digital_twin.event_notification.event_manager import event_manager
from circman5.manufacturing.digital_twin.event_notification.event_types import (
    Event,
    EventCategory,
    EventSeverity,
    ForecastEvent,
    ThresholdClearedEvent,
    ThresholdEvent,
)


def thresholds(events: list[Event]) -> list[Event]:
    return [e for e in events if e.category is EventCategory.THRESHOLD]


def test_spec_initialization_example() -> None:
    """Implementation guide 6.1, as written."""
    DigitalTwin._reset_instance()
    twin = DigitalTwin()
    success = twin.initialize()
    assert success
    assert twin.is_running
    current_state = twin.get_current_state()
    assert current_state is not None
    assert "system_status" in current_state
    assert current_state["system_status"] == "running"


def test_spec_singleton_and_update_example() -> None:
    """Technical manual 13.3, as written."""
    twin1 = DigitalTwin()
    twin2 = DigitalTwin()
    assert twin1 is twin2
    twin = DigitalTwin()
    assert twin.initialize() is True
    assert twin._initialized is True
    result = twin.update({"production_line": {"temperature": 23.5}})
    assert result is True
    state = twin.get_current_state()
    assert state["production_line"]["temperature"] == 23.5
    # the merge kept the rest of the branch
    assert "energy_consumption" in state["production_line"]


def test_update_before_initialize_is_refused() -> None:
    assert DigitalTwin().update({"production_line": {"temperature": 23.0}}) is False


def test_returned_state_cannot_mutate_the_twin() -> None:
    twin = DigitalTwin()
    twin.initialize()
    state = twin.get_current_state()
    state["production_line"]["temperature"] = -999.0
    assert twin.get_current_state()["production_line"]["temperature"] != -999.0


def test_invalid_update_is_rejected_and_reported(captured: list[Event]) -> None:
    twin = DigitalTwin()
    twin.initialize()
    before = twin.get_current_state()
    assert twin.update({"production_line": {"temperature": float("nan")}}) is False
    assert twin.get_current_state()["production_line"] == before["production_line"]
    assert twin.rejected_updates == 1
    errors = [e for e in captured if e.category is EventCategory.ERROR]
    assert errors and errors[-1].details["error_type"] == "InvalidUpdate"


def test_one_event_per_excursion_with_deadband(captured: list[Event]) -> None:
    twin = DigitalTwin()
    twin.initialize()
    captured.clear()
    # out of range for many updates: one breach event
    for value in (27.5, 28.0, 29.0, 28.5, 27.2):
        twin.update({"production_line": {"temperature": value}})
    breaches = thresholds(captured)
    assert len(breaches) == 1
    event = breaches[0]
    assert isinstance(event, ThresholdEvent)
    assert event.details["parameter"] == "production_line.temperature"
    assert event.details["threshold"] == 27.0
    assert event.details["actual_value"] == 27.5
    assert event.details["limit"] == "high"
    assert event.severity is EventSeverity.WARNING
    assert twin.active_alarms == {"production_line.temperature": "high"}
    # inside the limit but within the deadband (1% of the 9-degree range): still in alarm
    twin.update({"production_line": {"temperature": 26.95}})
    assert len(thresholds(captured)) == 1
    # back by more than the deadband: one cleared event
    twin.update({"production_line": {"temperature": 26.5}})
    twin.update({"production_line": {"temperature": 25.0}})
    cleared = thresholds(captured)[1:]
    assert len(cleared) == 1 and isinstance(cleared[0], ThresholdClearedEvent)
    assert twin.active_alarms == {}
    # a new excursion below the range raises again, naming the low limit
    twin.update({"production_line": {"temperature": 17.0}})
    low = thresholds(captured)[-1]
    assert low.details["limit"] == "low" and low.details["threshold"] == 18.0
    assert "below" in low.message


def test_rule_form_threshold_with_severity(tmp_path: Path, captured: list[Event]) -> None:
    (tmp_path / "digital_twin.json").write_text(
        json.dumps(
            {
                "PARAMETER_THRESHOLDS": {
                    "production_line.defect_rate": {
                        "value": 0.1,
                        "comparison": "greater_than",
                        "severity": "critical",
                    }
                }
            }
        )
    )
    ConstantsService._reset_instance()
    ConstantsService(config_dir=tmp_path)
    twin = DigitalTwin()
    twin.initialize()
    twin.update({"production_line": {"defect_rate": 0.15}})
    (event,) = thresholds(captured)
    assert event.severity is EventSeverity.CRITICAL
    assert event.details["parameter"] == "production_line.defect_rate"


def test_state_change_events_only_when_status_changes(captured: list[Event]) -> None:
    twin = DigitalTwin()
    twin.initialize()
    captured.clear()
    for value in (22.0, 22.1, 22.2):
        twin.update({"production_line": {"temperature": value}})
    assert [e for e in captured if e.category is EventCategory.SYSTEM] == []
    twin.update({"system_status": "maintenance"})
    twin.update({"system_status": "maintenance"})
    changes = [e for e in captured if e.category is EventCategory.SYSTEM]
    assert len(changes) == 1
    assert changes[0].details["previous_state"] == "running"
    assert changes[0].details["new_state"] == "maintenance"


def test_events_are_persisted_and_acknowledgeable() -> None:
    twin = DigitalTwin()
    twin.initialize()
    twin.update({"production_line": {"temperature": 30.0}})
    stored = event_manager.get_events(category=EventCategory.THRESHOLD, limit=10)
    assert len(stored) == 1
    assert event_manager.acknowledge_event(stored[0].event_id) is True
    assert event_manager.get_events(category=EventCategory.THRESHOLD)[0].acknowledged is True


def test_history_and_state_at_time() -> None:
    twin = DigitalTwin()
    twin.initialize()
    for i, value in enumerate((22.0, 23.0, 24.0)):
        twin.update(
            {
                "timestamp": f"2030-01-01T00:00:0{i}+00:00",
                "production_line": {"temperature": value},
            }
        )
    history = twin.get_state_history()
    assert [s["production_line"]["temperature"] for s in history[-2:]] == [22.0, 23.0]
    assert len(twin.get_state_history(limit=1)) == 1
    at = twin.state_manager.get_state_at_time("2030-01-01T00:00:01.500000+00:00")
    assert at is not None and at["production_line"]["temperature"] == 23.0


def test_save_and_load_state(tmp_path: Path) -> None:
    twin = DigitalTwin()
    twin.initialize()
    twin.update({"production_line": {"temperature": 24.25}})
    target = tmp_path / "state.json"
    assert twin.save_state(target) is True
    twin.update({"production_line": {"temperature": 20.0}})
    assert twin.load_state(target) is True
    assert twin.get_current_state()["production_line"]["temperature"] == 24.25
    # a corrupt file keeps the current state
    target.write_text("{broken")
    assert twin.load_state(target) is False
    assert twin.get_current_state()["production_line"]["temperature"] == 24.25
    # the default location is under the data directory
    assert twin.save_state() is True


def test_simulate_uses_engine_without_touching_live_state(captured: list[Event]) -> None:
    twin = DigitalTwin()
    twin.initialize()
    before = twin.get_current_state()
    results = twin.simulate(steps=5, parameters={"production_line.temperature": 26.0})
    assert len(results) == 6
    assert results[0]["production_line"]["temperature"] == 26.0
    assert twin.get_current_state() == before
    process = [e for e in captured if e.category is EventCategory.PROCESS]
    assert process and "simulation_id" in process[-1].details
    with pytest.raises(ValueError):
        twin.simulate(steps=5, parameters={"production_line.no_such_thing": 1.0})


def test_reset_gives_fresh_state_manager() -> None:
    twin = DigitalTwin()
    twin.initialize()
    twin.update({"production_line": {"temperature": 25.0}})
    DigitalTwin._reset_instance()
    assert StateManager._instance is None
    fresh = DigitalTwin()
    assert fresh is not twin
    fresh.initialize()
    assert fresh.get_current_state()["production_line"]["temperature"] == 22.5


def test_forecast_warns_before_the_breach(tmp_path: Path, captured: list[Event]) -> None:
    (tmp_path / "digital_twin.json").write_text(
        json.dumps({"FORECAST_CHECK": {"statistical": {"check_interval_s": 0.0}}})
    )
    ConstantsService._reset_instance()
    ConstantsService(config_dir=tmp_path)
    twin = DigitalTwin()
    twin.initialize()
    start = datetime.now(UTC) + timedelta(seconds=1)  # after the initial state

    def feed(second: int, temperature: float) -> None:
        stamp = (start + timedelta(seconds=second)).isoformat()
        twin.update({"timestamp": stamp, "production_line": {"temperature": temperature}})
        twin.wait_for_forecast(timeout=10)

    for second in range(20):  # a steady line
        feed(second, 22.0 + 0.05 * (second % 2))
    assert not [e for e in captured if isinstance(e, ForecastEvent)]
    # then the temperature ramps at 0.5 degrees a second towards the 27.0 limit
    second, temperature = 20, 22.0
    while not [e for e in captured if isinstance(e, ForecastEvent)]:
        second, temperature = second + 1, temperature + 0.5
        assert temperature < 27.0, "no forecast before the breach"
        feed(second, temperature)
    forecast = next(e for e in captured if isinstance(e, ForecastEvent))
    assert forecast.severity is EventSeverity.WARNING
    assert "predicted to exceed 27.0" in forecast.message
    assert forecast.details["forecaster"] == "statistical:damped_holt"
    assert 0 < forecast.details["seconds_ahead"] <= 30
    assert twin.active_alarms == {}
    while temperature <= 27.0:
        second, temperature = second + 1, temperature + 0.5
        feed(second, temperature)
    breaches = [e for e in captured if isinstance(e, ThresholdEvent)]
    assert len(breaches) == 1 and captured.index(forecast) < captured.index(breaches[0])


def test_a_new_twin_learns_from_the_state_history(tmp_path: Path) -> None:
    manager = StateManager()
    start = datetime.now(UTC)
    for second in range(30):
        stamp = (start + timedelta(seconds=second)).isoformat()
        manager.update_state(
            {"timestamp": stamp, "production_line": {"temperature": 20.0 + 0.1 * second}}
        )
    twin = DigitalTwin(state_manager=manager)
    twin.initialize()
    checker = twin.forecast_checker
    assert checker is not None and checker.statistical is not None
    assert checker.statistical.samples("production_line.temperature") == 30  # the history
