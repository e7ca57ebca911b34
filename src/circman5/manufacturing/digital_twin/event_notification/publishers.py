"""Event publishers: one per component, each stamping its events with its source name.

Every publisher takes the event manager it publishes to (default: the ``event_manager``
singleton). The ``publish_*`` methods return the event they published, or None when the
``EVENT_NOTIFICATION`` configuration switched that kind of event off
(``publish_state_changes``, ``publish_threshold_breaches``, ``publish_simulation_results``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .event_manager import EventManager, event_manager
from .event_types import (
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

__all__ = [
    "DigitalTwinPublisher",
    "EventPublisherBase",
    "OptimizationPublisher",
    "UserActionPublisher",
]


class EventPublisherBase:
    """Base class for event publishers."""

    def __init__(self, source_name: str, manager: EventManager | None = None) -> None:
        self.source_name = source_name
        self.event_manager = manager if manager is not None else event_manager

    def publish(self, event: Event) -> None:
        """Publish ``event``; one without a source of its own (empty or the default ``"system"``)
        gets this publisher's source name."""
        if not event.source or event.source == "system":
            event.source = self.source_name
        self.event_manager.publish(event)

    def _enabled(self, option: str) -> bool:
        return bool(self.event_manager.setting(option))


class DigitalTwinPublisher(EventPublisherBase):
    """Publisher for the digital twin's events (source ``digital_twin``)."""

    def __init__(self, manager: EventManager | None = None) -> None:
        super().__init__("digital_twin", manager)

    def _alert_severity(self, severity: EventSeverity | str | None) -> EventSeverity:
        if severity is None:
            return EventSeverity(self.event_manager.setting("default_alert_severity"))
        return EventSeverity(severity)

    def publish_state_update(
        self,
        previous_state: Mapping[str, Any],
        updated_state: Mapping[str, Any],
        force: bool = False,
    ) -> Event | None:
        """Publish a SystemStateEvent when ``system_status`` changed (always with ``force``).

        The twin calls this after every update; an event saying the status changed from
        "running" to "running" would only flood the log, so none is published then.
        """
        if not self._enabled("publish_state_changes"):
            return None
        previous = str(previous_state.get("system_status", "unknown"))
        new = str(updated_state.get("system_status", "unknown"))
        if previous == new and not force:
            return None
        event = SystemStateEvent(
            previous_state=previous,
            new_state=new,
            severity=EventSeverity.INFO,
            source=self.source_name,
            details={"timestamp": updated_state.get("timestamp")},
        )
        self.publish(event)
        return event

    def publish_parameter_threshold_event(
        self,
        parameter_path: str,
        parameter_name: str,
        threshold: float,
        actual_value: float,
        state: Mapping[str, Any],
        severity: EventSeverity | str | None = None,
    ) -> Event | None:
        """Publish a threshold breach (severity default: ``default_alert_severity``)."""
        if not self._enabled("publish_threshold_breaches"):
            return None
        event = ThresholdEvent(
            parameter=parameter_name,
            threshold=threshold,
            actual_value=actual_value,
            severity=self._alert_severity(severity),
            source=self.source_name,
            details={
                "parameter_path": parameter_path,
                "state_timestamp": state.get("timestamp", "unknown"),
            },
        )
        self.publish(event)
        return event

    def publish_threshold_cleared_event(
        self,
        parameter_path: str,
        parameter_name: str,
        threshold: float,
        actual_value: float,
        state: Mapping[str, Any],
    ) -> Event | None:
        """Publish that a breached parameter is back within its limit (severity INFO)."""
        if not self._enabled("publish_threshold_breaches"):
            return None
        event = ThresholdClearedEvent(
            parameter=parameter_name,
            threshold=threshold,
            actual_value=actual_value,
            source=self.source_name,
            details={
                "parameter_path": parameter_path,
                "state_timestamp": state.get("timestamp", "unknown"),
            },
        )
        self.publish(event)
        return event

    def publish_forecast_event(
        self,
        parameter_path: str,
        threshold: float,
        steps_ahead: int,
        probability: float,
        direction: str = "exceed",
        state: Mapping[str, Any] | None = None,
        severity: EventSeverity | str = EventSeverity.WARNING,
    ) -> Event | None:
        """Publish a ForecastEvent: ``parameter_path`` predicted to cross ``threshold``."""
        if not self._enabled("publish_threshold_breaches"):
            return None
        event = ForecastEvent(
            parameter=parameter_path,
            threshold=threshold,
            steps_ahead=steps_ahead,
            probability=probability,
            direction=direction,
            severity=EventSeverity(severity),
            source=self.source_name,
            details={
                "parameter_path": parameter_path,
                "state_timestamp": (state or {}).get("timestamp", "unknown"),
            },
        )
        self.publish(event)
        return event

    def publish_error_event(
        self,
        error_type: str,
        error_message: str,
        severity: EventSeverity | str = EventSeverity.ERROR,
        stacktrace: str | None = None,
    ) -> Event:
        """Publish an ErrorEvent."""
        event = ErrorEvent(
            error_type=error_type,
            error_message=error_message,
            severity=EventSeverity(severity),
            stacktrace=stacktrace,
            source=self.source_name,
        )
        self.publish(event)
        return event

    def publish_simulation_result(
        self,
        simulation_id: str,
        parameters: Mapping[str, Any],
        results: object,
        improvement: float = 0.0,
    ) -> Event | None:
        """Publish a PROCESS event summarising a finished simulation (``results``, JSON data, goes
        into the event's details as ``results_summary``)."""
        if not self._enabled("publish_simulation_results"):
            return None
        event = Event(
            category=EventCategory.PROCESS,
            severity=EventSeverity.INFO,
            source=self.source_name,
            message=f"Simulation {simulation_id} completed with {improvement:.2f}% improvement",
            details={
                "simulation_id": simulation_id,
                "parameters": dict(parameters),
                "results_summary": results,
                "improvement": improvement,
            },
        )
        self.publish(event)
        return event

    def publish_event(
        self,
        category: EventCategory | str,
        message: str,
        severity: EventSeverity | str = EventSeverity.INFO,
        details: Mapping[str, Any] | None = None,
    ) -> Event:
        """Publish a plain Event of any category."""
        event = Event(
            category=EventCategory(category),
            severity=EventSeverity(severity),
            source=self.source_name,
            message=message,
            details=dict(details or {}),
        )
        self.publish(event)
        return event


