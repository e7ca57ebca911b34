"""A direct path for incoming packets: paho's session handling without its per-packet reads and
per-message wrapping.

paho reads every packet with three ``recv`` calls (the command byte, the length byte by byte, the
rest) after a ``select``, and processes one packet per wake-up when it holds no QoS 1/2 state;
for every PUBLISH it then builds an ``MQTTMessage``, decodes the topic twice (a debug line and the
``topic`` property), takes two locks and walks its topic matcher for ``message_callback_add``
callbacks before it calls ``on_message``. Under a flood of small messages that is most of its
thread's time, all of it work the connector does not need (it matches topics itself, on the raw
bytes, cached).

:class:`DirectReceiveClient` reads the socket in blocks of up to 64 KiB and takes every complete
packet of a block in one go (an incomplete one waits for the rest of its bytes, which the socket
then signals). MQTT 3.1/3.1.1 PUBLISH packets of QoS 0 and 1 go straight to
``on_publish_received(topic, payload, received, mid, qos)``: the raw topic bytes, the payload, the
time the block was read (``paho.time_func``, monotonic), the packet id (0 for QoS 0) and the QoS.
QoS 1 is acknowledged as paho does (at once, or by ``ack()`` with ``manual_ack``). Every other
packet is handed to paho's own handler as paho would have read it: QoS 2 (its PUBREC/PUBREL
state), MQTT 5 (properties), CONNACK, SUBACK, PINGRESP, ..., PUBLISH packets too short to hold a
topic (paho reports them as malformed), and every PUBLISH while no handler is set or paho's debug
logging is switched on (``on_log`` or a logger at DEBUG), so its "Received PUBLISH" lines still
appear.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import paho.mqtt.client as paho
from paho.mqtt.enums import MQTTErrorCode
from paho.mqtt.exception import MalformedPacket

from circman5.connectors.mqtt.acks import ManualAckClient

__all__ = ["BlockHandler", "DirectReceiveClient", "Message", "PublishHandler"]

PublishHandler = Callable[[bytes, bytes, float, int, int], None]
"""``handler(topic, payload, received, mid, qos)``, called in paho's network thread."""

Message = tuple[bytes, bytes, int, int]
"""``(topic, payload, mid, qos)`` of one direct PUBLISH packet."""

BlockHandler = Callable[[list[Message], float], None]
"""``handler(messages, received)``: the direct messages of one block, in order, and the time the
block was read; called in paho's network thread (the list is the handler's to keep)."""

_DIRECT_PROTOCOLS = frozenset({paho.MQTTv31, paho.MQTTv311})
_READ_SIZE = 1 << 16
_PUBLISH = 0x30


