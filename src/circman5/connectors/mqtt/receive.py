"""A direct path for incoming PUBLISH packets: paho's socket handling without its per-message
wrapping.

For every PUBLISH, paho builds an ``MQTTMessage``, decodes the topic twice (a debug line and the
``topic`` property), takes two locks and walks its topic matcher for ``message_callback_add``
callbacks before it calls ``on_message``: about a fifth of its thread's time under a flood, all
of it work the connector does not need (it matches topics itself, on the raw bytes, cached).

:class:`DirectReceiveClient` hands MQTT 3.1/3.1.1 PUBLISH packets of QoS 0 and 1 straight to
``on_publish_received(topic, payload, received, mid, qos)``: the raw topic bytes, the payload,
paho's receive time (``time_func``, monotonic), the packet id (0 for QoS 0) and the QoS. QoS 1 is
acknowledged as paho does (at once, or by ``ack()`` with ``manual_ack``). Everything else goes
paho's own way: QoS 2 (its PUBREC/PUBREL state), MQTT 5 (properties), packets too short to hold
a topic (paho reports them as malformed), no handler set, and paho's debug logging switched on
(``on_log`` or a logger at DEBUG), so its "Received PUBLISH" lines still appear.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import paho.mqtt.client as paho
from paho.mqtt.enums import MQTTErrorCode

from circman5.connectors.mqtt.acks import ManualAckClient

__all__ = ["DirectReceiveClient", "PublishHandler"]

PublishHandler = Callable[[bytes, bytes | bytearray, float, int, int], None]
"""``handler(topic, payload, received, mid, qos)``, called in paho's network thread."""

_DIRECT_PROTOCOLS = frozenset({paho.MQTTv31, paho.MQTTv311})


class DirectReceiveClient(ManualAckClient):
    """paho's client (with :class:`ManualAckClient`'s QoS 2 completion) whose QoS 0/1 PUBLISH
    packets go straight to :attr:`on_publish_received` (see the module documentation)."""

    on_publish_received: PublishHandler | None = None

    def _paho_logs_debug(self) -> bool:
        logger = self._logger
        return self.on_log is not None or (
            logger is not None and logger.isEnabledFor(logging.DEBUG)
        )

    def _handle_publish(self) -> MQTTErrorCode:
        handler = self.on_publish_received
        in_packet = self._in_packet
        qos = (in_packet["command"] & 0x06) >> 1
        if (
            handler is None
            or qos == 2
            or self._protocol not in _DIRECT_PROTOCOLS
            or self._paho_logs_debug()
        ):
            return super()._handle_publish()
        data = in_packet["packet"]
        size = len(data)
        end = 2 + ((data[0] << 8) | data[1]) if size >= 2 else 0
        if end <= 2 or end + (2 if qos else 0) > size:
            return super()._handle_publish()  # empty topic or truncated: paho's error
        topic = bytes(data[2:end])
        mid = 0
        if qos:
            mid = (data[end] << 8) | data[end + 1]
            end += 2
        handler(topic, data[end:], paho.time_func(), mid, qos)
        if qos and not self._manual_ack:
            return self._send_puback(mid)
        return MQTTErrorCode.MQTT_ERR_SUCCESS
