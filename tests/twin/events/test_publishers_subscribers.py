"""Publishers (events they build, configuration switches) and the bundled subscribers."""

from __future__ import annotations

import logging

import pytest

from circman5.manufacturing.digital_twin.event_notification.event_manager import (
    EventManager,
    event_manager,
)
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
)
from circman5.manufacturing.digital_twin.event_notification.publishers import (
    DigitalTwinPublisher,
    EventPublisherBase,
    OptimizationPublisher,
    UserActionPublisher,
)
from circman5.manufacturing.digital_twin.event_notification.subscribers import (
    AlarmCollector,
    EventSubscriberBase,
    LoggingSubscriber,
    RecentEventsSubscriber,
    ThresholdAlertSubscriber,
)

STATE = {"timestamp": "2025-02-24T14:30:22.123456", "system_status": "running"}


def received() -> list[Event]:
    return event_manager.get_events(limit=None)  # type: ignore[arg-type]


# -- publishers --------------------------------------------------------------------------------


def test_base_publisher_sets_its_source_unless_the_event_has_one() -> None:
    publisher = EventPublisherBase("lca_integration")
    plain, own = Event(message="plain"), Event(message="own", source="sensor_7")
    publisher.publish(plain)
    publisher.publish(own)
    assert plain.source == "lca_integration"
    assert own.source == "sensor_7"
    assert {e.message: e.source for e in received()} == {
        "plain": "lca_integration",
        "own": "sensor_7",
    }


def test_publishers_use_the_singleton_or_the_given_manager() -> None:
    assert DigitalTwinPublisher().event_manager is event_manager
    other = EventManager.standalone(config={"persistence_enabled": False})
    assert other is not event_manager
    seen: list[Event] = []
    other.subscribe(seen.append)
    DigitalTwinPublisher(manager=other).publish_event(EventCategory.PROCESS, "private")
    assert [e.message for e in seen] == ["private"]
    assert received() == []


def test_threshold_event_from_the_twin_publisher() -> None:
    event = DigitalTwinPublisher().publish_parameter_threshold_event(
        parameter_path="production_line.temperature",
        parameter_name="Temperature",
        threshold=25.0,
        actual_value=26.5,
        state=STATE,
        severity=EventSeverity.CRITICAL,
    )
    assert isinstance(event, ThresholdEvent)
    assert event.source == "digital_twin"
    assert event.severity is EventSeverity.CRITICAL
    assert event.details == {
        "parameter": "Temperature",
        "threshold": 25.0,
        "actual_value": 26.5,
        "parameter_path": "production_line.temperature",
        "state_timestamp": "2025-02-24T14:30:22.123456",
    }
    assert received() == [event]


def test_threshold_severity_defaults_to_the_configured_alert_severity() -> None:
    event_manager.configure(config={"default_alert_severity": "error"})
    event = DigitalTwinPublisher().publish_parameter_threshold_event(
        "production_line.temperature", "Temperature", 25.0, 26.5, state={}
    )
    assert event is not None
    assert event.severity is EventSeverity.ERROR
    assert event.details["state_timestamp"] == "unknown"


def test_cleared_and_forecast_events_from_the_twin_publisher() -> None:
    publisher = DigitalTwinPublisher()
    cleared = publisher.publish_threshold_cleared_event(
        "production_line.temperature", "Temperature", 25.0, 24.0, STATE
    )
    forecast = publisher.publish_forecast_event(
        "production_line.temperature", 27.0, 12, 0.83, state=STATE
    )
    assert isinstance(cleared, ThresholdClearedEvent)
    assert cleared.message == "Temperature back within limit 25.0 with value 24.0"
    assert isinstance(forecast, ForecastEvent)
    assert forecast.message == (
        "production_line.temperature predicted to exceed 27.0 in 12 steps (p=0.83)"
    )
    assert [type(e) for e in received()] == [ForecastEvent, ThresholdClearedEvent]


