"""Acknowledge-after-durable for MQTT QoS 1/2: in receive order, each message once it is safe.

paho runs with ``manual_ack=True``; the connector records every QoS 1/2 message it takes from its
inbox (:meth:`InOrderAcks.received`) and, for each batch it emits, asks for a token
(:meth:`InOrderAcks.token`) that covers everything received so far. The token travels with the
batch (:class:`~circman5.samples.SampleBatch`) and is fired by whoever made the batch
durable. Tokens may fire in any order; acknowledgements go out in receive order (MQTT requires
PUBACKs in the order of the PUBLISHes), so a token acknowledges its messages only once every
earlier token fired. Messages that produce no sample (malformed, unmapped, filtered) ride with the
next token, or with a token fired at once when the drain produced nothing.

A new connection starts a new *link*: message ids are per connection, so what was received on an
earlier link is never acknowledged on a later one (the broker delivers it again, with its DUP flag,
because it was never acknowledged).
"""

from __future__ import annotations

import struct
from collections import deque
from collections.abc import Callable, Sequence

import paho.mqtt.client as paho
from paho.mqtt.enums import MQTTErrorCode

from circman5.samples import Ack

__all__ = ["InOrderAcks", "ManualAckClient"]


class _Token:
    __slots__ = ("done", "link", "through")

    def __init__(self, link: int, through: int) -> None:
        self.link = link
        self.through = through
        self.done = False


class InOrderAcks:
    """The messages received but not acknowledged yet, and the tokens that release them.

    ``send(mid, qos)`` sends one acknowledgement (paho's ``client.ack``); ``send_many``, if given,
    sends those a token releases together (``[(mid, qos), ...]`` in order, e.g.
    :meth:`ManualAckClient.ack_many`). Every method runs on the event loop (one thread).
    """

    def __init__(
        self,
        send: Callable[[int, int], object],
        send_many: Callable[[list[tuple[int, int]]], object] | None = None,
    ) -> None:
        self._send = send
        self._send_many = send_many
        self._link = 0
        self._pending: deque[tuple[int, int]] = deque()  # (mid, qos), receive order
        self._received = 0  # messages recorded on this link
        self._covered = 0  # messages covered by a token
        self._tokens: deque[_Token] = deque()
        self.acked = 0  # acknowledgements sent (all links)

    @property
    def link(self) -> int:
        """The connection number of the messages waiting for their acknowledgement."""
        return self._link

    @property
    def unacked(self) -> int:
        """Messages received on the current link and not acknowledged yet."""
        return len(self._pending)

    def received(self, mid: int, qos: int, link: int) -> None:
        """Record one QoS 1/2 message taken from the inbox (``link``: its connection number)."""
        if link != self._link:
            if link < self._link:
                return  # from a connection that is gone: the broker sends it again
            self._new_link(link)
        self._pending.append((mid, qos))
        self._received += 1

    def token(self) -> Ack | None:
        """An acknowledgement covering every message received so far (None: nothing new)."""
        if self._received == self._covered:
            return None
        token = _Token(self._link, self._received)
        self._covered = self._received
        self._tokens.append(token)

        def ack() -> None:
            self._fire(token)

        return ack

    def handled(self) -> None:
        """Everything received so far needs no durable write: acknowledge it once every earlier
        token fired."""
        ack = self.token()
        if ack is not None:
            ack()

    def _new_link(self, link: int) -> None:
        self._link = link
        self._pending.clear()
        self._tokens.clear()
        self._received = self._covered = 0

    def _fire(self, token: _Token) -> None:
        if token.link != self._link or token.done:
            return
        token.done = True
        tokens, pending = self._tokens, self._pending
        acked = self._received - len(pending)  # acknowledged so far on this link
        released: list[tuple[int, int]] = []
        while tokens and tokens[0].done:
            through = tokens.popleft().through
            popleft = pending.popleft
            released += [popleft() for _ in range(through - acked)]
            acked = through
        if not released:
            return
        self.acked += len(released)
        if self._send_many is not None:
            self._send_many(released)
        else:
            send = self._send
            for mid, qos in released:
                send(mid, qos)


_ACK_PACKET = struct.Struct("!BBH").pack
_PUBACK, _PUBCOMP = 0x40, 0x70


class ManualAckClient(paho.Client):
    """paho's client for manual acknowledgement, completing QoS 2 exchanges it cannot know.

    After a crash the broker resends PUBREL for the QoS 2 messages the last process had received
    (PUBREC) but not completed. paho answers a PUBREL of an unknown message with PUBCOMP only in
    automatic mode; with ``manual_ack`` it stays silent and the broker keeps that message in its
    in-flight window for good (with mosquitto's default window of 20, twenty crashes stall the
    session). This client completes them, as paho does in automatic mode. Known messages are
    left to :meth:`ack`.
    """

    def ack_many(self, acks: Sequence[tuple[int, int]]) -> MQTTErrorCode:
        """Acknowledge ``[(mid, qos), ...]`` in order with one queued write (PUBACK for QoS 1,
        PUBCOMP for QoS 2, back to back) instead of one packet, lock and wake-up each.

        paho's per-acknowledgement debug lines are kept: with ``on_log`` or a logger set, each
        goes through :meth:`ack`.
        """
        if not self._manual_ack or not acks:
            return MQTTErrorCode.MQTT_ERR_SUCCESS
        if self.on_log is not None or self._logger is not None:
            for mid, qos in acks:
                self.ack(mid, qos)
            return MQTTErrorCode.MQTT_ERR_SUCCESS
        packet = b"".join(
            [_ACK_PACKET(_PUBACK if qos == 1 else _PUBCOMP, 2, mid) for mid, qos in acks if qos]
        )
        if not packet:
            return MQTTErrorCode.MQTT_ERR_SUCCESS
        return self._packet_queue(_PUBACK, packet, 0, 0)

    def _handle_pubrel(self) -> MQTTErrorCode:
        packet = self._in_packet["packet"]
        mid = int.from_bytes(packet[:2], "big") if len(packet) >= 2 else 0
        with self._in_message_mutex:
            known = mid in self._in_messages
        result = super()._handle_pubrel()
        if known or not self._manual_ack or result != MQTTErrorCode.MQTT_ERR_SUCCESS:
            return result
        return self._send_pubcomp(mid)
