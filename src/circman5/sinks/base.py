"""The contracts every output shares: a sink, and Retry-After parsing.

A :class:`Sink` takes a batch and either stores it or raises
:class:`~circman5.errors.SinkUnavailable` (transient: retry later) or
:class:`~circman5.errors.SinkRejected` (permanent: this batch will never be accepted). The
:class:`~circman5.sinks.outbox.Outbox` in front of a sink turns that into at-least-once delivery.

Problems the outputs want the operator to see (a quarantined batch, an overflowing outbox, a server
that stays down) are logged once and go to the injected :class:`circman5.reporting.ProblemReporter`,
the same contract the connectors and the engine report to; the composition root connects it to the
twin's event manager.
"""

from __future__ import annotations

import email.utils
import time
from collections.abc import Sequence
from typing import Protocol


class Sink(Protocol):
    """Stores batches of records, or raises ``SinkUnavailable`` / ``SinkRejected``.

    ``records`` are the payloads the outbox holds, oldest first. A line-protocol sink sends them
    in one request (each record is one or more newline-terminated lines); the MQTT sink publishes
    each record as one message. ``write`` must return within its own timeout.
    """

    @property
    def name(self) -> str:
        """Short name for logs, metrics and events (``influxdb``, ``mqtt``, ...)."""
        ...

    async def write(self, records: Sequence[bytes]) -> None:
        """Store every record, or raise; returns only once the server accepted them."""
        ...


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or HTTP-date), else None."""
    if value is None:
        return None
    value = value.strip()
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))
