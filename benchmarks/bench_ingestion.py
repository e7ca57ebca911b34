"""Ingestion throughput: each protocol end to end beside the bare library, in the same run.

* **MQTT**: a publisher process sends small JSON messages to mosquitto as fast as it can; measured
  is the rate at which they arrive - in a bare paho subscriber (on_message counts), and through the
  whole pipeline (paho thread -> MqttConnector -> SynchronizationEngine at 10 Hz -> DigitalTwin,
  every raw sample to a sink).
* **OPC UA**: the simulated PLC (a child process) with 10,000 synthetic tags changing several
  times a second; measured are data changes per second received by a bare asyncua subscription
  (the faster of handler and iterator mode) and by OpcUaConnector -> engine -> twin.
* **Modbus**: the simulated devices' synthetic unit; registers per second read by a bare pymodbus
  loop (``read_holding_registers`` of 125 registers, back to back) and by ModbusConnector
  (1,000 uint16 tags, merged into 8 requests, poll interval 0) -> engine -> twin, with the
  default ``report = "change"`` (every register decoded and compared, changed values become
  samples: the synthetic registers change once a second). A second row, without a target, shows
  ``report = "poll"``, where every polled value becomes a sample.

Runs alternate bare and pipeline ``ROUNDS`` times and keep the best of each, so a noisy neighbour
on the machine hurts both sides alike. Target: at least 0.8 of the bare figure.
Run: ``python -m benchmarks ingestion``.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import gc
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

from benchmarks.report import Row

ROUNDS = int(os.environ.get("BENCH_INGESTION_ROUNDS", "3"))
RATIO = 0.8

MQTT_MESSAGES = 200_000
MQTT_TOPICS = 100
OPCUA_TAGS = 10_000
OPCUA_RATE_HZ = 2.0
OPCUA_WINDOW_S = 4.0
OPCUA_ROUNDS = 2  # each round subscribes 10,000 items three times
MODBUS_REGISTERS = 1000
MODBUS_WINDOW_S = 4.0

_PUBLISHER = """
import sys, time
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
port, count, topics = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="bench-publisher")
client.max_queued_messages_set(0)
client.connect("127.0.0.1", port)
client.loop_start()
names = [f"bench/line1/tag{i}/value" for i in range(topics)]
for i in range(count):
    client.publish(names[i % topics], b'{"value": %d.5, "seq": %d}' % (i, i), qos=0)
