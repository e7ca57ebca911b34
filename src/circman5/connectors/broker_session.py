"""The base of the connectors on a broker session (MQTT, Sparkplug B host).

Such a connector counts as connected once the broker acknowledged its subscriptions; its paho
client and session come from the shared :class:`~circman5.mqtt_link.BrokerLink`. Messages arrive
in paho's thread and wait in the connector's inbox (its own shape per protocol) until the event
loop drains them: one wake-up per burst, ``drain_delay_ms`` after its first message.
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
from collections.abc import Sequence
from typing import Protocol

from circman5.connectors.base import BaseConnector
from circman5.mqtt_link import LinkDown, drain_soon
from circman5.reporting import ProblemReporter

__all__ = ["BrokerSessionConnector", "SessionSettings"]


class _PathTag(Protocol):
    @property
    def path(self) -> str: ...


class SessionSettings(Protocol):
    """What the base reads of a broker connector's settings."""

    @property
    def name(self) -> str: ...

    @property
    def max_buffered_samples(self) -> int: ...

    @property
    def drain_delay_ms(self) -> float: ...

    @property
    def tags(self) -> Sequence[_PathTag]: ...


class BrokerSessionConnector(BaseConnector):
    """A :class:`BaseConnector` whose connection is a broker session with subscriptions."""

    def __init__(self, settings: SessionSettings, reporter: ProblemReporter | None = None) -> None:
        super().__init__(
            settings.name, reporter, max_buffered_samples=settings.max_buffered_samples
        )
        # the twin paths known before any message (tags without ``{n}`` placeholders)
        self._static_paths = [tag.path for tag in settings.tags if "{" not in tag.path]
        self._inbox_limit = settings.max_buffered_samples
        self._drain_delay_s = settings.drain_delay_ms / 1000.0
        self._thread_dropped = 0  # refused in paho's thread: the inbox was full
        self._scheduled = False  # a drain is on its way
        self._loop: asyncio.AbstractEventLoop | None = None

    def paths(self) -> list[str]:
        return list(self._static_paths)

    def _extra_dropped(self) -> int:
        return self._thread_dropped

    # -- paho's thread ----------------------------------------------------------------------
    def _wake_drain(self) -> None:
        """Messages were just queued: one drain on the loop for the burst."""
        if not self._scheduled:
            self._scheduled = True
            loop = self._loop
            if loop is not None:
                with contextlib.suppress(RuntimeError):  # the loop is closed: shutting down
                    loop.call_soon_threadsafe(self._drain_later)

    # -- the event loop ---------------------------------------------------------------------
    def _drain_later(self) -> None:
        drain_soon(self._loop, self._drain_delay_s, self._drain)

    @abc.abstractmethod
    def _drain(self) -> None:
        """Take every message of the inbox (clears ``_scheduled`` first)."""

    def _link_down(self, down: LinkDown) -> None:
        self._connection_changed(False, down.reason)

    @abc.abstractmethod
    def _connection_changed(self, connected: bool, error: str | None) -> None:
        """The broker session's state changed (``error``: why, if it did not go well)."""

    def _subscriptions_changed(self, connected: bool, error: str | None) -> bool:
        """The session's state: counts a reconnect, reports a refused subscription
        (``SubscribeFailed``), and marks every path stale when an established connection is
        lost. True when it was lost."""
        status = self._status
        was = status.connected
        if connected and not was and self._ever_up:
            status.reconnects += 1
        if error and connected:
            self._record_error(error)
            self._problems.note("SubscribeFailed", error, {"protocol": self.protocol})
        self._set_connected(connected, None if connected else error)
        lost = not connected and was
        if lost:
            self._mark_stale()
        return lost
