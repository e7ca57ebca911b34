"""The MQTT output against a real mosquitto, checked with the real mosquitto_sub client."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any

import pytest

from circman5.sinks.config import MqttOutputSettings, OutboxSettings
from circman5.sinks.mqtt_events import MqttEventPublisher
from simulators.external import Mosquitto
from tests.sinks.conftest import Subscriber
from tests.sinks.helpers import LineReader, wait_async

BASE = "plant/s1/l1"


class Category(Enum):
    SYSTEM = "system"
    THRESHOLD = "threshold"


@dataclass
class Event:
    """Shaped like the twin's events: a category enum and ``to_dict()``."""

    category: Category
    message: str
    details: dict[str, Any] = field(default_factory=dict)
    event_id: str = field(default_factory=lambda: uuid.uuid4().hex)

    def to_dict(self) -> dict[str, Any]:
        return {
            "event_id": self.event_id,
            "category": self.category.value,
            "message": self.message,
            "details": self.details,
        }


class Unencodable:
    category = Category.SYSTEM

    def to_dict(self) -> dict[str, Any]:
        raise ValueError("this event cannot be serialized")


def settings(broker: Mosquitto, protocol: str = "5", **kw: Any) -> MqttOutputSettings:
    fast = OutboxSettings(batch_max_points=50, backoff_initial_s=0.05, backoff_max_s=0.5)
    values: dict[str, Any] = {
        "port": broker.port,
        "topic_prefix": "plant",
        "site": "s1",
        "line": "l1",
        "protocol": protocol,
        "state_interval_s": 0.05,
        "reconnect_min_s": 1,
        "reconnect_max_s": 1,
        "outbox": fast,
    }
    return MqttOutputSettings(**(values | kw))


def raise_from_thread(publisher: MqttEventPublisher, events: list[Event]) -> None:
    """Event handlers run synchronously on whatever thread raised the event."""

    def handlers() -> None:
        for event in events:
            publisher.on_event(event)

    thread = threading.Thread(target=handlers)
    thread.start()
    thread.join()


def payloads(messages: list[dict[str, Any]]) -> list[Any]:
    return [json.loads(m["payload"]) for m in messages]


@pytest.mark.parametrize("protocol", ["5", "3.1.1"])
async def test_topics_payloads_and_retained_status_seen_by_mosquitto_sub(
    broker: Mosquitto, subscribe: Callable[..., Subscriber], protocol: str
) -> None:
    version = "mqttv5" if protocol == "5" else "mqttv311"
    live = subscribe(f"{BASE}/#", version=version)
    events = [
        Event(Category.THRESHOLD, "temperature high", {"parameter": "temperature", "value": 27.5}),
        Event(Category.SYSTEM, "started", {"mode": "demo"}),
    ]
    state = {"timestamp": "2025-01-01T00:00:00", "production_line": {"temperature": 22.5}}
    async with MqttEventPublisher(settings(broker, protocol)) as publisher:
        await wait_async(lambda: publisher.link.connected, 10, "the connection")
        publisher.set_state(state)
        raise_from_thread(publisher, events)
        publisher.on_event(Unencodable())
        await asyncio.wait_for(publisher.outbox.drain(), 10)
        await wait_async(lambda: publisher.metrics.states_published == 1, 10, "the state")
        metrics = publisher.metrics
    await asyncio.to_thread(
        live.wait_for,
        lambda ms: len([m for m in ms if m["payload"] == "offline"]) == 1,
        10,
        "offline",
    )
    retained = subscribe(
        f"{BASE}/#", version=version, args=("--retained-only", "-C", "3"), probe=False
    )
    await asyncio.to_thread(retained.reader.until_end, 10)
    # the active alarms (retained): the threshold event raised one for its parameter
    alarms = live.on(f"{BASE}/alarms")
    assert alarms and [a["parameter"] for a in payloads(alarms)[-1]] == ["temperature"]
    assert all(m["retain"] == 0 for m in alarms)  # live copies; retained on the broker

    assert [m["payload"] for m in live.on(f"{BASE}/status")] == ["online", "offline"]
    threshold = live.on(f"{BASE}/events/threshold")
    system = live.on(f"{BASE}/events/system")
    assert payloads(threshold) == [events[0].to_dict()]
    assert payloads(system) == [events[1].to_dict()]
    assert threshold[0]["qos"] == 1 and threshold[0]["retain"] == 0
    assert payloads(live.on(f"{BASE}/state")) == [state]
    others = [m for m in live.messages if m["topic"] != f"{BASE}/alarms"]
    assert len(others) == 5 + 1  # + the subscription probe
    assert sorted((m["topic"], m["payload"], m["retain"]) for m in retained.messages) == [
        (f"{BASE}/alarms", alarms[-1]["payload"], 1),
        (f"{BASE}/state", json.dumps(state, separators=(",", ":")), 1),
        (f"{BASE}/status", "offline", 1),
    ]
    if protocol == "5":
        assert threshold[0]["properties"]["content-type"] == "application/json"
        assert threshold[0]["properties"]["payload-format-indicator"] == 1
        state_msg = next(m for m in retained.messages if m["topic"] == f"{BASE}/state")
        assert 0 < state_msg["properties"]["message-expiry-interval"] <= 60
    else:
        assert "properties" not in threshold[0]
    assert (metrics.events_accepted, metrics.events_unencodable) == (2, 1)
    assert metrics.outbox.delivered_batches == 2 and metrics.connected


