"""The base of the connectors on a broker session (MQTT, Sparkplug B host).

Such a connector counts as connected once the broker acknowledged its subscriptions; its paho
client and session come from the shared :class:`~circman5.mqtt_link.BrokerLink`.
"""

from __future__ import annotations

from circman5.connectors.base import BaseConnector

__all__ = ["BrokerSessionConnector"]


class BrokerSessionConnector(BaseConnector):
    """A :class:`BaseConnector` whose connection is a broker session with subscriptions."""

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
