"""AlertPanel: the alerts of the HMI (events of warning severity and above) and their
acknowledgement, recorded as a ``UserActionEvent``."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, ClassVar

from circman5.manufacturing.digital_twin.event_notification.event_types import (
    EventCategory,
    EventSeverity,
    UserActionEvent,
)

if TYPE_CHECKING:
    from circman5.manufacturing.digital_twin.event_notification.event_manager import (
        EventManager,
    )

logger = logging.getLogger(__name__)

__all__ = ["ALERT_SEVERITIES", "AlertPanel"]

ALERT_SEVERITIES: tuple[EventSeverity, ...] = (
    EventSeverity.CRITICAL,
    EventSeverity.ERROR,
    EventSeverity.WARNING,
)
MAX_ALERTS = 1000


class AlertPanel:
    """Alert display and acknowledgement on top of the event manager."""

    command_roles: ClassVar[dict[str, str]] = {
        "get_alerts": "viewer",
        "acknowledge_alert": "operator",
    }

    def __init__(self, events: EventManager | None = None) -> None:
        self._events = events

    @property
    def events(self) -> EventManager:
        if self._events is None:
            from circman5.manufacturing.digital_twin.event_notification.event_manager import (
                event_manager,
            )

            self._events = event_manager
        return self._events

    def get_alerts(
        self,
        limit: int = 100,
        severity: EventSeverity | None = None,
        category: EventCategory | None = None,
        acknowledged: bool | None = None,
    ) -> list[dict[str, Any]]:
        """Alerts, newest first (``acknowledged=False``: only those still to acknowledge)."""
        if not 1 <= limit <= MAX_ALERTS:
            raise ValueError(f"limit must be between 1 and {MAX_ALERTS}")
        severities = (severity,) if severity is not None else ALERT_SEVERITIES
        found = []
        for level in severities:
            # Unacknowledged alerts may sit behind acknowledged ones: read more when filtering.
            fetch = limit if acknowledged is None else MAX_ALERTS
            for event in self.events.get_events(category=category, severity=level, limit=fetch):
                if acknowledged is None or event.acknowledged == acknowledged:
                    found.append(event)
        found.sort(key=lambda e: e.timestamp, reverse=True)
        return [e.to_dict() for e in found[:limit]]

    def acknowledge_alert(self, event_id: str, user: str = "hmi") -> bool:
        """Mark an event acknowledged and record who did it; False when it is unknown."""
        if not self.events.acknowledge_event(event_id):
            return False
        self.events.publish(
            UserActionEvent(
                user_id=user,
                action="acknowledge_alert",
                action_details={"event_id": event_id},
                source="hmi",
            )
        )
        logger.info("alert %s acknowledged by %s", event_id, user)
        return True

    def handle_command(self, command: str, params: dict[str, Any]) -> dict[str, Any]:
        if command == "get_alerts":
            limit = params.get("limit", 100)
            if isinstance(limit, bool) or not isinstance(limit, int):
                raise ValueError("limit must be an integer")
            return {"handled": True, "success": True, "alerts": self.get_alerts(limit=limit)}
        if command == "acknowledge_alert":
            event_id = params.get("event_id")
            if not isinstance(event_id, str) or not event_id:
                raise ValueError("event_id must be a non-empty string")
            user = str(params.get("user", "hmi"))
            ok = self.acknowledge_alert(event_id, user=user)
            result: dict[str, Any] = {"handled": True, "success": ok}
            if not ok:
                result["error"] = f"no event {event_id}"
            return result
        return {"handled": False}