async def test_broker_restart_loses_no_event(
    broker: Mosquitto, subscribe: Callable[..., Subscriber]
) -> None:
    # a persistent session (-c): the broker keeps the subscription and queues for it
    sub = subscribe(f"{BASE}/events/#", args=("-c", "-i", "sinks-restart-test"))
    before = Event(Category.SYSTEM, "before")
    during = [Event(Category.THRESHOLD, f"while down {n}", {"n": n}) for n in range(20)]
    after = [Event(Category.SYSTEM, f"after {n}") for n in range(5)]
    async with MqttEventPublisher(settings(broker)) as publisher:
        await wait_async(lambda: publisher.link.connected, 10, "the connection")
        publisher.on_event(before)
        await asyncio.wait_for(publisher.outbox.drain(), 10)
        await asyncio.to_thread(broker.stop)
        await wait_async(lambda: not publisher.link.connected, 10, "the disconnect")
        raise_from_thread(publisher, during)
        await publisher.outbox.flush()
        held = publisher.metrics.outbox
        await asyncio.to_thread(broker.start)
        await wait_async(lambda: publisher.metrics.connects == 2, 20, "the reconnect")
        raise_from_thread(publisher, after)
        await asyncio.wait_for(publisher.outbox.drain(), 20)
        final = publisher.metrics
        await asyncio.to_thread(
            sub.wait_for,
            lambda ms: (
                {e.event_id for e in [before, *during, *after]}
                <= {json.loads(m["payload"])["event_id"] for m in ms if "events" in m["topic"]}
            ),
            20,
            "every event",
        )
    got = [json.loads(m["payload"]) for m in sub.messages if "/events/" in m["topic"]]
    ids = [e["event_id"] for e in got]
    assert (held.depth_batches, held.delivered_batches) == (20, 1)
    assert (final.outbox.delivered_batches, final.outbox.depth_batches, final.connects) == (
        26,
        0,
        2,
    )
    # in order, each at least once (QoS 1 may repeat one in flight at the disconnect)
    order = [before, *during, *after]
    first_seen = sorted({i: ids.index(i) for i in ids}.items(), key=lambda kv: kv[1])
    assert [i for i, _ in first_seen] == [e.event_id for e in order]
    assert got[ids.index(during[7].event_id)] == during[7].to_dict()


def test_last_will_says_offline_when_the_publisher_is_killed(
    broker: Mosquitto, subscribe: Callable[..., Subscriber]
) -> None:
    status = subscribe(f"{BASE}/#")
    script = str(Path(__file__).with_name("mqtt_publisher_process.py"))
    process = subprocess.Popen(
        [sys.executable, script, str(broker.port), "plant"], stdout=subprocess.PIPE, text=True
    )
    try:
        LineReader(process).wait_for(lambda out: "connected" in out, 30, "the publisher")
        status.wait_for(lambda ms: len(ms) == 4, 10, "online, alarms and state")  # + the probe
    finally:
        process.kill()  # SIGKILL: no DISCONNECT, so the broker sends the will
        process.wait()
    status.wait_for(lambda ms: any(m["payload"] == "offline" for m in ms), 10, "the last will")
    retained = subscribe(f"{BASE}/#", args=("--retained-only", "-C", "3"), probe=False)
    retained.reader.until_end(10)
    assert [m["payload"] for m in status.on(f"{BASE}/status")] == ["online", "offline"]
    assert {m["topic"]: m["payload"] for m in retained.messages} == {
        f"{BASE}/status": "offline",
        f"{BASE}/alarms": "[]",
        f"{BASE}/state": '{"production_line":{"temperature":21.0}}',
    }