client.publish("bench/done", b"1", qos=1).wait_for_publish()
client.disconnect()
client.loop_stop()
"""


def _project_root() -> Path:
    return Path(__file__).resolve().parent.parent


# -- MQTT -----------------------------------------------------------------------------------------


def _start_publisher(port: int) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-c", _PUBLISHER, str(port), str(MQTT_MESSAGES), str(MQTT_TOPICS)],
        cwd=_project_root(),
    )


def _mqtt_bare(port: int) -> float:
    """Messages/s received by a bare paho subscriber (on_message only counts)."""
    import paho.mqtt.client as paho
    from paho.mqtt.enums import CallbackAPIVersion

    state = {"count": 0, "first": 0.0, "last": 0.0}
    done = threading.Event()
    subscribed = threading.Event()

    def on_message(client: Any, userdata: Any, message: Any) -> None:
        state["count"] += 1
        now = time.perf_counter()
        if state["count"] == 1:
            state["first"] = now
        state["last"] = now
        if state["count"] >= MQTT_MESSAGES:
            done.set()

    client = paho.Client(CallbackAPIVersion.VERSION2, client_id="bench-bare")
    client.on_message = on_message
    client.on_connect = lambda c, *a: c.subscribe("bench/line1/+/value", 0)
    client.on_subscribe = lambda *a: subscribed.set()
    client.connect("127.0.0.1", port)
    client.loop_start()
    try:
        subscribed.wait(10)
        publisher = _start_publisher(port)
        _wait_done(done, lambda: state["last"])
        publisher.wait(60)
    finally:
        client.disconnect()
        client.loop_stop()
    return _rate(state["count"], state["first"], state["last"])


def _wait_done(done: threading.Event, last: Callable[[], float], idle_s: float = 3.0) -> None:
    """Until every message arrived, or nothing arrived for ``idle_s`` (a broker drop)."""
    deadline = time.perf_counter() + 120
    while not done.wait(0.2):
        stamp = last()
        if (stamp and time.perf_counter() - stamp > idle_s) or time.perf_counter() > deadline:
            return


def _rate(count: float, first: float, last: float) -> float:
    return count / (last - first) if last > first else 0.0


async def _mqtt_pipeline(port: int) -> float:
    """Messages/s through MqttConnector -> SynchronizationEngine -> DigitalTwin."""
    from circman5.connectors.config import MqttConnectorSettings
    from circman5.connectors.mqtt.client import MqttConnector
    from circman5.samples import Sample

    settings = MqttConnectorSettings.model_validate(
        {
            "type": "mqtt",
            "name": "bench",
            "port": port,
            "protocol": "3.1.1",
            "qos": 0,
            "clean_start": True,
            "tags": [
                {"address": "bench/line1/+/value", "path": "bench.{1}.value", "field": "value"}
            ],
        }
    )
    state = {"count": 0, "skipped": 0, "first": 0.0, "last": 0.0}
    done = asyncio.Event()

    def sink(batch: list[Sample]) -> None:
        # Throughput from the first tick that delivered samples to the last one: the samples
        # of the first tick arrived before the clock started, so they are not counted.
        now = time.perf_counter()
        if not state["first"]:
            state["first"] = now
            state["skipped"] = len(batch)
        else:
            state["count"] += len(batch)
        state["last"] = now
        if state["count"] + state["skipped"] >= MQTT_MESSAGES:
            done.set()

    connector = MqttConnector(settings)
    async with _engine(connector, sink):
        async with asyncio.timeout(10):
            await connector.wait_connected()
        await asyncio.sleep(0.3)  # the SUBACK
        publisher = _start_publisher(port)
        try:
            await _wait_async(done, lambda: state["last"])
        finally:
            await asyncio.to_thread(publisher.wait, 60)
    return _rate(state["count"], state["first"], state["last"])


async def _wait_async(done: asyncio.Event, last: Callable[[], float], idle_s: float = 3.0) -> None:
    deadline = time.perf_counter() + 120
    while not done.is_set():
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(0.2):
                await done.wait()
        stamp = last()
        if (stamp and time.perf_counter() - stamp > idle_s) or time.perf_counter() > deadline:
            return


@contextlib.asynccontextmanager
async def _engine(connector: Any, sink: Callable[[Any], None]) -> AsyncIterator[Any]:
    """``connector`` entered, feeding an engine (10 Hz) and a fresh DigitalTwin."""
    from circman5.manufacturing.digital_twin.core.synchronization import SynchronizationEngine
    from circman5.manufacturing.digital_twin.core.twin_core import DigitalTwin
    from circman5.manufacturing.digital_twin.event_notification.event_manager import (
        EventManager,
    )

    EventManager._reset_instance()
    DigitalTwin._reset_instance()
    twin = DigitalTwin()
    twin.initialize()
    async with connector:
        engine = SynchronizationEngine(twin, [connector], tick_rate_hz=10.0, sinks=[sink])
        async with asyncio.TaskGroup() as group:
            task = group.create_task(engine.run())
            try:
                yield engine
            finally:
                task.cancel()
    if engine.stats.updates < 1:
        raise RuntimeError("the twin was never updated")
    DigitalTwin._reset_instance()


def bench_mqtt(workdir: Path) -> Row:
    from simulators.external import Mosquitto

    bare: list[float] = []
    ours: list[float] = []
    for round_ in range(ROUNDS + 1):  # short runs: one more round against the noise
        with Mosquitto(workdir / f"mosquitto{round_}") as broker:
            gc.collect()
            bare.append(_mqtt_bare(broker.port))
        with Mosquitto(workdir / f"mosquitto{round_}b") as broker:
            gc.collect()
            ours.append(asyncio.run(_mqtt_pipeline(broker.port)))
    return _row(
        "MQTT end to end (mosquitto -> twin)",
        "msgs/s",
        max(ours),
        max(bare),
        "bare paho subscriber",
    )


# -- OPC UA ---------------------------------------------------------------------------------------


def _start_plc(workdir: Path) -> Any:
    from simulators.process import SimulatorProcess

    process = SimulatorProcess(
        workdir,
        extra_args=(
            "--no-modbus",
            "--opcua-synthetic",
            str(OPCUA_TAGS),
            "--opcua-synthetic-rate",
            str(OPCUA_RATE_HZ),
        ),
        ready_timeout=120.0,
    )
    return process.start()


async def _opcua_bare(url: str) -> float:
    """Data changes/s of a bare asyncua subscription (handler or iterator mode)."""
    from asyncua import ua
    from asyncua.client.client import Client

    count = 0

    class Handler:
        def datachange_notification(self, node: Any, val: Any, data: Any) -> None:
            nonlocal count
            count += 1

    async with Client(url, timeout=30, watchdog_intervall=60) as client:
        index = await client.get_namespace_index("urn:circman5:sim:plc")
        nodes = [
            client.get_node(ua.NodeId(f"Line1.Synthetic.Tag{i:05d}", index))
            for i in range(OPCUA_TAGS)
        ]
        best = 0.0
        for mode in ("handler", "iterator"):
            handler = Handler() if mode == "handler" else None
            subscription = await client.create_subscription(100, handler, queue_maxsize=1_000_000)
            await subscription.subscribe_data_change(nodes, sampling_interval=50)
            drain: asyncio.Task[None] | None = None
            if handler is None:

                async def consume(sub: Any = subscription) -> None:
                    nonlocal count
                    async for _event in sub:
                        count += 1

                drain = asyncio.create_task(consume())
            await asyncio.sleep(2.0)  # initial values and warm-up
            start_count, start = count, time.perf_counter()
            await asyncio.sleep(OPCUA_WINDOW_S)
            best = max(best, (count - start_count) / (time.perf_counter() - start))
            await subscription.delete()
            if drain is not None:
                drain.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await drain
    return best


async def _opcua_pipeline(url: str) -> float:
    from circman5.connectors.config import OpcUaConnectorSettings
    from circman5.connectors.opcua.client import OpcUaConnector
    from circman5.samples import Sample

    settings = OpcUaConnectorSettings.model_validate(
        {
            "type": "opcua",
            "name": "bench",
            "url": url,
            "namespace_uri": "urn:circman5:sim:plc",
            "publishing_interval_ms": 100,
            "sampling_interval_ms": 50,
            "queue_size": 0,  # as the bare subscription (asyncua's default): the server's cap
            "request_timeout_s": 30,
            "watchdog_timeout_s": 10,
            "tags": [
                {"address": f"s=Line1.Synthetic.Tag{i:05d}", "path": f"synthetic.tag{i:05d}"}
                for i in range(OPCUA_TAGS)
            ],
        }
    )
    count = 0

    def sink(batch: list[Sample]) -> None:
        nonlocal count
        count += len(batch)

    connector = OpcUaConnector(settings)
    async with _engine(connector, sink):
        async with asyncio.timeout(60):
            await connector.wait_connected()
        await asyncio.sleep(2.0)
        start_count, start = count, time.perf_counter()
        await asyncio.sleep(OPCUA_WINDOW_S)
        rate = (count - start_count) / (time.perf_counter() - start)
    return rate


def bench_opcua(workdir: Path) -> Row:
    plc = _start_plc(workdir / "plc")
    try:
        bare: list[float] = []
        ours: list[float] = []
        for _ in range(min(ROUNDS, OPCUA_ROUNDS)):
            gc.collect()
            bare.append(asyncio.run(_opcua_bare(plc.opcua_url)))
            gc.collect()
            ours.append(asyncio.run(_opcua_pipeline(plc.opcua_url)))
    finally:
        plc.stop()
    return _row(
        f"OPC UA data changes ({OPCUA_TAGS:,} tags)",
        "changes/s",
        max(ours),
        max(bare),
        "bare asyncua subscription",
    )


# -- Modbus ---------------------------------------------------------------------------------------


def _start_devices(workdir: Path) -> Any:
    from simulators.process import SimulatorProcess

    process = SimulatorProcess(
        workdir,
        extra_args=("--no-opcua", "--no-rtu", "--modbus-synthetic", str(MODBUS_REGISTERS)),
    )
    return process.start()


async def _modbus_bare(port: int) -> float:
    from pymodbus.client import AsyncModbusTcpClient

    client = AsyncModbusTcpClient("127.0.0.1", port=port, reconnect_delay=0)
    await client.connect()
    try:
        registers = 0
        address = 0
        end = time.perf_counter() + 0.5
        while time.perf_counter() < end:  # warm-up
            await client.read_holding_registers(0, count=125, device_id=4)
        start = time.perf_counter()
        end = start + MODBUS_WINDOW_S
        while time.perf_counter() < end:
            response = await client.read_holding_registers(address, count=125, device_id=4)
            if response.isError():
                raise RuntimeError(f"bare Modbus read failed: {response}")
            registers += len(response.registers)
            address = (address + 125) % MODBUS_REGISTERS
        return registers / (time.perf_counter() - start)
    finally:
        client.close()


async def _modbus_pipeline(port: int, report: str) -> float:
    """Registers/s read by ModbusConnector (1,000 uint16 tags) feeding engine and twin."""
    from circman5.connectors.config import ModbusConnectorSettings
    from circman5.connectors.modbus.client import ModbusConnector
    from circman5.samples import Sample

    settings = ModbusConnectorSettings.model_validate(
        {
            "type": "modbus",
            "name": "bench",
            "host": "127.0.0.1",
            "port": port,
            "unit_id": 4,
            "poll_interval_s": 0,
            "report": report,
            "tags": [
                {"address": f"hr:{i}", "path": f"synthetic.r{i:04d}", "data_type": "uint16"}
                for i in range(MODBUS_REGISTERS)
            ],
        }
    )
    samples = 0

    def sink(batch: list[Sample]) -> None:
        nonlocal samples
        samples += len(batch)

    connector = ModbusConnector(settings)
    async with _engine(connector, sink) as engine:
        async with asyncio.timeout(10):
            await connector.wait_connected()
        await asyncio.sleep(0.5)
        start_count, start = connector.registers_read, time.perf_counter()
        await asyncio.sleep(MODBUS_WINDOW_S)
        rate = (connector.registers_read - start_count) / (time.perf_counter() - start)
        await asyncio.sleep(0.2)
        twin_paths = len(engine.qualities())
    if samples < MODBUS_REGISTERS or twin_paths < MODBUS_REGISTERS:
        raise RuntimeError(f"the twin did not get the registers ({samples} samples)")
    return rate


def bench_modbus(workdir: Path) -> list[Row]:
    devices = _start_devices(workdir / "devices")
    try:
        bare: list[float] = []
        changes: list[float] = []
        every: list[float] = []
        for _ in range(ROUNDS):
            gc.collect()
            bare.append(asyncio.run(_modbus_bare(devices.modbus_port)))
            gc.collect()
            changes.append(asyncio.run(_modbus_pipeline(devices.modbus_port, "change")))
            gc.collect()
            every.append(asyncio.run(_modbus_pipeline(devices.modbus_port, "poll")))
    finally:
        devices.stop()
    label = "bare pymodbus read loop"
    informational = _row(
        "Modbus registers read, report = poll (every value a sample)",
        "registers/s",
        max(every),
        max(bare),
        label,
    )
    return [
        _row(
            "Modbus registers read (1,000 uint16 tags)",
            "registers/s",
            max(changes),
            max(bare),
            label,
        ),
        dataclasses.replace(informational, target=None),  # shown for comparison
    ]


def _row(name: str, unit: str, value: float, baseline: float, label: str) -> Row:
    return Row(
        name=name,
        value=value,
        unit=unit,
        target=RATIO * baseline,
        baseline=baseline,
        baseline_label=label,
    )


def main() -> list[Row]:
    with tempfile.TemporaryDirectory(prefix="circman5-bench-ingestion-") as tmp:
        workdir = Path(tmp)
        os.environ.setdefault("CIRCMAN5_DATA_DIR", str(workdir / "data"))
        return [bench_mqtt(workdir), bench_opcua(workdir), *bench_modbus(workdir)]