def test_state_update_is_published_only_on_a_status_change() -> None:
    publisher = DigitalTwinPublisher()
    assert publisher.publish_state_update(STATE, {**STATE, "timestamp": "later"}) is None
    changed = publisher.publish_state_update(STATE, {**STATE, "system_status": "stopped"})
    forced = publisher.publish_state_update(STATE, STATE, force=True)
    assert isinstance(changed, SystemStateEvent)
    assert changed.message == "System state changed from running to stopped"
    assert forced is not None
    assert forced.message == "System state changed from running to running"
    assert len(received()) == 2


def test_error_simulation_and_generic_events() -> None:
    publisher = DigitalTwinPublisher()
    error = publisher.publish_error_event("SimulationError", "did not converge", "warning")
    simulation = publisher.publish_simulation_result("sim-1", {"steps": 10}, {"yield": 0.9}, 4.25)
    generic = publisher.publish_event("process", "line started", details={"line": 2})
    assert isinstance(error, ErrorEvent)
    assert error.severity is EventSeverity.WARNING
    assert simulation is not None
    assert simulation.message == "Simulation sim-1 completed with 4.25% improvement"
    assert simulation.details["results_summary"] == {"yield": 0.9}
    assert generic.category is EventCategory.PROCESS
    assert generic.details == {"line": 2}
    default = publisher.publish_simulation_result("sim-2", {}, {})
    assert default is not None
    assert default.details["improvement"] == 0.0
    assert len(received()) == 4


@pytest.mark.parametrize(
    ("option", "call"),
    [
        ("publish_state_changes", lambda p: p.publish_state_update({}, STATE)),
        (
            "publish_threshold_breaches",
            lambda p: p.publish_parameter_threshold_event("a.b", "b", 1.0, 2.0, STATE),
        ),
        (
            "publish_threshold_breaches",
            lambda p: p.publish_threshold_cleared_event("a.b", "b", 1.0, 0.5, STATE),
        ),
        ("publish_threshold_breaches", lambda p: p.publish_forecast_event("a.b", 1.0, 3, 0.9)),
        ("publish_simulation_results", lambda p: p.publish_simulation_result("s", {}, {}, 1.0)),
    ],
)
def test_configuration_switches_event_kinds_off(option: str, call: object) -> None:
    event_manager.configure(config={option: False})
    assert call(DigitalTwinPublisher()) is None  # type: ignore[operator]
    assert received() == []


def test_errors_are_published_even_when_other_kinds_are_off() -> None:
    event_manager.configure(
        config={
            "publish_state_changes": False,
            "publish_threshold_breaches": False,
            "publish_simulation_results": False,
        }
    )
    assert DigitalTwinPublisher().publish_error_event("E", "m") is not None
    assert len(received()) == 1


def test_optimization_and_user_publishers() -> None:
    opportunity = OptimizationPublisher().publish_optimization_opportunity(
        "energy", 7.5, "lower oven setpoint", details={"model": "gbr"}
    )
    result = OptimizationPublisher().publish_optimization_result(
        {"temperature": 25.0}, {"temperature": 23.5}, 3.2
    )
    action = UserActionPublisher().publish_user_action("op1", "set_setpoint", {"value": 23.5})
    assert isinstance(opportunity, OptimizationEvent)
    assert opportunity.source == "ai_optimization"
    assert opportunity.details["model"] == "gbr"
    assert result.message == "Optimization completed with 3.20% improvement"
    assert result.details["optimized_parameters"] == {"temperature": 23.5}
    assert isinstance(action, UserActionEvent)
    assert action.source == "human_interface"
    assert action.message == "User op1 performed action: set_setpoint"
    assert len(received()) == 3


# -- subscribers -------------------------------------------------------------------------------


