"""The usage examples of the event API document (sections 5 and 6), run as written."""

from __future__ import annotations

import pytest


def test_5_1_subscribing_to_events(capsys: pytest.CaptureFixture[str]) -> None:
    from circman5.manufacturing.digital_twin.event_notification.event_manager import (
        event_manager,
    )
    from circman5.manufacturing.digital_twin.event_notification.event_types import (
        EventCategory,
        EventSeverity,
    )

    # Define event handler
    def handle_threshold_event(event):  # type: ignore[no-untyped-def]
        print(f"Threshold breach: {event.message}")
        print(f"Parameter: {event.details['parameter']}")
        print(f"Value: {event.details['actual_value']}")
        print(f"Threshold: {event.details['threshold']}")

    # Subscribe to threshold events
    event_manager.subscribe(handle_threshold_event, category=EventCategory.THRESHOLD)

    # Subscribe to critical events regardless of category
    def handle_critical_event(event):  # type: ignore[no-untyped-def]
        print(f"CRITICAL: {event.message}")

    event_manager.subscribe(handle_critical_event, severity=EventSeverity.CRITICAL)

    # (not in the document) publish something both handlers want
    from circman5.manufacturing.digital_twin.event_notification.event_types import (
        ThresholdEvent,
    )

    event_manager.publish(
        ThresholdEvent("temperature", 25.0, 31.0, severity=EventSeverity.CRITICAL)
    )
    assert capsys.readouterr().out.splitlines() == [
        "Threshold breach: Threshold breach: temperature exceeded 25.0 with value 31.0",
        "Parameter: temperature",
        "Value: 31.0",
        "Threshold: 25.0",
        "CRITICAL: Threshold breach: temperature exceeded 25.0 with value 31.0",
    ]


def test_5_2_publishing_events() -> None:
    from circman5.manufacturing.digital_twin.event_notification.event_manager import (
        event_manager,
    )
    from circman5.manufacturing.digital_twin.event_notification.event_types import (
        EventSeverity,
        ThresholdEvent,
    )

    # Create a threshold event
    threshold_event = ThresholdEvent(
        parameter="temperature",
        threshold=25.0,
        actual_value=26.5,
        severity=EventSeverity.WARNING,
    )

    # Publish the event
    event_manager.publish(threshold_event)

    assert event_manager.get_events() == [threshold_event]


def test_5_3_using_digital_twin_publisher() -> None:
    from circman5.manufacturing.digital_twin.event_notification.event_types import (
        EventSeverity,
    )
    from circman5.manufacturing.digital_twin.event_notification.publishers import (
        DigitalTwinPublisher,
    )

    # Create publisher
    publisher = DigitalTwinPublisher()

    # Publish threshold breach
    publisher.publish_parameter_threshold_event(
        parameter_path="production_line.temperature",
        parameter_name="Temperature",
        threshold=25.0,
        actual_value=26.5,
        state={"timestamp": "2025-02-24T14:30:22.123456"},
        severity=EventSeverity.WARNING,
    )

    # Publish error
    publisher.publish_error_event(
        error_type="SimulationError",
        error_message="Simulation failed to converge",
        severity=EventSeverity.ERROR,
    )

    from circman5.manufacturing.digital_twin.event_notification.event_manager import (
        event_manager,
    )

    error, threshold = event_manager.get_events()
    assert error.message == "Error: SimulationError - Simulation failed to converge"
    assert threshold.details["parameter_path"] == "production_line.temperature"
    assert threshold.details["state_timestamp"] == "2025-02-24T14:30:22.123456"
    assert {error.source, threshold.source} == {"digital_twin"}


def test_5_4_event_filtering() -> None:
    from circman5.manufacturing.digital_twin.event_notification.event_manager import (
        event_manager,
    )
    from circman5.manufacturing.digital_twin.event_notification.event_types import (
        EventCategory,
    )

    # Define a filter for threshold events
    def temperature_filter(event):  # type: ignore[no-untyped-def]
        # Only process temperature threshold events
        if "parameter" in event.details and event.details["parameter"] == "temperature":  # noqa: SIM103 (as written)
            return True
        return False

    # Add the filter
    event_manager.add_filter(EventCategory.THRESHOLD, temperature_filter)

    from circman5.manufacturing.digital_twin.event_notification.event_types import (
        ThresholdEvent,
    )

    seen: list[str] = []
    event_manager.subscribe(lambda e: seen.append(e.details["parameter"]))
    event_manager.publish(ThresholdEvent("humidity", 60.0, 70.0))
    event_manager.publish(ThresholdEvent("temperature", 25.0, 26.5))
    assert seen == ["temperature"]


def test_5_5_event_retrieval() -> None:
    from circman5.manufacturing.digital_twin.event_notification.event_manager import (
        event_manager,
    )
    from circman5.manufacturing.digital_twin.event_notification.event_types import (
        Event,
        EventCategory,
        EventSeverity,
        ThresholdEvent,
    )

    event_manager.publish(ThresholdEvent("temperature", 25.0, 26.5))
    event_manager.publish(Event(severity=EventSeverity.WARNING, message="system warning"))
    event_manager.publish(Event(event_id="event_id_123456", message="to acknowledge"))

    # Get recent warning events
    warning_events = event_manager.get_events(severity=EventSeverity.WARNING, limit=10)

    # Get threshold events
    threshold_events = event_manager.get_events(category=EventCategory.THRESHOLD, limit=20)

    # Acknowledge an event
    event_manager.acknowledge_event("event_id_123456")

    # Clear old events
    event_manager.clear_events(older_than_days=30)

    assert warning_events[0].message == "system warning"
    assert len(warning_events) == 2
    assert len(threshold_events) == 1
    acknowledged = [e for e in event_manager.get_events() if e.acknowledged]
    assert [e.event_id for e in acknowledged] == ["event_id_123456"]
    assert len(event_manager.get_events()) == 3  # nothing is 30 days old


def test_6_thread_safety_example(capsys: pytest.CaptureFixture[str]) -> None:
    import threading

    from circman5.manufacturing.digital_twin.event_notification.event_manager import (
        event_manager,
    )
    from circman5.manufacturing.digital_twin.event_notification.event_types import (
        Event,
        EventCategory,
        EventSeverity,
    )

    # Define handler
    def event_handler(event):  # type: ignore[no-untyped-def]
        print(f"Received event: {event.message}")

    # Subscribe in main thread
    event_manager.subscribe(event_handler, category=EventCategory.SYSTEM)

    # Function to publish events from worker thread
    def publish_worker():  # type: ignore[no-untyped-def]
        for i in range(5):
            event = Event(
                category=EventCategory.SYSTEM,
                severity=EventSeverity.INFO,
                message=f"Worker thread event {i}",
                details={"thread_id": threading.current_thread().ident},
            )
            event_manager.publish(event)

    # Create and start worker thread
    worker = threading.Thread(target=publish_worker)
    worker.start()
    worker.join()

    assert capsys.readouterr().out.splitlines() == [
        f"Received event: Worker thread event {i}" for i in range(5)
    ]


def test_8_configuration_access() -> None:
    from circman5.adapters.services.constants_service import ConstantsService

    constants = ConstantsService()
    event_config = constants.get_digital_twin_config().get("EVENT_NOTIFICATION", {})
    persistence_enabled = event_config.get("persistence_enabled", True)
    max_events = event_config.get("max_events", 1000)

    from circman5.manufacturing.digital_twin.event_notification.event_manager import (
        event_manager,
    )

    assert event_manager.persistence_enabled is persistence_enabled
    assert event_manager.persistence.max_events == max_events
