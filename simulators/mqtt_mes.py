"""The simulated MES: a paho-mqtt 2.x client publishing JSON about batches, material and quality
to any MQTT broker.

Topics (``<p>`` = ``{topic_prefix}/{line}``, by default ``mes/line1``; payloads in the README):

==============================  ===================================================  ========
topic                           when                                                 QoS
==============================  ===================================================  ========
``<p>/status``                  retained ``{"state": "online"|"offline"}``; the      1
                                broker publishes ``offline`` (last will) on a crash
``<p>/batch/start``             a batch starts                                       1
``<p>/batch/end``               a batch ends                                         1
``<p>/<material>/consumption``  per material, right after ``batch/end``              1
``<p>/quality/inspection``      every module leaving the line                        1
``<p>/<material>/inventory``    every ``inventory_interval`` seconds                 1
``<p>/<material>/delivery``     a material delivery arrives                          1
``sim/synthetic/<i>``           load test: ``synthetic_topics`` topics,              0
                                ``synthetic_rate`` messages/s in total
==============================  ===================================================  ========

``<material>`` is ``silicon_wafer`` or ``solar_glass``; quantities are kg; timestamps are ISO
8601 UTC with offset (``2025-02-24T14:30:22.123456+00:00``).

Faults: ``delay`` publishes each MES message that many seconds late (order kept);
``mqtt_malformed`` publishes MES messages (not the synthetic ones) malformed:
``invalid_json`` (truncated JSON), ``wrong_types`` (numbers as strings, strings as numbers),
``nan`` (numbers become ``NaN``, not valid JSON), ``oversized`` (a padding field of
``oversize_bytes``), ``empty`` (zero-length payload), ``binary`` (non-UTF-8 bytes). ``freeze``
makes inventory and synthetic values stop changing. :meth:`MqttMes.publish_malformed` sends
one malformed message on demand.

Optional control topic (``control_topic``, e.g. ``sim/control``): JSON commands as in
:meth:`simulators.faults.Faults.command` plus ``stop``/``start``/``restart`` of a server; the
result is published to ``<control_topic>/ack``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from simulators.config import MqttConfig
from simulators.faults import MALFORMED_KINDS, Faults, MalformedKind
from simulators.lifecycle import Lifecycle
from simulators.plant import (
    BatchEnded,
    BatchStarted,
    MaterialDelivered,
    ModuleInspected,
    Plant,
    PlantEvent,
)

__all__ = [
    "MqttConfig",
    "MqttMes",
    "malformed_payload",
]

log = logging.getLogger(__name__)

CommandHandler = Callable[[Mapping[str, Any]], Awaitable[None] | None]


def iso(ts: datetime | None) -> str | None:
    return ts.isoformat() if ts is not None else None


def _now() -> str:
    return datetime.now(UTC).isoformat()


def _wrong(value: Any) -> Any:
    if isinstance(value, bool):
        return "maybe"
    if isinstance(value, int | float):
        return f"{value} units"
    if isinstance(value, str):
        return len(value) or 12345
    if value is None:
        return {"unexpected": []}
    return value


def malformed_payload(kind: MalformedKind, payload: Mapping[str, Any], oversize: int) -> bytes:
    """``payload`` (a MES message) spoiled in the way ``kind`` names."""
    text = json.dumps(payload)
    if kind == "invalid_json":
        return text[: max(1, len(text) // 2)].encode() + b',"'
    if kind == "wrong_types":
        return json.dumps({k: _wrong(v) for k, v in payload.items()}).encode()
    if kind == "nan":
        spoiled = {
            k: math.nan if isinstance(v, int | float) and not isinstance(v, bool) else v
            for k, v in payload.items()
        }
        spoiled.setdefault("value", math.nan)
        return json.dumps(spoiled, allow_nan=True).encode()
    if kind == "oversized":
        return json.dumps({**payload, "padding": "x" * oversize}).encode()
    if kind == "empty":
        return b""
    return b"\xff\xfe\x00\x81" + bytes(range(128, 256))


class MqttMes(Lifecycle):
    """The MES publisher. ``async with MqttMes(plant, faults, config) as mes:``.

    ``await mes.wait_connected()`` waits for the broker (use ``asyncio.timeout``);
    ``published`` counts messages by topic (handed to the client library);
    ``stop()``/``start()`` take the MES off line and back.
    """

    def __init__(
        self,
        plant: Plant,
        faults: Faults | None = None,
        config: MqttConfig | None = None,
        *,
        on_command: CommandHandler | None = None,
    ) -> None:
        self.plant = plant
        self.faults = faults or Faults()
        self.config = config or MqttConfig()
        self.on_command = on_command
        self.prefix = f"{self.config.topic_prefix}/{self.config.line}"
        self.published: Counter[str] = Counter()
        self._client: mqtt.Client | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._connected = asyncio.Event()
        self._queue: asyncio.Queue[tuple[float, str, Any, bool]] = asyncio.Queue()
        self._tasks: list[asyncio.Task[None]] = []
        self._command_tasks: set[asyncio.Task[None]] = set()
        self._unsubscribe: Callable[[], None] | None = None
        self._synthetic_seq = 0
        self._holding = 0

    # -- topics ---------------------------------------------------------------------------------

    def topic(self, suffix: str) -> str:
        return f"{self.prefix}/{suffix}"

    @property
    def topics(self) -> dict[str, str]:
        """The documented topics (``<material>`` left as a placeholder)."""
        return {
            "status": self.topic("status"),
            "batch_start": self.topic("batch/start"),
            "batch_end": self.topic("batch/end"),
            "consumption": self.topic("<material>/consumption"),
            "inspection": self.topic("quality/inspection"),
            "inventory": self.topic("<material>/inventory"),
            "delivery": self.topic("<material>/delivery"),
            "synthetic": f"{self.config.synthetic_prefix}/<i>",
        }

    def endpoint_info(self) -> dict[str, Any]:
        return {
            "host": self.config.host,
            "port": self.config.port,
            "client_id": self.config.client_id,
            "prefix": self.prefix,
            "topics": self.topics,
            "control_topic": self.config.control_topic,
            "synthetic_topics": self.config.synthetic_topics,
            "synthetic_rate": self.config.synthetic_rate,
        }

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    @property
    def running(self) -> bool:
        return self._client is not None

    # -- lifecycle -----------------------------------------------------------------------------

    async def start(self) -> None:
        """Connect (in the background; paho reconnects on its own) and start publishing."""
        if self._client is not None:
            return
        cfg = self.config
        self._loop = asyncio.get_running_loop()
        self._connected.clear()
        client = mqtt.Client(
            callback_api_version=CallbackAPIVersion.VERSION2,
            client_id=cfg.client_id,
            protocol=mqtt.MQTTv311,
        )
        if cfg.username is not None:
            client.username_pw_set(cfg.username, cfg.password)
        client.will_set(self.topic("status"), self._status_payload("offline"), qos=1, retain=True)
        client.reconnect_delay_set(min_delay=1, max_delay=5)
        client.max_queued_messages_set(0)
        client.max_inflight_messages_set(1000)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        client.connect_async(cfg.host, cfg.port, keepalive=cfg.keepalive)
        client.loop_start()
        self._client = client
        self._unsubscribe = self.plant.subscribe(self._on_plant_event)
        self._tasks = [asyncio.create_task(self._publisher(), name="mes-publisher")]
        if cfg.inventory_interval > 0:
            self._tasks.append(asyncio.create_task(self._inventory_loop(), name="mes-inventory"))
        if cfg.synthetic_topics > 0 and cfg.synthetic_rate > 0:
            self._tasks.append(asyncio.create_task(self._synthetic_loop(), name="mes-synthetic"))
        log.info("MES publishing to mqtt://%s:%d under %s", cfg.host, cfg.port, self.prefix)

    async def wait_connected(self) -> None:
        """Wait until the client is connected to the broker (wrap in ``asyncio.timeout``)."""
        await self._connected.wait()

    async def stop(self) -> None:
        """Publish ``offline``, disconnect and stop publishing (queued messages are dropped)."""
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        tasks, self._tasks = self._tasks, []
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        while not self._queue.empty():
            self._queue.get_nowait()
        self._holding = 0
        client, self._client = self._client, None
        if client is None:
            return
        if self._connected.is_set():
            info = client.publish(
                self.topic("status"), self._status_payload("offline"), qos=1, retain=True
            )
            with contextlib.suppress(Exception):
                await asyncio.to_thread(info.wait_for_publish, 1.0)
        client.disconnect()
        await asyncio.to_thread(client.loop_stop)
        self._connected.clear()

    async def _closed(self) -> None:
        for task in list(self._command_tasks):
            task.cancel()

    # -- paho callbacks (network thread) ---------------------------------------------------------

    def _on_connect(
        self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, properties: Any
    ) -> None:
        if getattr(reason, "is_failure", False):
            log.warning("MES connection refused by the broker: %s", reason)
            return
        client.publish(self.topic("status"), self._status_payload("online"), qos=1, retain=True)
        if self.config.control_topic:
            client.subscribe(self.config.control_topic, qos=1)
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._connected.set)
        log.info("MES connected to the broker")

    def _on_disconnect(
        self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, properties: Any
    ) -> None:
        if self._loop is not None:
            with contextlib.suppress(RuntimeError):
                self._loop.call_soon_threadsafe(self._connected.clear)
        log.info("MES disconnected from the broker: %s", reason)

    def _on_message(self, client: mqtt.Client, userdata: Any, message: mqtt.MQTTMessage) -> None:
        if self._loop is not None:
            with contextlib.suppress(RuntimeError):
                self._loop.call_soon_threadsafe(self._handle_command, bytes(message.payload))

    # -- control topic -------------------------------------------------------------------------

    def _handle_command(self, payload: bytes) -> None:
        try:
            cmd = json.loads(payload)
            if not isinstance(cmd, dict):
                raise ValueError("a command is a JSON object")
        except ValueError as err:
            self._ack({"ok": False, "error": f"bad command: {err}"})
            return
        task = asyncio.create_task(self._run_command(cmd))
        self._command_tasks.add(task)
        task.add_done_callback(self._command_tasks.discard)

    async def _run_command(self, cmd: dict[str, Any]) -> None:
        try:
            if self.on_command is not None:
                result = self.on_command(cmd)
                if result is not None:
                    await result
            else:
                self.faults.command(cmd)
        except Exception as err:
            log.warning("control command %s failed: %s", cmd, err)
            self._ack({"ok": False, "cmd": cmd, "error": str(err)})
            return
        self._ack({"ok": True, "cmd": cmd})

    def _ack(self, body: dict[str, Any]) -> None:
        client = self._client
        if client is not None and self.config.control_topic:
            client.publish(f"{self.config.control_topic}/ack", json.dumps(body), qos=1)

    # -- messages ------------------------------------------------------------------------------

    def _status_payload(self, state: str) -> str:
        return json.dumps({"state": state, "line": self.config.line, "ts": _now()})

    def enqueue(self, topic: str, payload: Mapping[str, Any], *, retain: bool = False) -> None:
        """Queue a MES message (JSON); faults (delay, malformed) apply when it is published."""
        self._queue.put_nowait((time.monotonic(), topic, dict(payload), retain))

    @property
    def pending(self) -> int:
        """MES messages queued or held back (by the ``delay`` fault), not yet published."""
        return self._queue.qsize() + self._holding

    def publish_malformed(self, kind: MalformedKind | str, topic: str | None = None) -> None:
        """Publish one malformed batch-end-like message now (to ``topic`` or ``<p>/batch/end``)."""
        if kind not in MALFORMED_KINDS:
            raise ValueError(f"unknown malformed kind {kind!r}")
        sample = {
            "batch_id": "MALFORMED",
            "line": self.config.line,
            "modules_produced": 1,
            "consumption": 0.5,
            "unit": "kg",
            "ts": _now(),
        }
        body = malformed_payload(kind, sample, self.config.oversize_bytes)
        self._publish(topic or self.topic("batch/end"), body, self.config.qos, False)

    def _publish(self, topic: str, body: bytes | str, qos: int, retain: bool) -> None:
        client = self._client
        if client is None:
            return
        info = client.publish(topic, body, qos=qos, retain=retain)
        if info.rc == mqtt.MQTT_ERR_SUCCESS or (info.rc == mqtt.MQTT_ERR_NO_CONN and qos > 0):
            # QoS 1 messages published while disconnected go out after the reconnect
            self.published[topic] += 1
        elif info.rc != mqtt.MQTT_ERR_NO_CONN:
            log.warning("MES publish to %s failed: %s", topic, mqtt.error_string(info.rc))

    async def _publisher(self) -> None:
        while True:
            enqueued_at, topic, payload, retain = await self._queue.get()
            self._holding = 1
            while True:
                # the delay is looked up again while waiting: clearing it releases the queue
                wait = enqueued_at + self.faults.delay("mqtt") - time.monotonic()
                if wait <= 0:
                    break
                await asyncio.sleep(min(wait, 0.05))
            self._holding = 0
            kind = self.faults.malformed
            if kind is not None:
                body: bytes | str = malformed_payload(kind, payload, self.config.oversize_bytes)
            else:
                body = json.dumps(payload)
            self._publish(topic, body, self.config.qos, retain)

    def _on_plant_event(self, event: PlantEvent) -> None:
        line = self.config.line
        if isinstance(event, BatchStarted):
            sp = self.plant.setpoints
            b = event.batch
            self.enqueue(
                self.topic("batch/start"),
                {
                    "batch_id": b.batch_id,
                    "line": line,
                    "start_time": iso(b.start_time),
                    "planned_modules": b.size,
                    "target_temperature": sp.target_temperature,
                    "cycle_time": sp.cycle_time,
                    "ts": _now(),
                },
            )
        elif isinstance(event, BatchEnded):
            b = event.batch
            self.enqueue(
                self.topic("batch/end"),
                {
                    "batch_id": b.batch_id,
                    "line": line,
                    "start_time": iso(b.start_time),
                    "end_time": iso(b.end_time),
                    "modules_produced": b.modules_produced,
                    "modules_passed": b.modules_passed,
                    "modules_failed": b.modules_failed,
                    "yield": (b.modules_passed / b.modules_produced) if b.modules_produced else 0.0,
                    "energy_kwh": round(b.energy_kwh, 4),
                    "ts": _now(),
                },
            )
            for material, usage in b.materials.items():
                self.enqueue(
                    self.topic(f"{material}/consumption"),
                    {
                        "batch_id": b.batch_id,
                        "material": material,
                        "consumption": round(usage.consumption, 4),
                        "waste": round(usage.waste, 4),
                        "recycled": round(usage.recycled, 4),
                        "unit": "kg",
                        "ts": _now(),
                    },
                )
        elif isinstance(event, ModuleInspected):
            if self.config.inspections:
                self.enqueue(
                    self.topic("quality/inspection"),
                    {
                        "batch_id": event.batch_id,
                        "module_id": event.module_id,
                        "result": "pass" if event.passed else "fail",
                        "passed": event.passed,
                        "defect": event.defect,
                        "power_w": event.power_w,
                        "ts": iso(event.time),
                    },
                )
        elif isinstance(event, MaterialDelivered):
            self.enqueue(
                self.topic(f"{event.material}/delivery"),
                {
                    "material": event.material,
                    "quantity": round(event.quantity_kg, 4),
                    "quality": round(event.quality, 4),
                    "unit": "kg",
                    "ts": iso(event.time),
                },
            )

    def publish_inventory(self) -> None:
        """Queue one inventory message per material now."""
        values = self.faults.apply("mqtt", self.plant.snapshot())
        for material in (m.name for m in self.plant.config.materials):
            self.enqueue(
                self.topic(f"{material}/inventory"),
                {
                    "material": material,
                    "inventory": values.get(f"materials.{material}.inventory"),
                    "quality": values.get(f"materials.{material}.quality"),
                    "unit": "kg",
                    "ts": _now(),
                },
            )

    async def _inventory_loop(self) -> None:
        while True:
            self.publish_inventory()
            await asyncio.sleep(self.config.inventory_interval)

    async def _synthetic_loop(self) -> None:
        cfg = self.config
        tick = 0.02
        budget = 0.0
        last = time.monotonic()
        index = 0
        frozen_seq: int | None = None
        while True:
            await asyncio.sleep(tick)
            now = time.monotonic()
            budget = min(budget + (now - last) * cfg.synthetic_rate, cfg.synthetic_rate)
            last = now
            if self.faults.is_frozen("mqtt"):
                frozen_seq = self._synthetic_seq if frozen_seq is None else frozen_seq
            else:
                frozen_seq = None
            stamp = _now()
            while budget >= 1.0:
                budget -= 1.0
                seq = frozen_seq if frozen_seq is not None else self._synthetic_seq
                value = round(50.0 + 50.0 * math.sin(0.1 * seq + 0.37 * index), 3)
                body = json.dumps({"value": value, "ts": stamp, "seq": seq})
                self._publish(f"{cfg.synthetic_prefix}/{index}", body, 0, False)
                self._synthetic_seq += 1
                index = (index + 1) % cfg.synthetic_topics