def test_subscriber_base_registers_and_unregisters() -> None:
    class Counter(EventSubscriberBase):
        def __init__(self) -> None:
            super().__init__("counter")
            self.count = 0

        def handle_event(self, event: Event) -> None:
            self.count += 1

    counter = Counter()
    counter.register(severity=EventSeverity.ERROR)
    event_manager.publish(ErrorEvent("E", "one"))
    event_manager.publish(Event())
    counter.unregister()
    event_manager.publish(ErrorEvent("E", "two"))
    assert counter.count == 1
    with pytest.raises(NotImplementedError):
        EventSubscriberBase("abstract").handle_event(Event())


def test_logging_subscriber_logs_at_the_severity_level(caplog: pytest.LogCaptureFixture) -> None:
    subscriber = LoggingSubscriber(logger=logging.getLogger("test.events"))
    subscriber.register()
    with caplog.at_level(logging.DEBUG, logger="test.events"):
        event_manager.publish(Event(message="fyi", source="s"))
        event_manager.publish(ThresholdEvent("t", 1.0, 2.0, severity=EventSeverity.CRITICAL))
    assert [(r.levelno, r.getMessage()) for r in caplog.records] == [
        (logging.INFO, "[system] s: fyi"),
        (logging.CRITICAL, "[threshold] system: Threshold breach: t exceeded 1.0 with value 2.0"),
    ]


def test_alarm_collector_tracks_breaches_forecasts_and_clears() -> None:
    alarms = AlarmCollector()
    alarms.register()
    publisher = DigitalTwinPublisher()
    publisher.publish_forecast_event("production_line.temperature", 27.0, 5, 0.9)
    assert [e.details["parameter_path"] for e in alarms.forecasts()] == [
        "production_line.temperature"
    ]
    publisher.publish_parameter_threshold_event(
        "production_line.temperature", "Temperature", 27.0, 27.5, STATE
    )
    publisher.publish_parameter_threshold_event("environment.humidity", "Humidity", 60, 65, STATE)
    assert alarms.forecasts() == []
    assert [e.details["parameter_path"] for e in alarms.active_alarms()] == [
        "production_line.temperature",
        "environment.humidity",
    ]
    assert alarms.is_active("environment.humidity")
    publisher.publish_threshold_cleared_event(
        "production_line.temperature", "Temperature", 27.0, 26.0, STATE
    )
    assert [e.details["parameter_path"] for e in alarms.active_alarms()] == ["environment.humidity"]
    publisher.publish_error_event("E", "not an alarm")
    assert len(alarms.active_alarms()) == 1
    alarms.clear()
    assert alarms.active_alarms() == []


def test_alarm_acknowledgement_reaches_the_store() -> None:
    alarms = ThresholdAlertSubscriber()
    alarms.register()
    event = DigitalTwinPublisher().publish_parameter_threshold_event(
        "production_line.temperature", "Temperature", 27.0, 27.5, STATE
    )
    assert event is not None
    assert alarms.acknowledge("production_line.temperature") is True
    assert alarms.acknowledge("unknown.path") is False
    assert alarms.active_alarms()[0].acknowledged is True
    assert event_manager.get_events()[0].acknowledged is True


def test_alarm_collector_ignores_other_categories_when_subscribed_to_all() -> None:
    alarms = AlarmCollector()
    alarms.register(category=None)
    event_manager.publish(Event(details={"parameter": "x"}))
    assert alarms.active_alarms() == []


def test_recent_events_subscriber() -> None:
    recent = RecentEventsSubscriber(maxlen=3)
    recent.register()
    for i in range(5):
        event_manager.publish(Event(message=str(i)))
    event_manager.publish(ErrorEvent("E", "x", severity=EventSeverity.CRITICAL))
    assert [e.message for e in recent.events()] == ["Error: E - x", "4", "3"]
    assert [e.message for e in recent.events(limit=1)] == ["Error: E - x"]
    assert [e.message for e in recent.events(category=EventCategory.SYSTEM)] == ["4", "3"]
    assert len(recent.events(severity=EventSeverity.CRITICAL)) == 1
    recent.clear()
    assert recent.events() == []
