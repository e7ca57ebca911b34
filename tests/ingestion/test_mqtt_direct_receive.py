"""The direct PUBLISH path gives the connector exactly what paho's own ``on_message`` gives.

Judged against paho's unmodified client on the same broker and the same messages (QoS 0 and 1,
empty, binary, multi-byte-length and 20 kB payloads, a UTF-8 topic), and against the broker's
memory of unacknowledged messages: a QoS 1 message taken by the direct path without
``manual_ack`` is acknowledged (a persistent session gets nothing again after a reconnect).
"""

from __future__ import annotations

import logging
import socket
import threading

import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from circman5.connectors.mqtt.acks import InOrderAcks
from circman5.connectors.mqtt.client import MqttConnector
from circman5.connectors.mqtt.config import MqttConnectorSettings
from circman5.connectors.mqtt.receive import DirectReceiveClient
from circman5.samples import acks_of, fire_acks
from simulators.external import Mosquitto, wait_until

MESSAGES: list[tuple[str, bytes, int]] = [
    ("direct/a", b'{"value": 1.5}', 0),
    ("direct/a", b"", 0),
    ("direct/b", bytes(range(256)), 1),
    ("direct/température", "23,5 °C".encode(), 1),
    ("direct/c", b"x" * 200, 0),  # two-byte remaining length
    ("direct/c", b"y" * 20_000, 1),  # three-byte remaining length
    ("direct/done", b"1", 1),
]

Received = list[tuple[bytes, bytes, int]]


def _subscribe(client: paho.Client, port: int, subscribed: threading.Event) -> None:
    client.on_connect = lambda c, u, f, rc, p: c.subscribe("direct/#", qos=1)
    client.on_subscribe = lambda c, u, mid, rcs, p: subscribed.set()
    client.connect("127.0.0.1", port)
    client.loop_start()
    assert subscribed.wait(10), "no SUBACK"


def _close(client: paho.Client) -> None:
    """DISCONNECT once everything queued before it is written (PUBACKs included), then stop."""
    gone = threading.Event()
    client.on_disconnect = lambda c, u, f, rc, p: gone.set()
    client.disconnect()
    assert gone.wait(10), "no disconnect"
    client.loop_stop()


def _publish_all(port: int, messages: list[tuple[str, bytes, int]]) -> None:
    publisher = paho.Client(CallbackAPIVersion.VERSION2, client_id="direct-publisher")
    publisher.connect("127.0.0.1", port)
    publisher.loop_start()
    for topic, payload, qos in messages:
        publisher.publish(topic, payload, qos=qos).wait_for_publish(10)
    _close(publisher)


def test_direct_path_matches_paho_on_message(mosquitto: Mosquitto) -> None:
    reference: Received = []
    direct: Received = []
    via_on_message: Received = []
    plain = paho.Client(CallbackAPIVersion.VERSION2, client_id="direct-reference")
    plain.on_message = lambda c, u, m: reference.append((m._topic, m.payload, m.qos))
    fast = DirectReceiveClient(CallbackAPIVersion.VERSION2, client_id="direct-fast")
    fast.on_publish_received = lambda topic, payload, received, mid, qos: direct.append(
        (topic, bytes(payload), qos)
    )
    fast.on_message = lambda c, u, m: via_on_message.append((m._topic, m.payload, m.qos))
    for client in (plain, fast):
        _subscribe(client, mosquitto.port, threading.Event())
    try:
        _publish_all(mosquitto.port, MESSAGES)
        wait_until(lambda: len(reference) == len(direct) == len(MESSAGES), 20, "all messages")
    finally:
        for client in (plain, fast):
            _close(client)
    assert direct == reference
    assert [(t.decode(), p, q) for t, p, q in direct] == MESSAGES
    assert via_on_message == []  # nothing took paho's way