class OptimizationPublisher(EventPublisherBase):
    """Publisher for the AI optimization (source ``ai_optimization``)."""

    def __init__(self, manager: EventManager | None = None) -> None:
        super().__init__("ai_optimization", manager)

    def publish_optimization_opportunity(
        self,
        optimization_type: str,
        potential_improvement: float,
        recommended_action: str,
        severity: EventSeverity | str = EventSeverity.INFO,
        details: Mapping[str, Any] | None = None,
    ) -> Event:
        """Publish an OptimizationEvent (an improvement the optimizer found)."""
        event = OptimizationEvent(
            optimization_type=optimization_type,
            potential_improvement=potential_improvement,
            recommended_action=recommended_action,
            severity=EventSeverity(severity),
            source=self.source_name,
            details=dict(details or {}),
        )
        self.publish(event)
        return event

    def publish_optimization_result(
        self,
        original_parameters: Mapping[str, Any],
        optimized_parameters: Mapping[str, Any],
        improvement: float,
        details: Mapping[str, Any] | None = None,
    ) -> Event:
        """Publish the outcome of an optimization run (category OPTIMIZATION, INFO)."""
        event = Event(
            category=EventCategory.OPTIMIZATION,
            severity=EventSeverity.INFO,
            source=self.source_name,
            message=f"Optimization completed with {improvement:.2f}% improvement",
            details={
                "original_parameters": dict(original_parameters),
                "optimized_parameters": dict(optimized_parameters),
                "improvement": improvement,
                **(details or {}),
            },
        )
        self.publish(event)
        return event


class UserActionPublisher(EventPublisherBase):
    """Publisher for the human interface (source ``human_interface``)."""

    def __init__(self, manager: EventManager | None = None) -> None:
        super().__init__("human_interface", manager)

    def publish_user_action(
        self,
        user_id: str,
        action: str,
        action_details: Mapping[str, Any] | None = None,
        severity: EventSeverity | str = EventSeverity.INFO,
    ) -> Event:
        """Publish a UserActionEvent (a command, a login, a setting changed, ...)."""
        event = UserActionEvent(
            user_id=user_id,
            action=action,
            action_details=dict(action_details or {}),
            severity=EventSeverity(severity),
            source=self.source_name,
        )
        self.publish(event)
        return event
