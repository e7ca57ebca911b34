"""The problem-reporter contract every part may use, and its logging default.

Connectors, sinks and the synchronization engine report their operational problems (a lost
connection, a malformed payload, an output that refuses writes) to one injected
:class:`ProblemReporter`; the composition root hands them one that turns reports into twin error
events (``EventProblemReporter`` in ``manufacturing.digital_twin.event_notification.reporter``).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

__all__ = ["LoggingProblemReporter", "ProblemReporter", "RateLimitedReporter"]

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


@dataclass
class _Window:
    start: float
    suppressed: int
    message: str
    details: dict[str, object]
    severity: str
    error_type: str


class RateLimitedReporter:
    """Aggregates repeated problems so that a flood of bad input is not a flood of events.

    The first problem of a kind (``error_type``) is reported at once; further ones within
    ``interval_s`` are only counted, and :meth:`flush` (called periodically by the connector)
    reports them as one summary (``"1234 more MalformedInput problem(s) ..."``) with the last
    problem's details and the count in ``details["suppressed"]``. ``clock`` is injectable.
    """

    def __init__(
        self,
        reporter: ProblemReporter,
        source: str,
        interval_s: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._reporter = reporter
        self._source = source
        self._interval = interval_s
        self._clock = clock
        self._windows: dict[str, _Window] = {}
        self.reported = 0

    def note(
        self,
        error_type: str,
        message: str,
        details: dict[str, object] | None = None,
        severity: str = "warning",
        key: str | None = None,
    ) -> None:
        """Report (or count) one problem; ``key`` (default ``error_type``) groups the repeats,
        e.g. one window per connection failure reason."""
        now = self._clock()
        details = {"source": self._source, **(details or {})}
        group = key or error_type
        window = self._windows.get(group)
        if window is None or now - window.start >= self._interval:
            if window is not None and window.suppressed:
                self._summary(window)
            self._windows[group] = _Window(now, 0, message, details, severity, error_type)
            self._emit(severity, error_type, message, details)
            return
        window.suppressed += 1
        window.message = message
        window.details = details
        window.severity = severity

    def flush(self) -> None:
        """Report the summaries of windows that have ended."""
        now = self._clock()
        for group, window in list(self._windows.items()):
            if now - window.start < self._interval:
                continue
            if window.suppressed:
                self._summary(window)
                window.start = now
                window.suppressed = 0
            else:
                del self._windows[group]

    def _summary(self, window: _Window) -> None:
        error_type = window.error_type
        details = dict(window.details)
        details["suppressed"] = window.suppressed
        details["last_message"] = window.message
        self._emit(
            window.severity,
            error_type,
            f"{window.suppressed} more {error_type} problem(s) from {self._source} in the last "
            f"{self._interval:.1f} s; last: {window.message}",
            details,
        )

    def _emit(
        self, severity: str, error_type: str, message: str, details: dict[str, object]
    ) -> None:
        self.reported += 1
        try:
            self._reporter.report(severity, error_type, message, details)
        except Exception:  # a reporter must not raise; if it does, ingestion still goes on
            logger.exception("problem reporter failed")
