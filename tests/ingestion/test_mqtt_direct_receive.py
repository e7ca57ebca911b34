"""The direct PUBLISH path gives the connector exactly what paho's own ``on_message`` gives.

Judged against paho's unmodified client on the same broker and the same messages (QoS 0 and 1,
empty, binary, multi-byte-length and 20 kB payloads, a UTF-8 topic), and against the broker's
memory of unacknowledged messages: a QoS 1 message taken by the direct path without
``manual_ack`` is acknowledged (a persistent session gets nothing again after a reconnect).
"""

from __future__ import annotations

import logging
import threading

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

from circman5.connectors.mqtt.receive import DirectReceiveClient
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