def test_paho_debug_logging_keeps_paho_path(mosquitto: Mosquitto) -> None:
    direct: Received = []
    via_on_message: Received = []
    logger = logging.getLogger("tests.direct_receive.paho")
    logger.setLevel(logging.DEBUG)
    fast = DirectReceiveClient(CallbackAPIVersion.VERSION2, client_id="direct-debug")
    fast.enable_logger(logger)
    fast.on_publish_received = lambda topic, payload, received, mid, qos: direct.append(
        (topic, bytes(payload), qos)
    )
    fast.on_message = lambda c, u, m: via_on_message.append((m._topic, m.payload, m.qos))
    _subscribe(fast, mosquitto.port, threading.Event())
    try:
        _publish_all(mosquitto.port, MESSAGES[:2])
        wait_until(lambda: len(via_on_message) == 2, 20, "two messages")
    finally:
        _close(fast)
    assert direct == []
    assert [(t.decode(), p, q) for t, p, q in via_on_message] == MESSAGES[:2]


def test_qos1_taken_by_the_direct_path_is_acknowledged(mosquitto: Mosquitto) -> None:
    received: list[bytes] = []

    def session() -> DirectReceiveClient:
        client = DirectReceiveClient(
            CallbackAPIVersion.VERSION2, client_id="direct-session", clean_session=False
        )
        client.on_publish_received = lambda topic, payload, t, mid, qos: received.append(
            bytes(payload)
        )
        return client

    first = session()
    _subscribe(first, mosquitto.port, threading.Event())
    _publish_all(mosquitto.port, [("direct/q1", b"%d" % i, 1) for i in range(50)])
    wait_until(lambda: len(received) == 50, 20, "50 messages")
    _close(first)
    # the same session again: an unacknowledged message would come before the marker
    second = session()
    _subscribe(second, mosquitto.port, threading.Event())
    try:
        _publish_all(mosquitto.port, [("direct/marker", b"marker", 1)])
        wait_until(lambda: received[-1:] == [b"marker"], 20, "the marker")
    finally:
        _close(second)
    assert received == [b"%d" % i for i in range(50)] + [b"marker"]


# -- block reads: packets cut anywhere by the network ---------------------------------------------


def _varint(number: int) -> bytes:
    out = bytearray()
    while True:
        digit, number = number % 128, number // 128
        out.append(digit | 0x80 if number else digit)
        if not number:
            return bytes(out)


def _publish(topic: str, payload: bytes, qos: int, mid: int) -> bytes:
    raw = topic.encode()
    body = len(raw).to_bytes(2, "big") + raw + (mid.to_bytes(2, "big") if qos else b"") + payload
    return bytes([0x30 | qos << 1]) + _varint(len(body)) + body


STREAM: list[tuple[str, bytes, int]] = [
    (f"cut/{i % 7}/température", payload, qos)
    for i, (payload, qos) in enumerate(
        [(b'{"value": %d}' % i, i % 2) for i in range(300)]
        + [(b"z" * 127, 0), (b"z" * 128, 1), (b"w" * 16_383, 0), (b"w" * 16_384, 1)]
        + [(b"q2-%d" % i, 2) for i in range(3)]  # QoS 2: paho's own way
        + [(b"x" * 70_000, 1), (b"", 0), (b"last", 1)]
    )
]


class _CuttingBroker:
    """Just enough of an MQTT 3.1.1 broker for one subscriber: CONNACK, SUBACK, then
    :data:`STREAM` written in pieces of 1 to 97 bytes, so packets, their remaining lengths and
    their topics are split across reads; counts the PUBACKs and PUBRECs it gets back."""

    def __init__(self) -> None:
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        self.acks: list[int] = []
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _read_packet(self, conn: socket.socket) -> tuple[int, bytes]:
        def exactly(size: int) -> bytes:
            data = b""
            while len(data) < size:
                chunk = conn.recv(size - len(data))
                if not chunk:
                    raise ConnectionError("subscriber went away")
                data += chunk
            return data

        command = exactly(1)[0]
        length, shift = 0, 0
        while True:
            byte = exactly(1)[0]
            length |= (byte & 0x7F) << shift
            shift += 7
            if not byte & 0x80:
                break
        return command, exactly(length)

    def _serve(self) -> None:
        conn, _ = self.server.accept()
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        with conn:
            self._read_packet(conn)  # CONNECT
            conn.sendall(b"\x20\x02\x00\x00")
            command, body = self._read_packet(conn)  # SUBSCRIBE
            assert command & 0xF0 == 0x80
            conn.sendall(b"\x90\x03" + body[:2] + b"\x01")
            stream = b"".join(
                _publish(topic, payload, qos, mid)
                for mid, (topic, payload, qos) in enumerate(STREAM, start=1)
            )
            piece = 1
            for start in range(0, len(stream), 97):  # pieces of 1..97 bytes, then the rest
                end = start + piece
                conn.sendall(stream[start:end])
                conn.sendall(stream[end : start + 97])
                piece = piece % 96 + 1
            while True:
                try:
                    command, body = self._read_packet(conn)
                except (ConnectionError, OSError):
                    return
                if command & 0xF0 == 0x50:  # PUBREC: release the QoS 2 message
                    conn.sendall(b"\x62\x02" + body[:2])
                if command & 0xF0 in (0x40, 0x50):
                    self.acks.append(int.from_bytes(body[:2], "big"))
                if command & 0xF0 == 0xE0:
                    return