class DirectReceiveClient(ManualAckClient):
    """paho's client (with :class:`ManualAckClient`'s QoS 2 completion) that reads its socket in
    blocks and hands QoS 0/1 PUBLISH packets straight to :attr:`on_publish_received` (see the
    module documentation)."""

    on_publish_received: PublishHandler | None = None
    #: takes precedence over :attr:`on_publish_received`: one call per block
    on_publishes_received: BlockHandler | None = None
    # the bytes of an incomplete packet at the end of the last block, and their socket
    _unread = b""
    _unread_sock: object = None

    def _paho_logs_debug(self) -> bool:
        logger = self._logger
        return self.on_log is not None or (
            logger is not None and logger.isEnabledFor(logging.DEBUG)
        )

    def loop_read(self, max_packets: int = 1) -> MQTTErrorCode:
        """Read one block from the socket and handle every complete packet in it."""
        sock = self._sock
        if sock is None:
            return MQTTErrorCode.MQTT_ERR_NO_CONN
        try:
            block = self._sock_recv(_READ_SIZE)
        except BlockingIOError:
            return MQTTErrorCode.MQTT_ERR_SUCCESS
        except (TimeoutError, OSError) as err:
            self._easy_log(paho.MQTT_LOG_ERR, "failed to receive on socket: %s", err)
            return self._loop_rc_handle(MQTTErrorCode.MQTT_ERR_CONN_LOST)
        if not block:
            return self._loop_rc_handle(MQTTErrorCode.MQTT_ERR_CONN_LOST)
        received = paho.time_func()
        with self._msgtime_mutex:
            self._last_bytes_received = received
        if self._unread_sock is sock and self._unread:
            block = self._unread + block
        self._unread, self._unread_sock = b"", sock
        rc, used = self._handle_block(block, received)
        if rc > 0:
            return self._loop_rc_handle(rc)
        if self._sock is not sock:  # a handler closed the connection
            return MQTTErrorCode.MQTT_ERR_NO_CONN
        self._unread = block[used:]
        return MQTTErrorCode.MQTT_ERR_SUCCESS

    def _handle_block(self, block: bytes, received: float) -> tuple[MQTTErrorCode, int]:
        """Handle the complete packets of ``block``: the first error (or success) and the bytes
        used. Direct messages are handed over together, in order with the packets between them
        that go paho's way."""
        direct = (
            (self.on_publishes_received is not None or self.on_publish_received is not None)
            and self._protocol in _DIRECT_PROTOCOLS
            and not self._paho_logs_debug()
        )
        found: list[Message] = []
        add = found.append
        rc = MQTTErrorCode.MQTT_ERR_SUCCESS
        size = len(block)
        pos = 0
        while pos + 2 <= size:
            command = block[pos]
            length = block[pos + 1]
            start = pos + 2
            if length & 0x80:  # a longer remaining length: up to 4 bytes, 7 bits each
                length &= 0x7F
                shift = 7
                while start < size and shift <= 21:
                    byte = block[start]
                    start += 1
                    length |= (byte & 0x7F) << shift
                    shift += 7
                    if not byte & 0x80:
                        break
                else:
                    if shift > 21:
                        rc = MQTTErrorCode.MQTT_ERR_PROTOCOL
                    break  # or the rest of the length is still on its way
            end = start + length
            if end > size:
                break  # incomplete: the socket signals the rest
            qos = (command & 0x06) >> 1
            if direct and command & 0xF0 == _PUBLISH and qos < 2 and length >= 2:
                topic_end = start + 2 + ((block[start] << 8) | block[start + 1])
                if topic_end > start + 2 and topic_end + (2 if qos else 0) <= end:
                    mid = 0
                    if qos:
                        mid = (block[topic_end] << 8) | block[topic_end + 1]
                        add((block[start + 2 : topic_end], block[topic_end + 2 : end], mid, qos))
                    else:
                        add((block[start + 2 : topic_end], block[topic_end:end], 0, 0))
                    pos = end
                    continue
            if found:
                rc = self._hand_over(found, received)
                found = []
                add = found.append
                if rc > 0:
                    break
            pos = end
            rc = self._paho_handle(command, block[start:end])
            if rc > 0 or self._sock is None:
                break
        if found:
            handed = self._hand_over(found, received)
            if rc == MQTTErrorCode.MQTT_ERR_SUCCESS:
                rc = handed
        return rc, pos

    def _hand_over(self, messages: list[Message], received: float) -> MQTTErrorCode:
        """Direct messages to the handler; QoS 1 acknowledged at once unless ``manual_ack``."""
        auto_ack = not self._manual_ack
        handle_all = self.on_publishes_received
        handler = self.on_publish_received
        if handle_all is None and handler is not None:
            for topic, payload, mid, qos in messages:  # each acknowledged after it, as paho does
                handler(topic, payload, received, mid, qos)
                if qos and auto_ack:
                    rc = self._send_puback(mid)
                    if rc > 0:
                        return rc
            return MQTTErrorCode.MQTT_ERR_SUCCESS
        if handle_all is not None:
            handle_all(messages, received)
        if auto_ack:
            for _, _, mid, qos in messages:
                if qos:
                    rc = self._send_puback(mid)
                    if rc > 0:
                        return rc
        return MQTTErrorCode.MQTT_ERR_SUCCESS

    def _paho_handle(self, command: int, body: bytes) -> MQTTErrorCode:
        """One packet through paho's own handlers, as its reader would have left it."""
        self._in_packet = {
            "command": command,
            "have_remaining": 1,
            "remaining_count": [],
            "remaining_mult": 1,
            "remaining_length": len(body),
            "packet": bytearray(body),
            "to_process": 0,
            "pos": 0,
        }
        try:
            rc = self._packet_handle()
        except MalformedPacket as exc:
            self._easy_log(paho.MQTT_LOG_DEBUG, "Received malformed packet: %s", exc)
            rc = MQTTErrorCode.MQTT_ERR_PROTOCOL
        self._in_packet = {
            "command": 0,
            "have_remaining": 0,
            "remaining_count": [],
            "remaining_mult": 1,
            "remaining_length": 0,
            "packet": bytearray(b""),
            "to_process": 0,
            "pos": 0,
        }
        return rc
