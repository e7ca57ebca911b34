"""Event subscribers: small, thread-safe consumers of the event stream.

* :class:`LoggingSubscriber` writes every event it receives to a logger, at a level matching
  its severity.
* :class:`AlarmCollector` (alias ``ThresholdAlertSubscriber``) keeps the active alarms: a
  threshold breach raises the alarm of its parameter, a "back within limit" event clears it, a
  forecast is kept apart until a breach or a clear supersedes it.
* :class:`RecentEventsSubscriber` keeps the last N events in memory (for an HMI or an API).

Handlers run in the publishing thread: they only take a short lock and never block.
"""

from __future__ import annotations

import logging
import threading
from collections import deque

from .event_manager import EventManager, event_manager
from .event_types import Event, EventCategory, EventSeverity

__all__ = [
    "AlarmCollector",
    "EventSubscriberBase",
    "LoggingSubscriber",
    "RecentEventsSubscriber",
    "ThresholdAlertSubscriber",
]

_LEVELS = {
    EventSeverity.INFO: logging.INFO,
    EventSeverity.WARNING: logging.WARNING,
    EventSeverity.ERROR: logging.ERROR,
    EventSeverity.CRITICAL: logging.CRITICAL,
}


class EventSubscriberBase:
    """Base class: ``register()`` subscribes :meth:`handle_event`, ``unregister()`` undoes it."""

    def __init__(self, name: str, manager: EventManager | None = None) -> None:
        self.name = name
        self.event_manager = manager if manager is not None else event_manager

    def handle_event(self, event: Event) -> None:
        raise NotImplementedError

    def register(
        self, category: EventCategory | None = None, severity: EventSeverity | None = None
    ) -> None:
        """Subscribe to events (all when neither category nor severity is given)."""
        self.event_manager.subscribe(self.handle_event, category=category, severity=severity)

    def unregister(self) -> None:
        """Remove every subscription of this subscriber."""
        self.event_manager.unsubscribe(self.handle_event)


class LoggingSubscriber(EventSubscriberBase):
    """Logs each event: ``[category] source: message`` at the severity's level."""

    def __init__(
        self,
        name: str = "event_logger",
        logger: logging.Logger | None = None,
        manager: EventManager | None = None,
    ) -> None:
        super().__init__(name, manager)
        self.logger = logger if logger is not None else logging.getLogger(__name__)

    def handle_event(self, event: Event) -> None:
        self.logger.log(
            _LEVELS[event.severity],
            "[%s] %s: %s",
            event.category.value,
            event.source,
            event.message,
        )


def _alarm_key(event: Event) -> str:
    details = event.details
    return str(details.get("parameter_path") or details.get("parameter") or event.message)


class AlarmCollector(EventSubscriberBase):
    """Keeps the active threshold alarms and forecasts, keyed by parameter path.

    The key is ``details["parameter_path"]`` (what :class:`DigitalTwinPublisher` sets), else
    ``details["parameter"]``. ``register()`` without arguments subscribes to THRESHOLD events.
    """

    def __init__(self, name: str = "alarms", manager: EventManager | None = None) -> None:
        super().__init__(name, manager)
        self._lock = threading.Lock()
        self._active: dict[str, Event] = {}
        self._forecasts: dict[str, Event] = {}

    def register(
        self,
        category: EventCategory | None = EventCategory.THRESHOLD,
        severity: EventSeverity | None = None,
    ) -> None:
        super().register(category=category, severity=severity)

    def handle_event(self, event: Event) -> None:
        if event.category is not EventCategory.THRESHOLD:
            return
        key = _alarm_key(event)
        details = event.details
        with self._lock:
            if details.get("cleared"):
                self._active.pop(key, None)
                self._forecasts.pop(key, None)
            elif details.get("forecast"):
                self._forecasts[key] = event
            else:
                self._forecasts.pop(key, None)
                self._active[key] = event

    def active_alarms(self) -> list[Event]:
        """The active alarms, oldest first."""
        with self._lock:
            return list(self._active.values())

    def forecasts(self) -> list[Event]:
        """The standing forecasts of a coming breach, oldest first."""
        with self._lock:
            return list(self._forecasts.values())

    def is_active(self, key: str) -> bool:
        with self._lock:
            return key in self._active

    def acknowledge(self, key: str) -> bool:
        """Acknowledge the active alarm of ``key`` (also in the event store); False if none."""
        with self._lock:
            event = self._active.get(key)
            if event is None:
                return False
            event.acknowledged = True
        self.event_manager.acknowledge_event(event.event_id)
        return True

    def clear(self) -> None:
        with self._lock:
            self._active.clear()
            self._forecasts.clear()


#: The name the implementation guide's wording suggests.
ThresholdAlertSubscriber = AlarmCollector


class RecentEventsSubscriber(EventSubscriberBase):
    """Keeps the last ``maxlen`` events it received, in memory."""

    def __init__(
        self, maxlen: int = 100, name: str = "recent_events", manager: EventManager | None = None
    ) -> None:
        super().__init__(name, manager)
        self._events: deque[Event] = deque(maxlen=maxlen)
        self._lock = threading.Lock()

    def handle_event(self, event: Event) -> None:
        with self._lock:
            self._events.append(event)

    def events(
        self,
        limit: int | None = None,
        category: EventCategory | None = None,
        severity: EventSeverity | None = None,
    ) -> list[Event]:
        """The kept events, newest first, optionally of one category and/or severity."""
        with self._lock:
            events = list(self._events)
        events.reverse()
        if category is not None:
            events = [e for e in events if e.category is EventCategory(category)]
        if severity is not None:
            events = [e for e in events if e.severity is EventSeverity(severity)]
        return events if limit is None else events[: max(limit, 0)]

    def clear(self) -> None:
        with self._lock:
            self._events.clear()
