"""Event categories, severities and the typed events of the twin's event system.

Every event is a mutable dataclass (the documented API sets ``event.source`` and
``event.acknowledged`` after creation). ``to_dict``/``from_dict`` round-trip every event type:
``to_dict`` adds an ``event_type`` key (the class name) to the documented keys, and
``Event.from_dict`` uses it to rebuild the specialised class; ``SomeEvent.from_dict`` always
builds ``SomeEvent``. A dict without ``event_type`` becomes a plain :class:`Event`.

Timestamps: events created without one get ``datetime.now(timezone.utc).isoformat()``, an ISO
8601 string with an explicit ``+00:00`` offset. Timestamps given by callers are kept verbatim;
where they have no offset they are read as local time (Python's convention, and what the spec's
``datetime.now().isoformat()`` produces).
"""

from __future__ import annotations

import datetime
import random
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, ClassVar, TypedDict, TypeVar, Unpack

from circman5.quantities import decimals_for, format_quantity

__all__ = [
    "ErrorEvent",
    "Event",
    "EventCategory",
    "EventFields",
    "EventSeverity",
    "ForecastEvent",
    "OptimizationEvent",
    "SystemStateEvent",
    "ThresholdClearedEvent",
    "ThresholdEvent",
    "UserActionEvent",
    "now_iso",
    "now_stamp",
]

_E = TypeVar("_E", bound="Event")


# (whole millisecond, "YYYY-MM-DDTHH:MM:SS.mmm" of it in UTC): the date is formatted once per
# millisecond, the microseconds come from a table of 1000 texts; now_stamp() costs a quarter of
# datetime.now(UTC).isoformat() with its timestamp().
_milli_cache: tuple[int, str] = (-1, "")
_MICROS_UTC: tuple[str, ...] = tuple(f"{n:03d}+00:00" for n in range(1000))


def now_stamp() -> tuple[str, float]:
    """The current time as ISO 8601 (see :func:`now_iso`) and as seconds since the epoch.

    The seconds are exactly what ``datetime.fromisoformat(iso).timestamp()`` reads back from the
    text (whole microseconds), so a state stamped with both is found again by its timestamp.
    """
    global _milli_cache
    micros = time.time_ns() // 1000
    milli = micros // 1000
    cached_milli, prefix = _milli_cache
    if milli != cached_milli:
        second, fraction = divmod(milli, 1000)
        day_time = datetime.datetime.fromtimestamp(second, datetime.UTC)
        prefix = f"{day_time:%Y-%m-%dT%H:%M:%S}.{fraction:03d}"
        _milli_cache = (milli, prefix)
    return prefix + _MICROS_UTC[micros % 1000], micros / 1e6


def now_iso() -> str:
    """The current time as ISO 8601 with microseconds and an explicit UTC offset.

    Same format as ``datetime.now(timezone.utc).isoformat()`` (e.g.
    ``2025-02-24T14:30:22.123456+00:00``), except that ``.000000`` is never left out.
    """
    return now_stamp()[0]


_UUID_VERSION_4 = (0x4000 << 64) | (0x8000 << 48)
_UUID_MASK = ~((0xF000 << 64) | (0xC000 << 48))


def _new_id() -> str:
    """A random version-4 UUID string like ``str(uuid.uuid4())``, at a third of the cost.

    Event ids need uniqueness, not secrecy: ``random`` is re-seeded in forked children.
    """
    h = "%032x" % (random.getrandbits(128) & _UUID_MASK | _UUID_VERSION_4)
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


class EventCategory(Enum):
    """Categories for events."""

    SYSTEM = "system"
    PROCESS = "process"
    OPTIMIZATION = "optimization"
    THRESHOLD = "threshold"
    USER = "user"
    ERROR = "error"


class EventSeverity(Enum):
    """Severity levels for events."""

    INFO = "info"
    WARNING = "warning"
    ERROR = "error"
    CRITICAL = "critical"


def _category(value: Any) -> EventCategory:
    return value if isinstance(value, EventCategory) else EventCategory(value)


def _severity(value: Any) -> EventSeverity:
    return value if isinstance(value, EventSeverity) else EventSeverity(value)


