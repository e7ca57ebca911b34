"""The plant as a Sparkplug B (3.0) edge node: a PLC gateway on the plant's broker.

One edge node ``{group_id}/{edge_node_id}`` with one device per top-level section of the tag
catalog (``production_line``, ``materials``, ``environment``, ``batch``, ``alarms``, ...); each
tag is a metric of its device named by the rest of its path with ``/`` as the folder separator,
as gateways do (``materials.silicon_wafer.inventory`` -> device ``materials``, metric
``silicon_wafer/inventory``). So a host's tag map reads
``Plant1/sim-line1/production_line/temperature``.

- ``NBIRTH`` (``bdSeq``, ``Node Control/Rebirth``) then one ``DBIRTH`` per device with every
  metric: alias, type (Double, Int64, Boolean, String), value, ``engUnit`` where the tag has one;
- ``DDATA`` ``rate_hz`` times a second per device whose values changed, by alias, ``seq`` 0..255;
- ``NDEATH`` as the MQTT will with the session's ``bdSeq`` (+1 per connection), explicit on stop;
- ``NCMD`` ``Node Control/Rebirth``: the births again; ``DCMD`` of a setpoint metric
  (``production_line/target_temperature``, ``cycle_time``, ``running``) changes the plant (a value
  out of range is refused and logged), which the next ``DDATA`` shows.

The payloads are the official Eclipse Tahu ``sparkplug_b.proto``, compiled for the product
(``circman5.connectors.sparkplug.payload``) and run by ``protobuf``; the node's logic is its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections import Counter
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode

from circman5.connectors.sparkplug import payload as spb
from simulators.config import SparkplugConfig
from simulators.lifecycle import Lifecycle
from simulators.plant import Plant
from simulators.tags import TAGS, Value

__all__ = ["SparkplugConfig", "SparkplugNode"]

log = logging.getLogger(__name__)

_TYPES = {"float": spb.DOUBLE, "int": spb.INT64, "bool": spb.BOOLEAN, "str": spb.STRING}
_REBIRTH = "Node Control/Rebirth"
_SETPOINT_ARGS = {
    "production_line.target_temperature": "target_temperature",
    "production_line.cycle_time": "cycle_time",
    "production_line.running": "running",
}


def device_and_metric(path: str) -> tuple[str, str]:
    """``materials.silicon_wafer.inventory`` -> (``materials``, ``silicon_wafer/inventory``)."""
    section, _, rest = path.partition(".")
    return section, rest.replace(".", "/")


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


def _set(metric: Any, datatype: int, value: Value) -> None:
    if datatype == spb.DOUBLE:
        number = float(value)
        if math.isfinite(number):
            metric.double_value = number
        else:
            metric.is_null = True
    elif datatype == spb.INT64:
        metric.long_value = int(value) & 0xFFFF_FFFF_FFFF_FFFF
    elif datatype == spb.BOOLEAN:
        metric.boolean_value = bool(value)
    else:
        metric.string_value = str(value)


class SparkplugNode(Lifecycle):
    """``async with SparkplugNode(plant, config) as node:`` (see the module docstring)."""

    def __init__(self, plant: Plant, config: SparkplugConfig | None = None) -> None:
        self.plant = plant
        self.config = config or SparkplugConfig()
        cfg = self.config
        base = f"spBv1.0/{cfg.group_id}"
        self._node_topic = f"{base}/{{}}/{cfg.edge_node_id}"
        self._base = base
        # path -> (device, metric name, alias, datatype, unit)
        self._metrics: dict[str, tuple[str, str, int, int, str]] = {}
        for alias, (path, tag) in enumerate(sorted(TAGS.items()), start=1):
            device, name = device_and_metric(path)
            self._metrics[path] = (device, name, alias, int(_TYPES[tag.kind]), tag.unit)
        self._by_name = {(m[0], m[1]): path for path, m in self._metrics.items()}
        self._devices = sorted({m[0] for m in self._metrics.values()})
        self._published: dict[str, Value] = {}
        self._client: mqtt.Client | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task[None] | None = None
        self._bd_seq = 0  # of the will registered for the next connection
        self._session_bd_seq: int | None = None
        self._seq = -1
        self._connected = asyncio.Event()
        self.running = False
        self.published: Counter[str] = Counter()
        self.commands_applied = 0
        self.commands_refused = 0

    # -- lifecycle -----------------------------------------------------------------------------

    async def start(self) -> None:
        cfg = self.config
        self._loop = asyncio.get_running_loop()
        client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=cfg.client_id or f"sim-spb-{cfg.group_id}-{cfg.edge_node_id}",
            clean_session=True,
        )
        if cfg.username is not None:
            client.username_pw_set(cfg.username, cfg.password)
        self._set_will(client)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        client.reconnect_delay_set(1, 2)
        client.connect_async(cfg.host, cfg.port, keepalive=cfg.keepalive)
        client.loop_start()
        self._client = client
        self.running = True
        self._task = asyncio.create_task(self._publish_loop(), name="sparkplug-node")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        client, self._client = self._client, None
        self.running = False
        if client is None:
            return
        if self._session_bd_seq is not None:
            info = client.publish(
                self._node_topic.format("NDEATH"), self._death(self._session_bd_seq), qos=1
            )
            if info.rc == MQTTErrorCode.MQTT_ERR_SUCCESS:
                with contextlib.suppress(RuntimeError, ValueError):
                    await asyncio.to_thread(info.wait_for_publish, 2.0)
        self._session_bd_seq = None
        self._connected.clear()
        client.disconnect()
        await asyncio.to_thread(client.loop_stop)

    async def wait_connected(self) -> None:
        await self._connected.wait()

    def endpoint_info(self) -> dict[str, Any]:
        cfg = self.config
        return {
            "host": cfg.host,
            "port": cfg.port,
            "group_id": cfg.group_id,
            "edge_node_id": cfg.edge_node_id,
            "devices": self._devices,
            "metrics": len(self._metrics),
        }

    # -- births and deaths ---------------------------------------------------------------------

    def _death(self, bd_seq: int) -> bytes:
        payload = spb.Payload(timestamp=_now_ms())
        metric = payload.metrics.add(name="bdSeq", datatype=spb.INT64)
        metric.long_value = bd_seq
        data: bytes = payload.SerializeToString()
        return data

    def _set_will(self, client: mqtt.Client) -> None:
        client.will_set(self._node_topic.format("NDEATH"), self._death(self._bd_seq), qos=1)

    def _next_seq(self) -> int:
        self._seq = (self._seq + 1) % 256
        return self._seq

    def _births(self) -> None:
        client, bd_seq = self._client, self._session_bd_seq
        if client is None or bd_seq is None:
            return
        now = _now_ms()
        self._seq = -1
        node = spb.Payload(timestamp=now, seq=self._next_seq())
        bd = node.metrics.add(name="bdSeq", datatype=spb.INT64, timestamp=now)
        bd.long_value = bd_seq
        rebirth = node.metrics.add(name=_REBIRTH, datatype=spb.BOOLEAN, timestamp=now)
        rebirth.boolean_value = False
        self._send(self._node_topic.format("NBIRTH"), node)
        values = self.plant.snapshot()
        for device in self._devices:
            payload = spb.Payload(timestamp=now, seq=self._next_seq())
            for path, (dev, name, alias, datatype, unit) in self._metrics.items():
                if dev != device:
                    continue
                metric = payload.metrics.add(
                    name=name, alias=alias, datatype=datatype, timestamp=now
                )
                value = values.get(path)
                if value is None:
                    metric.is_null = True
                else:
                    _set(metric, datatype, value)
                    self._published[path] = value
                if unit:
                    metric.properties.keys.append("engUnit")
                    metric.properties.values.add(type=spb.STRING, string_value=unit)
            self._send(f"{self._node_topic.format('DBIRTH')}/{device}", payload)

    def _data(self) -> None:
        if self._session_bd_seq is None:
            return
        now = _now_ms()
        values = self.plant.snapshot()
        changed: dict[str, spb.Payload] = {}
        for path, value in values.items():
            spec = self._metrics.get(path)
            if spec is None or self._published.get(path) == value:
                continue
            device, _, alias, datatype, _ = spec
            payload = changed.get(device)
            if payload is None:
                payload = changed[device] = spb.Payload(timestamp=now)
            metric = payload.metrics.add(alias=alias, datatype=datatype, timestamp=now)
            _set(metric, datatype, value)
            self._published[path] = value
        for device, payload in changed.items():
            payload.seq = self._next_seq()
            self._send(f"{self._node_topic.format('DDATA')}/{device}", payload)

    def _send(self, topic: str, payload: spb.Payload) -> None:
        client = self._client
        if client is not None:
            client.publish(topic, payload.SerializeToString(), qos=0)
            self.published[topic.split("/")[2]] += 1

    async def _publish_loop(self) -> None:
        interval = 1.0 / self.config.rate_hz
        while True:
            await asyncio.sleep(interval)
            self._data()

    # -- paho callbacks (network thread) -> the loop ------------------------------------------

    def _call(self, fn: Any, *args: Any) -> None:
        loop = self._loop
        if loop is not None:
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(fn, *args)

    def _on_connect(
        self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, props: Any
    ) -> None:
        if reason.is_failure:
            log.warning("Sparkplug node: the broker refused the connection: %s", reason)
            return
        client.subscribe(
            [
                (self._node_topic.format("NCMD"), 1),
                (self._node_topic.format("DCMD") + "/+", 1),
            ]
        )
        self._call(self._online, self._bd_seq)

    def _on_disconnect(
        self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, props: Any
    ) -> None:
        self._bd_seq = (self._bd_seq + 1) % 256
        self._set_will(client)
        self._call(self._offline)

    def _on_message(self, client: mqtt.Client, userdata: Any, message: mqtt.MQTTMessage) -> None:
        self._call(self._command, message.topic, bytes(message.payload))

    def _online(self, bd_seq: int) -> None:
        if self._client is None:
            return
        self._session_bd_seq = bd_seq
        self._births()
        self._connected.set()

    def _offline(self) -> None:
        self._session_bd_seq = None
        self._connected.clear()

    def _command(self, topic: str, data: bytes) -> None:
        parts = topic.split("/")
        try:
            payload = spb.Payload.FromString(data)
        except Exception as err:  # protobuf's DecodeError: a broken command, not ours to crash
            log.warning("Sparkplug node: undecodable command on %s: %s", topic, err)
            return
        if parts[2] == "NCMD":
            if any(m.name == _REBIRTH and m.boolean_value for m in payload.metrics):
                self._births()
            return
        device = parts[4]
        for metric in payload.metrics:
            path = self._by_name.get((device, metric.name))
            if path is None:
                path = next(
                    (
                        p
                        for p, m in self._metrics.items()
                        if m[2] == metric.alias and m[0] == device
                    ),
                    None,
                )
            argument = _SETPOINT_ARGS.get(path or "")
            which = metric.WhichOneof("value")
            if argument is None or which is None:
                self.commands_refused += 1
                log.warning("Sparkplug node: %s/%s is not a setpoint", device, metric.name)
                continue
            try:
                self.plant.set_setpoints(**{argument: getattr(metric, which)})
            except (ValueError, TypeError) as err:
                self.commands_refused += 1
                log.warning("Sparkplug node: write of %s refused: %s", path, err)
                continue
            self.commands_applied += 1
        self._data()
