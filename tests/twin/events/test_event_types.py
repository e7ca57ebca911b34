"""Event types: defaults, messages, details, and the to_dict/from_dict round trip."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from circman5.manufacturing.digital_twin.event_notification.event_types import (
    ErrorEvent,
    Event,
    EventCategory,
    EventSeverity,
    ForecastEvent,
    OptimizationEvent,
    SystemStateEvent,
    ThresholdClearedEvent,
    ThresholdEvent,
    UserActionEvent,
    now_iso,
)


def test_enumerations_have_the_documented_values() -> None:
    assert [c.value for c in EventCategory] == [
        "system",
        "process",
        "optimization",
        "threshold",
        "user",
        "error",
    ]
    assert [s.value for s in EventSeverity] == ["info", "warning", "error", "critical"]


def test_event_defaults() -> None:
    event = Event()
    assert uuid.UUID(event.event_id).version == 4
    stamp = datetime.fromisoformat(event.timestamp)
    assert stamp.tzinfo is not None
    assert abs(datetime.now(UTC) - stamp) < timedelta(seconds=5)
    assert event.category is EventCategory.SYSTEM
    assert event.severity is EventSeverity.INFO
    assert event.source == "system"
    assert event.message == ""
    assert event.details == {}
    assert event.acknowledged is False


def test_event_ids_are_unique_and_details_not_shared() -> None:
    events = [Event() for _ in range(2000)]
    assert len({e.event_id for e in events}) == 2000
    events[0].details["x"] = 1
    assert events[1].details == {}


def test_now_iso_is_current_utc_with_microseconds() -> None:
    text = now_iso()
    stamp = datetime.fromisoformat(text)
    assert text.endswith("+00:00")
    assert len(text.split(".")[1]) == len("123456+00:00")
    assert abs(datetime.now(UTC) - stamp) < timedelta(seconds=5)


def test_to_dict_has_the_documented_keys() -> None:
    event = ThresholdEvent("temperature", 25.0, 26.5)
    data = event.to_dict()
    assert data == {
        "event_id": event.event_id,
        "timestamp": event.timestamp,
        "category": "threshold",
        "severity": "warning",
        "source": "system",
        "message": "Threshold breach: temperature exceeded 25.0 with value 26.5",
        "details": {"parameter": "temperature", "threshold": 25.0, "actual_value": 26.5},
        "acknowledged": False,
        "event_type": "ThresholdEvent",
    }


EXAMPLES: list[Event] = [
    Event(category=EventCategory.PROCESS, message="m", details={"a": [1, 2]}, source="x"),
    SystemStateEvent("initializing", "running"),
    ThresholdEvent("temperature", 25.0, 26.5, severity=EventSeverity.CRITICAL),
    ThresholdClearedEvent("production_line.temperature", 25.0, 24.0),
    ForecastEvent("production_line.temperature", 27.0, 12, 0.83),
    OptimizationEvent("energy", 12.345, "lower the oven setpoint"),
    ErrorEvent("SimulationError", "did not converge", stacktrace="trace"),
    UserActionEvent("op1", "set_parameter", {"temperature": 23.0}),
]


@pytest.mark.parametrize("event", EXAMPLES, ids=lambda e: type(e).__name__)
def test_round_trip_through_dict(event: Event) -> None:
    event.acknowledged = True
    rebuilt = Event.from_dict(event.to_dict())
    assert type(rebuilt) is type(event)
    assert rebuilt == event
    same_class = type(event).from_dict(event.to_dict())
    assert type(same_class) is type(event)
    assert same_class == event


def test_from_dict_fills_defaults_and_converts_values() -> None:
    event = Event.from_dict({"category": "threshold", "severity": "critical", "message": "m"})
    assert type(event) is Event
    assert event.category is EventCategory.THRESHOLD
    assert event.severity is EventSeverity.CRITICAL
    assert uuid.UUID(event.event_id)
    assert datetime.fromisoformat(event.timestamp)
    assert event.details == {}


@pytest.mark.parametrize("data", [{"category": "nope"}, {"severity": "loud"}])
def test_from_dict_rejects_unknown_enum_values(data: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        Event.from_dict(data)


def test_unknown_event_type_gives_a_plain_event() -> None:
    event = Event.from_dict({"event_type": "NotAThing", "message": "m"})
    assert type(event) is Event
    assert event.message == "m"


def test_specialised_messages_and_defaults() -> None:
    state = SystemStateEvent("idle", "running")
    assert (state.category, state.severity) == (EventCategory.SYSTEM, EventSeverity.INFO)
    assert state.message == "System state changed from idle to running"
    assert state.details == {"previous_state": "idle", "new_state": "running"}

    opt = OptimizationEvent("energy", 12.345, "lower setpoint")
    assert (opt.category, opt.severity) == (EventCategory.OPTIMIZATION, EventSeverity.INFO)
    assert opt.message == "Optimization opportunity: energy with 12.35% improvement potential"

    err = ErrorEvent("SimulationError", "Simulation failed to converge")
    assert (err.category, err.severity) == (EventCategory.ERROR, EventSeverity.ERROR)
    assert err.message == "Error: SimulationError - Simulation failed to converge"
    assert err.details["stacktrace"] is None

    user = UserActionEvent("op1", "start", {"line": 1})
    assert (user.category, user.severity) == (EventCategory.USER, EventSeverity.INFO)
    assert user.message == "User op1 performed action: start"


def test_threshold_cleared_event() -> None:
    event = ThresholdClearedEvent("production_line.temperature", 25.0, 24.5)
    assert event.category is EventCategory.THRESHOLD
    assert event.severity is EventSeverity.INFO
    assert event.message == "production_line.temperature back within limit 25.0 with value 24.5"
    assert event.details["cleared"] is True


def test_forecast_event_message_is_exact() -> None:
    event = ForecastEvent("production_line.temperature", 27.0, 12, 0.834)
    assert (
        event.message == "production_line.temperature predicted to exceed 27.0 in 12 steps (p=0.83)"
    )
    assert event.category is EventCategory.THRESHOLD
    assert event.severity is EventSeverity.WARNING
    low = ForecastEvent("environment.humidity", 30.0, 3, 0.5, direction="fall below")
    assert low.message == "environment.humidity predicted to fall below 30.0 in 3 steps (p=0.50)"
    assert low.details["direction"] == "fall below"
    assert low.details["forecast"] is True


def test_forecast_event_rejects_unknown_direction() -> None:
    with pytest.raises(ValueError, match="direction"):
        ForecastEvent("p", 1.0, 1, 0.5, direction="sideways")


def test_extra_details_keyword_arguments_and_string_severity() -> None:
    event = ThresholdEvent(
        "temperature",
        25.0,
        26.5,
        severity="error",
        details={"parameter_path": "production_line.temperature"},
        source="digital_twin",
        event_id="fixed-id",
        timestamp="2025-02-24T14:30:22.123456",
    )
    assert event.severity is EventSeverity.ERROR
    assert event.details["parameter_path"] == "production_line.temperature"
    assert event.details["parameter"] == "temperature"
    assert event.source == "digital_twin"
    assert event.event_id == "fixed-id"
    assert event.timestamp == "2025-02-24T14:30:22.123456"


def test_custom_event_as_in_the_implementation_guide() -> None:
    @dataclass
    class ManufacturingProcessEvent(Event):
        def __init__(
            self, process_type: str, process_change: str, efficiency_impact: float, **kwargs: Any
        ) -> None:
            details = {
                "process_type": process_type,
                "process_change": process_change,
                "efficiency_impact": efficiency_impact,
                **kwargs.pop("details", {}),
            }
            super().__init__(
                category=EventCategory.PROCESS,
                severity=EventSeverity.INFO,
                message=f"Process change: {process_type} {process_change} "
                f"(impact: {efficiency_impact:.2f}%)",
                details=details,
                **kwargs,
            )

    event = ManufacturingProcessEvent("lamination", "faster", 1.5)
    assert event.message == "Process change: lamination faster (impact: 1.50%)"
    rebuilt = Event.from_dict(event.to_dict())
    assert type(rebuilt) is ManufacturingProcessEvent
    assert rebuilt == event
