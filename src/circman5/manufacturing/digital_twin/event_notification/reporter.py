"""The problem reporter the composition root hands to connectors, sinks and the engine.

It turns each operational problem (``report(severity, error_type, message, details)``, the
:class:`circman5.reporting.ProblemReporter` contract) into an ``ErrorEvent`` published to the
event manager, so problems reach the persistence, the MQTT events output and the HMI.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from circman5.manufacturing.digital_twin.event_notification.event_types import (
    ErrorEvent,
    Event,
    EventSeverity,
)

__all__ = ["EventProblemReporter"]

logger = logging.getLogger(__name__)


class EventProblemReporter:
    """A :class:`~circman5.reporting.ProblemReporter` that publishes ``ErrorEvent``s.

    ``publish`` defaults to the event manager singleton's ``publish``; the event's source is the
    report's ``details["source"]`` (or ``"connector"``), else ``default_source``. An unknown
    severity is published as a warning.
    """

    def __init__(
        self,
        publish: Callable[[Event], None] | None = None,
        default_source: str = "service",
    ) -> None:
        self._publish = publish
        self._default_source = default_source

    def report(
        self, severity: str, error_type: str, message: str, details: dict[str, object]
    ) -> None:
        try:
            level = EventSeverity(severity)
        except ValueError:
            level = EventSeverity.WARNING
        source = details.get("source") or details.get("connector") or self._default_source
        event = ErrorEvent(
            error_type=error_type,
            error_message=message,
            severity=level,
            source=str(source),
            details=dict(details),
        )
        publish = self._publish
        if publish is None:
            from circman5.manufacturing.digital_twin.event_notification.event_manager import (
                event_manager,
            )

            publish = event_manager.publish
        try:
            publish(event)
        except Exception:  # reporting must never break ingestion
            logger.exception("publishing an error event failed")
