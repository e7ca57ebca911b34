"""Recovery after a server restart, per connector: seconds from the server being ready again to
data flowing through the connector.

Each server is a real process: the simulated PLC (OPC UA) and the simulated meters (Modbus) as
``circman5-sim`` child processes, mosquitto for MQTT. A connector runs against it; the server is
stopped (SIGTERM) and started again on the same port, once per outage length in ``OUTAGES_S``
(2, 5 and 9 s: a backoff schedule's luck depends on where the restart falls), and the worst of
them is reported. Measured is the time from the server's port accepting connections again
(polled every 2 ms) to

* OPC UA and Modbus: the first fresh ``good`` sample (the OPC UA subscription re-created, the
  Modbus unit polled again);
* MQTT: the connector subscribed again (SUBACK; from then on every message is delivered).

Baseline, same run, same outage: the previous reconnect schedule, exponential backoff for an
absent server too (``reconnect_absent_s = None``: 0.5 s doubling; the issue measured 13.8 s for
OPC UA with it). Target: at most 3 s. Run: ``python -m benchmarks recovery``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import tempfile
import threading
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

from benchmarks.report import Row
from simulators.external import port_open

OUTAGES_S = tuple(float(x) for x in os.environ.get("BENCH_RECOVERY_OUTAGES_S", "2,5,9").split(","))
TARGET_S = 3.0
BASELINE_LABEL = "old schedule: backoff also while absent"


class _Watch:
    """Reads a connector's batches; remembers when each good sample of ``path`` arrived."""

    def __init__(self, connector: Any, path: str) -> None:
        self.connector = connector
        self.path = path
        self.arrivals: list[float] = []

    async def run(self) -> None:
        from circman5.connectors.sample import Quality

        async for batch in self.connector.batches():
            now = time.time()  # wall clock: compared with connected_since
            if any(s.path == self.path and s.quality is Quality.GOOD for s in batch):
                self.arrivals.append(now)

    def first_after(self, mark: int) -> float | None:
        return self.arrivals[mark] if len(self.arrivals) > mark else None


async def _until(condition: Callable[[], bool], within: float, what: str) -> None:
    deadline = time.time() + within
    while not condition():
        if time.time() > deadline:
            raise RuntimeError(f"timed out waiting for {what}")
        await asyncio.sleep(0.01)


@contextlib.asynccontextmanager
async def _watching(connector: Any, path: str) -> AsyncIterator[_Watch]:
    async with connector:
        watch = _Watch(connector, path)
        task = asyncio.create_task(watch.run())
        try:
            yield watch
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


def _first_open(port: int, stop: threading.Event) -> float:
    """When ``port`` first accepts a TCP connection (polled every 2 ms in a thread)."""
    while not stop.is_set():
        if port_open(port):
            return time.time()
        time.sleep(0.002)
    return time.time()


async def _restart_and_measure(
    server: Any, port: int, connector: Any, watch: _Watch | None
) -> float:
    """The worst recovery over one restart per outage length in OUTAGES_S."""
    worst = 0.0
    for outage_s in OUTAGES_S:
        worst = max(worst, await _restart_once(server, port, connector, watch, outage_s))
    return worst


async def _restart_once(
    server: Any, port: int, connector: Any, watch: _Watch | None, outage_s: float
) -> float:
    """Stop ``server`` for ``outage_s``, start it; seconds from its port accepting connections
    again (the server is ready) to data through the connector (see the module)."""
    await asyncio.to_thread(server.stop)
    await _until(lambda: not connector.status.connected, 30, "the disconnect")
    await asyncio.sleep(outage_s)
    mark = len(watch.arrivals) if watch is not None else 0
    stop = threading.Event()
    opened = asyncio.create_task(asyncio.to_thread(_first_open, port, stop))
    try:
        await asyncio.to_thread(server.start)
        ready = await opened
    finally:
        stop.set()
    if watch is None:
        # not connected since the stop: connected again means subscribed again
        await _until(lambda: connector.status.connected, 120, "the reconnect")
        back = connector.status.connected_since or ready
    else:
        await _until(lambda: watch.first_after(mark) is not None, 120, "fresh data")
        back = watch.first_after(mark) or ready
    return max(0.0, back - ready)


