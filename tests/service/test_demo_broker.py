"""The demo's broker fallback: the embedded amqtt broker carries MQTT 3.1.1 traffic."""

from __future__ import annotations

import asyncio
from pathlib import Path

import paho.mqtt.client as mqtt

from circman5.service.broker import demo_broker


async def test_embedded_broker_round_trip(tmp_path: Path) -> None:
    async with demo_broker(tmp_path, prefer_mosquitto=False) as broker:
        assert broker.kind == "amqtt" and broker.protocol == "3.1.1"
        received: asyncio.Queue[bytes] = asyncio.Queue()
        loop = asyncio.get_running_loop()
        sub = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv311)
        subscribed = asyncio.Event()
        sub.on_subscribe = lambda *a: loop.call_soon_threadsafe(subscribed.set)
        sub.on_message = lambda c, u, m: loop.call_soon_threadsafe(received.put_nowait, m.payload)
        sub.on_connect = lambda c, u, f, rc, p=None: c.subscribe("demo/#", 1)
        sub.connect("127.0.0.1", broker.port)
        sub.loop_start()
        pub = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv311)
        pub.connect("127.0.0.1", broker.port)
        pub.loop_start()
        try:
            await asyncio.wait_for(subscribed.wait(), 10)
            info = pub.publish("demo/x", b"22.5", qos=1)
            await asyncio.to_thread(info.wait_for_publish, 10)
            assert await asyncio.wait_for(received.get(), 10) == b"22.5"
        finally:
            sub.loop_stop()
            pub.loop_stop()
            sub.disconnect()
            pub.disconnect()