@dataclass
class Event:
    """Base class for all events in the system."""

    event_id: str = field(default_factory=_new_id)
    timestamp: str = field(default_factory=now_iso)
    category: EventCategory = EventCategory.SYSTEM
    severity: EventSeverity = EventSeverity.INFO
    source: str = "system"
    message: str = ""
    details: dict[str, Any] = field(default_factory=dict)
    acknowledged: bool = False

    # Registry of specialised event classes by name, for from_dict.
    _registry: ClassVar[dict[str, type[Event]]] = {}

    def __init_subclass__(cls, **kwargs: object) -> None:
        super().__init_subclass__(**kwargs)
        Event._registry[cls.__name__] = cls

    def to_dict(self) -> dict[str, Any]:
        """Convert the event to a dictionary for serialization (JSON-compatible if details are)."""
        return {
            "event_id": self.event_id,
            "timestamp": self.timestamp,
            "category": self.category.value,
            "severity": self.severity.value,
            "source": self.source,
            "message": self.message,
            "details": self.details,
            "acknowledged": self.acknowledged,
            "event_type": type(self).__name__,
        }

    @classmethod
    def from_dict(cls: type[_E], data: dict[str, Any]) -> _E:
        """Create an event from a dictionary made by :meth:`to_dict` (or a subset of it).

        Missing keys get the documented defaults. Unknown category or severity values raise
        ``ValueError``.
        """
        target: type[Event] = cls
        if cls is Event:
            target = Event._registry.get(str(data.get("event_type", "Event")), Event)
        event = object.__new__(target)
        Event.__init__(
            event,
            event_id=str(data.get("event_id") or _new_id()),
            timestamp=str(data.get("timestamp") or now_iso()),
            category=_category(data.get("category", EventCategory.SYSTEM.value)),
            severity=_severity(data.get("severity", EventSeverity.INFO.value)),
            source=str(data.get("source", "system")),
            message=str(data.get("message", "")),
            details=dict(data.get("details") or {}),
            acknowledged=bool(data.get("acknowledged", False)),
        )
        return event  # type: ignore[return-value]


class EventFields(TypedDict, total=False):
    """The base :class:`Event` fields a specialised event takes as keywords. ``details`` are
    added to the event's own; ``category`` and ``message`` are the event's own (given ones are
    ignored)."""

    event_id: str
    timestamp: str
    severity: EventSeverity | str
    source: str
    details: Mapping[str, Any]
    acknowledged: bool
    category: EventCategory | str
    message: str


_OWN_FIELDS = ("severity", "details", "category", "message")


def _init_event(
    event: Event,
    category: EventCategory,
    default_severity: EventSeverity,
    message: str,
    details: dict[str, Any],
    kwargs: EventFields,
) -> None:
    """Shared constructor of the specialised events: ``kwargs`` are the base Event fields."""
    severity = _severity(kwargs.get("severity", default_severity))
    extra = kwargs.get("details")
    if extra:
        details.update(extra)
    base: dict[str, Any] = {k: v for k, v in kwargs.items() if k not in _OWN_FIELDS}
    Event.__init__(
        event,
        category=category,
        severity=severity,
        message=message,
        details=details,
        **base,
    )


class SystemStateEvent(Event):
    """Event for system state changes."""

    def __init__(self, previous_state: str, new_state: str, **kwargs: Unpack[EventFields]) -> None:
        _init_event(
            self,
            EventCategory.SYSTEM,
            EventSeverity.INFO,
            f"System state changed from {previous_state} to {new_state}",
            {"previous_state": previous_state, "new_state": new_state},
            kwargs,
        )


def _shown(threshold: float, value: float, unit: str, decimals: int | None) -> tuple[str, str]:
    """The limit and the value as a message shows them.

    Without a unit or decimals: as the spec's message has them (``exceeded 25.0 with value
    26.5``); with them (the twin passes the rule's): ``exceeded 27.00 °C with value 27.02 °C``.
    """
    if not unit and decimals is None:
        return str(threshold), str(value)
    places = decimals_for(threshold) if decimals is None else decimals
    return format_quantity(threshold, unit, places), format_quantity(value, unit, places)


class ThresholdEvent(Event):
    """Event for threshold breaches (severity WARNING unless given)."""

    def __init__(
        self,
        parameter: str,
        threshold: float,
        actual_value: float,
        *,
        unit: str = "",
        decimals: int | None = None,
        **kwargs: Unpack[EventFields],
    ) -> None:
        limit, value = _shown(threshold, actual_value, unit, decimals)
        details: dict[str, Any] = {
            "parameter": parameter,
            "threshold": threshold,
            "actual_value": actual_value,
        }
        if unit:
            details["unit"] = unit
        _init_event(
            self,
            EventCategory.THRESHOLD,
            EventSeverity.WARNING,
            f"Threshold breach: {parameter} exceeded {limit} with value {value}",
            details,
            kwargs,
        )