async def _opcua(workdir: Path, absent_s: float | None) -> float:
    from circman5.connectors.config import OpcUaConnectorSettings
    from circman5.connectors.opcua.client import OpcUaConnector
    from simulators.process import SimulatorProcess

    server = SimulatorProcess(workdir / "plc", extra_args=("--no-modbus", "--no-rtu"))
    await asyncio.to_thread(server.start)
    try:
        settings = OpcUaConnectorSettings.model_validate(
            {
                "type": "opcua",
                "name": "plc",
                "url": server.opcua_url,
                "namespace_uri": "urn:circman5:sim:plc",
                "publishing_interval_ms": 100,
                "reconnect_absent_s": absent_s,
                "tags": [{"address": "s=Line1.Laminator.Temperature", "path": "line.temperature"}],
            }
        )
        async with _watching(OpcUaConnector(settings), "line.temperature") as watch:
            await _until(lambda: bool(watch.arrivals), 60, "the first value")
            return await _restart_and_measure(server, server.port, watch.connector, watch)
    finally:
        await asyncio.to_thread(server.stop)


async def _modbus(workdir: Path, absent_s: float | None) -> float:
    from circman5.connectors.config import ModbusConnectorSettings
    from circman5.connectors.modbus.client import ModbusConnector
    from simulators.process import SimulatorProcess

    server = SimulatorProcess(workdir / "meters", extra_args=("--no-opcua", "--no-rtu"))
    await asyncio.to_thread(server.start)
    try:
        settings = ModbusConnectorSettings.model_validate(
            {
                "type": "modbus",
                "name": "meters",
                "host": "127.0.0.1",
                "port": server.modbus_port,
                "poll_interval_s": 0.1,
                "report": "poll",
                "reconnect_absent_s": absent_s,
                "tags": [
                    {
                        "address": "ir:4",
                        "path": "meter.voltage",
                        "data_type": "float32",
                        "unit_id": 1,
                    }
                ],
            }
        )
        async with _watching(ModbusConnector(settings), "meter.voltage") as watch:
            await _until(lambda: bool(watch.arrivals), 60, "the first value")
            return await _restart_and_measure(server, server.modbus_port, watch.connector, watch)
    finally:
        await asyncio.to_thread(server.stop)


async def _mqtt(workdir: Path, absent_s: float | None) -> float:
    from circman5.connectors.config import MqttConnectorSettings
    from circman5.connectors.mqtt.client import MqttConnector
    from simulators.external import Mosquitto

    broker = Mosquitto(workdir / "mosquitto")
    await asyncio.to_thread(broker.start)
    try:
        settings = MqttConnectorSettings.model_validate(
            {
                "type": "mqtt",
                "name": "mes",
                "port": broker.port,
                "reconnect_absent_s": absent_s,
                "tags": [{"address": "plant/temp", "path": "line.temperature"}],
            }
        )
        connector = MqttConnector(settings)
        async with connector:
            await _until(lambda: connector.status.connected, 60, "the first connection")
            return await _restart_and_measure(broker, broker.port, connector, None)
    finally:
        await asyncio.to_thread(broker.stop)


def _row(name: str, value: float, baseline: float) -> Row:
    return Row(
        name=name,
        value=value,
        unit="s",
        target=TARGET_S,
        higher_is_better=False,
        baseline=baseline,
        baseline_label=BASELINE_LABEL,
    )


async def _all(workdir: Path) -> list[Row]:
    rows = []
    cases = [
        ("OPC UA: server restart -> fresh values", _opcua),
        ("MQTT: broker restart -> subscribed again", _mqtt),
        ("Modbus: device restart -> fresh values", _modbus),
    ]
    for name, measure in cases:
        value = await measure(workdir / "new", 0.5)
        baseline = await measure(workdir / "old", None)
        rows.append(_row(name, value, baseline))
    return rows


def main() -> list[Row]:
    # the connection reports of many restarts are not what this benchmark shows
    logging.getLogger("circman5").setLevel(logging.CRITICAL)
    logging.getLogger("pymodbus").setLevel(logging.CRITICAL)
    with tempfile.TemporaryDirectory(prefix="circman5-bench-recovery-") as tmp:
        workdir = Path(tmp)
        os.environ.setdefault("CIRCMAN5_DATA_DIR", str(workdir / "data"))
        return asyncio.run(_all(workdir))