@pytest.mark.parametrize("by_block", [False, True], ids=["per message", "per block"])
def test_packets_cut_anywhere_arrive_whole_and_in_order(by_block: bool) -> None:
    """Against a broker written here that splits its stream at every offset: every packet
    arrives once, in order, equal to what was sent; QoS 0/1 by the direct path (one call per
    message, or one list per block), QoS 2 by paho's, and every QoS 1 and 2 message
    acknowledged."""
    broker = _CuttingBroker()
    direct: Received = []
    via_on_message: Received = []
    client = DirectReceiveClient(CallbackAPIVersion.VERSION2, client_id="cut")
    if by_block:
        client.on_publishes_received = lambda messages, received: direct.extend(
            (topic, payload, qos) for topic, payload, _, qos in messages
        )
    else:
        client.on_publish_received = lambda topic, payload, received, mid, qos: direct.append(
            (topic, bytes(payload), qos)
        )
    client.on_message = lambda c, u, m: via_on_message.append((m._topic, m.payload, m.qos))
    _subscribe(client, broker.port, threading.Event())
    try:
        wait_until(lambda: len(direct) + len(via_on_message) == len(STREAM), 30, "the whole stream")
        acknowledged = [mid for mid, (_, _, qos) in enumerate(STREAM, start=1) if qos]
        wait_until(lambda: sorted(broker.acks) == acknowledged, 30, "every acknowledgement")
    finally:
        _close(client)
    expected = [(topic.encode(), payload, qos) for topic, payload, qos in STREAM]
    assert direct == [m for m in expected if m[2] < 2]
    assert via_on_message == [m for m in expected if m[2] == 2]


async def test_full_inbox_drops_and_counts_but_acknowledges_in_order() -> None:
    """Blocks arriving while the loop is stalled past ``max_buffered_samples``: the messages
    over the limit are dropped and counted (the first block partly), the rest become samples,
    and every QoS 1 message, dropped or not, is still acknowledged in order."""
    settings = MqttConnectorSettings.model_validate(
        {
            "type": "mqtt",
            "name": "mes",
            "qos": 1,
            "max_buffered_samples": 50,
            "tags": [{"address": "full/+/value", "path": "full.{1}.value", "field": "value"}],
        }
    )
    connector = MqttConnector(settings)  # not started: the loop never drains on its own
    sent: list[tuple[int, int]] = []
    connector._acks = InOrderAcks(lambda mid, qos: sent.append((mid, qos)))
    blocks = [
        [(b"full/t%d/value" % (i % 5), b'{"value": %d}' % i, i + 1, 1) for i in range(k, k + 30)]
        for k in (0, 30, 60)
    ]
    for block in blocks:  # paho's thread: 90 messages against a limit of 50
        connector._on_publishes(block, 1.0)
    connector._drain()
    batch = await connector._buffer.get()
    assert batch is not None
    assert [s.value for s in batch] == [float(i) for i in range(50)]
    assert connector.status.dropped == 40
    fire_acks(acks_of(batch))
    assert sent == [(mid, 1) for mid in range(1, 91)]