class ThresholdClearedEvent(Event):
    """A parameter that breached its threshold is back within the limit (severity INFO)."""

    def __init__(
        self,
        parameter: str,
        threshold: float,
        actual_value: float,
        *,
        unit: str = "",
        decimals: int | None = None,
        **kwargs: Unpack[EventFields],
    ) -> None:
        limit, value = _shown(threshold, actual_value, unit, decimals)
        details: dict[str, Any] = {
            "parameter": parameter,
            "threshold": threshold,
            "actual_value": actual_value,
            "cleared": True,
        }
        if unit:
            details["unit"] = unit
        _init_event(
            self,
            EventCategory.THRESHOLD,
            EventSeverity.INFO,
            f"{parameter} back within limit {limit} with value {value}",
            details,
            kwargs,
        )


class ForecastEvent(Event):
    """A forecast says a parameter will cross its threshold ``steps_ahead`` steps from now.

    ``direction`` is ``"exceed"`` (upper limit) or ``"fall below"`` (lower limit). The message
    reads e.g. ``production_line.temperature predicted to exceed 27.0 in 12 steps (p=0.83)``.
    Optional, keyword only: ``seconds_ahead`` (the expected time to the breach in seconds) and
    ``forecaster`` (``"process_model"`` or ``"statistical:<method>"``); given, they join the
    details, and the message gives the time in seconds and names the forecaster, e.g.
    ``... predicted to exceed 27.0 in 3.2 s (p=0.93, statistical:damped_holt)``.
    """

    DIRECTIONS: ClassVar[tuple[str, ...]] = ("exceed", "fall below")

    def __init__(
        self,
        parameter: str,
        threshold: float,
        steps_ahead: int,
        probability: float,
        direction: str = "exceed",
        *,
        seconds_ahead: float | None = None,
        forecaster: str | None = None,
        **kwargs: Unpack[EventFields],
    ) -> None:
        if direction not in self.DIRECTIONS:
            raise ValueError(f"direction must be one of {self.DIRECTIONS}, got {direction!r}")
        details: dict[str, Any] = {
            "parameter": parameter,
            "threshold": threshold,
            "steps_ahead": steps_ahead,
            "probability": probability,
            "direction": direction,
            "forecast": True,
        }
        if seconds_ahead is None:
            when = f"{steps_ahead} steps"
        else:
            details["seconds_ahead"] = seconds_ahead
            when = f"{seconds_ahead:.1f} s"
        by = ""
        if forecaster is not None:
            details["forecaster"] = forecaster
            by = f", {forecaster}"
        _init_event(
            self,
            EventCategory.THRESHOLD,
            EventSeverity.WARNING,
            f"{parameter} predicted to {direction} {threshold} in {when} (p={probability:.2f}{by})",
            details,
            kwargs,
        )


class OptimizationEvent(Event):
    """Event for optimization opportunities."""

    def __init__(
        self,
        optimization_type: str,
        potential_improvement: float,
        recommended_action: str,
        **kwargs: Unpack[EventFields],
    ) -> None:
        _init_event(
            self,
            EventCategory.OPTIMIZATION,
            EventSeverity.INFO,
            f"Optimization opportunity: {optimization_type} with "
            f"{potential_improvement:.2f}% improvement potential",
            {
                "optimization_type": optimization_type,
                "potential_improvement": potential_improvement,
                "recommended_action": recommended_action,
            },
            kwargs,
        )


class ErrorEvent(Event):
    """Event for system errors."""

    def __init__(
        self,
        error_type: str,
        error_message: str,
        stacktrace: str | None = None,
        **kwargs: Unpack[EventFields],
    ) -> None:
        _init_event(
            self,
            EventCategory.ERROR,
            EventSeverity.ERROR,
            f"Error: {error_type} - {error_message}",
            {"error_type": error_type, "error_message": error_message, "stacktrace": stacktrace},
            kwargs,
        )


class UserActionEvent(Event):
    """Event for user actions."""

    def __init__(
        self,
        user_id: str,
        action: str,
        action_details: dict[str, Any],
        **kwargs: Unpack[EventFields],
    ) -> None:
        _init_event(
            self,
            EventCategory.USER,
            EventSeverity.INFO,
            f"User {user_id} performed action: {action}",
            {"user_id": user_id, "action": action, "action_details": action_details},
            kwargs,
        )
