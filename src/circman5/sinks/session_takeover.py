"""Noticing a second instance of the same line: another MQTT client with our client id.

Two instances configured for the same site and line share the client id
``circman5-{site}-{line}``; the broker keeps closing the older connection. MQTT 5 brokers may say
so (DISCONNECT reason 0x8E "Session taken over"); mosquitto just closes the connection, so
connections that the broker closes again and again right after they were made count too.
:class:`TakeoverWatch` counts both and logs the first as an error naming the namespace.
"""

from __future__ import annotations

import logging
import time

logger = logging.getLogger("circman5.sinks.mqtt_events")

__all__ = ["SESSION_TAKEN_OVER", "TakeoverWatch"]

SESSION_TAKEN_OVER = 0x8E
#: Closed this many times in a row, each within ``QUICK_DROP_S`` of connecting.
QUICK_DROPS = 3
QUICK_DROP_S = 5.0


class TakeoverWatch:
    """Call :meth:`up` on every connect and :meth:`down` when the broker closes the link."""

    def __init__(self, client_id: str, namespace: str) -> None:
        self.client_id = client_id
        self.namespace = namespace
        self.takeovers = 0
        self._logged = False
        self._up_at = 0.0
        self._quick_drops = 0

    def up(self) -> None:
        self._up_at = time.monotonic()

    def down(self, reason_code: int | None) -> None:
        quick = time.monotonic() - self._up_at < QUICK_DROP_S
        self._quick_drops = self._quick_drops + 1 if quick else 0
        if reason_code == SESSION_TAKEN_OVER or self._quick_drops >= QUICK_DROPS:
            self.takeovers += 1
            if not self._logged:
                self._logged = True
                logger.error(
                    "MQTT output: another client connected as '%s' and took over the session: "
                    "is a second instance running for %s? Each line needs its own site/line.",
                    self.client_id,
                    self.namespace,
                )
