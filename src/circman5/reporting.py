"""The problem-reporter contract every part may use, and its logging default.

Connectors, sinks and the synchronization engine report their operational problems (a lost
connection, a malformed payload, an output that refuses writes) to one injected
:class:`ProblemReporter`; the composition root hands them one that turns reports into twin error
events (``EventProblemReporter`` in ``manufacturing.digital_twin.event_notification.reporter``).
"""

from __future__ import annotations

import logging
from typing import Protocol

__all__ = ["LoggingProblemReporter", "ProblemReporter"]

logger = logging.getLogger(__name__)


class ProblemReporter(Protocol):
    """Receives a connector's operational problems (severity: info, warning, error, critical).

    The composition root turns reports into ``ErrorEvent``s. Must be cheap and must not raise.
    """

    def report(
        self, severity: str, error_type: str, message: str, details: dict[str, object]
    ) -> None: ...


_LEVELS = {
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
    "critical": logging.CRITICAL,
}


class LoggingProblemReporter:
    """The default reporter: one log record per report."""

    def __init__(self, log: logging.Logger | None = None) -> None:
        self._log = log or logger

    def report(
        self, severity: str, error_type: str, message: str, details: dict[str, object]
    ) -> None:
        self._log.log(
            _LEVELS.get(severity, logging.WARNING), "%s: %s %s", error_type, message, details
        )
