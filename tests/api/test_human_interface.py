"""The spec's human interface objects: InterfaceManager, DigitalTwinAdapter, diagnostics."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from circman5.manufacturing.digital_twin.core.twin_core import DigitalTwin
from circman5.manufacturing.digital_twin.event_notification.event_manager import event_manager
from circman5.manufacturing.digital_twin.event_notification.event_types import (
    Event,
    EventCategory,
)
from circman5.manufacturing.human_interface.adapters.digital_twin_adapter import (
    DigitalTwinAdapter,
    digital_twin_adapter,
)
from circman5.manufacturing.human_interface.core.interface_manager import (
    InterfaceManager,
    interface_manager,
)
from circman5.manufacturing.human_interface.diagnostics import (
    overall_status,
    run_system_diagnostics,
)


def wait_for(condition: Any, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.01)


def test_system_integration_as_in_the_implementation_guide() -> None:
    """Implementation guide 6.3, as written (the fixed sleep replaced by a bounded wait)."""
    DigitalTwin._reset_instance()
    twin = DigitalTwin()
    twin.initialize()
    digital_twin_adapter.initialize()

    captured_events: list[Event] = []
    event_lock = threading.Lock()

    def event_handler(event: Event) -> None:
        with event_lock:
            captured_events.append(event)

    event_manager.subscribe(event_handler)
    try:
        parameters = {
            "production_line.temperature": 24.0,
            "production_line.production_rate": 10.0,
        }
        simulation_results = digital_twin_adapter.run_simulation(steps=5, parameters=parameters)
        wait_for(lambda: len(captured_events) > 0)
    finally:
        event_manager.unsubscribe(event_handler)

    assert len(simulation_results) == 6
    assert len(captured_events) > 0
    final_state = simulation_results[-1]
    assert "production_line" in final_state
    assert "temperature" in final_state["production_line"]
    assert final_state["production_line"]["temperature"] > 23.0
    assert digital_twin_adapter.digital_twin is twin


def test_interface_manager_integration_as_in_the_implementation_guide() -> None:
    """Implementation guide 5.1: initialize the adapter, register it, subscribe to events."""
    seen: list[str] = []

    def _handle_system_event(event: Event) -> None:
        seen.append(f"system:{event.message}")

    def _handle_threshold_event(event: Event) -> None:
        seen.append(f"threshold:{event.details['parameter']}")

    assert digital_twin_adapter.initialize()  # initializes the twin when nobody has
    interface_manager.register_component("digital_twin", digital_twin_adapter)
    event_manager.subscribe(_handle_system_event, category=EventCategory.SYSTEM)
    event_manager.subscribe(_handle_threshold_event, category=EventCategory.THRESHOLD)
    try:
        twin = digital_twin_adapter.digital_twin
        high = twin.thresholds["production_line.temperature"].high
        assert high is not None
        twin.update({"production_line": {"temperature": high + 1.0}})
    finally:
        event_manager.unsubscribe(_handle_system_event)
        event_manager.unsubscribe(_handle_threshold_event)
    assert "threshold:production_line.temperature" in seen
    assert interface_manager.get_component("digital_twin") is digital_twin_adapter
    result = interface_manager.handle_command("get_active_alarms", {})
    assert result == {
        "handled": True,
        "success": True,
        "alarms": {"production_line.temperature": "high"},
    }


def test_singletons_and_reset() -> None:
    assert InterfaceManager() is interface_manager
    assert DigitalTwinAdapter() is digital_twin_adapter
    interface_manager.register_component("x", object())
    InterfaceManager._reset_instance()
    assert interface_manager.components == {}
    assert InterfaceManager() is interface_manager


def test_adapter_follows_a_reset_twin(twin: DigitalTwin) -> None:
    digital_twin_adapter.initialize()
    assert digital_twin_adapter.digital_twin is twin
    DigitalTwin._reset_instance()
    fresh = DigitalTwin()
    fresh.initialize()
    assert digital_twin_adapter.digital_twin is fresh
    assert digital_twin_adapter.get_current_state() == fresh.get_current_state()


class Counter:
    command_roles = {"count": "viewer", "explode": "viewer"}

    def __init__(self) -> None:
        self.count = 0

    def handle_command(self, command: str, params: dict[str, Any]) -> dict[str, Any]:
        if command == "count":
            self.count += int(params.get("by", 1))
            return {"handled": True, "success": True, "count": self.count}
        if command == "explode":
            raise RuntimeError("boom")
        return {"handled": False}


def test_handle_command_delegates_and_reports() -> None:
    counter = Counter()
    interface_manager.register_component("counter", counter)
    executed: list[dict[str, Any]] = []
    interface_manager.register_event_handler("command_executed", executed.append)
    assert interface_manager.handle_command("count", {"by": 2})["count"] == 2
    assert executed == [{"command": "count", "params": {"by": 2}}]
    assert interface_manager.handle_command("change_view", {"view_name": "alerts"}) == {
        "success": True,
        "view": "alerts",
    }
    assert interface_manager.state.active_view == "alerts"
    with pytest.raises(ValueError, match="unknown view"):
        interface_manager.handle_command("change_view", {"view_name": "nowhere"})
    assert interface_manager.handle_command("fly", {}) == {
        "success": False,
        "error": "Unknown command",
    }
    failed = interface_manager.handle_command("explode", {})
    assert failed["success"] is False and failed["error"] == "boom"
    assert interface_manager.required_role("count") == "viewer"
    assert interface_manager.required_role("fly") is None


def test_diagnostics_as_in_the_technical_manual(twin: DigitalTwin) -> None:
    results = run_system_diagnostics()
    assert results["digital_twin"]["status"] == "ok"
    assert results["digital_twin"]["details"]["initialized"] is True
    assert results["event_system"]["status"] == "ok"
    assert results["event_system"]["details"]["events_accessible"] is True
    assert results["simulation_engine"]["status"] == "ok"
    assert overall_status(results) == "ok"


def test_diagnostics_report_failures_without_failing() -> None:
    not_started = DigitalTwin()  # never initialized

    def broken() -> dict[str, Any]:
        raise OSError("disk on fire")

    results = run_system_diagnostics(twin=not_started, extra_checks={"disk": broken})
    assert results["digital_twin"]["status"] == "error"
    assert results["digital_twin"]["details"]["initialized"] is False
    assert results["disk"] == {"status": "error", "details": "OSError: disk on fire"}
    assert overall_status(results) == "error"


def test_diagnostics_route(client: Any, auth: Any) -> None:
    body = client.get("/api/diagnostics", headers=auth("engineer")).json()
    assert body["status"] in ("ok", "warning")
    assert body["components"]["digital_twin"]["status"] == "ok"
    assert body["components"]["users"]["details"]["admins"] == 1
    assert body["components"]["live_push"]["status"] == "ok"
    assert "digital_twin" in body["components"]["interface_manager"]["details"]["components"]
