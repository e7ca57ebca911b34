"""The whole test bench in one async context manager: plant + OPC UA PLC + Modbus devices + MES.

::

    from simulators.bench import BenchConfig, SimulatorBench
    from simulators.mqtt_mes import MqttConfig

    config = BenchConfig(mqtt=MqttConfig(host="127.0.0.1", port=1883))
    async with SimulatorBench(config) as bench:
        print(bench.endpoints())            # JSON-ready: urls, ports, unit ids, topics
        bench.faults.stuck_at("production_line.temperature", 35.0)
        await bench.outage("opcua", 2.0)    # stop, wait, start on the same port

By default the OPC UA and Modbus servers take free ports; the MES runs only when an
``MqttConfig`` is given.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from simulators.config import BenchConfig
from simulators.faults import Faults
from simulators.lifecycle import Lifecycle
from simulators.modbus_devices import ModbusDevices
from simulators.mqtt_mes import MqttMes
from simulators.opcua_plc import OpcUaPlc
from simulators.plant import Plant, PlantRunner
from simulators.sparkplug_node import SparkplugNode

__all__ = [
    "SERVERS",
    "BenchConfig",
    "SimulatorBench",
]

log = logging.getLogger(__name__)

SERVERS = ("opcua", "modbus", "mqtt")


class SimulatorBench(Lifecycle):
    """Runs the plant in real time and the device servers around it.

    Attributes: ``plant``, ``runner`` (its clock; ``runner.speed`` can change), ``faults``,
    ``opcua``, ``modbus``, ``mes`` (None when left out), ``workdir``.
    """

    def __init__(self, config: BenchConfig | None = None, *, faults: Faults | None = None) -> None:
        self.config = config or BenchConfig()
        self.faults = faults or Faults()
        self.plant = Plant(self.config.plant)
        self.runner = PlantRunner(self.plant)
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        self.workdir = Path(self.config.workdir) if self.config.workdir else Path()
        self.opcua: OpcUaPlc | None = None
        self.modbus: ModbusDevices | None = None
        self.mes: MqttMes | None = None
        self.sparkplug: SparkplugNode | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    # -- lifecycle -----------------------------------------------------------------------------

    async def start(self) -> None:
        cfg = self.config
        if cfg.workdir is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="circman5-sim-")
            self.workdir = Path(self._tmp.name)
        self.workdir.mkdir(parents=True, exist_ok=True)
        if cfg.opcua is not None:
            self.opcua = OpcUaPlc(self.plant, self.faults, cfg.opcua, self.workdir / "opcua")
        if cfg.modbus is not None:
            self.modbus = ModbusDevices(self.plant, self.faults, cfg.modbus)
        if cfg.mqtt is not None:
            self.mes = MqttMes(self.plant, self.faults, cfg.mqtt, on_command=self.command)
        if cfg.sparkplug is not None:
            self.sparkplug = SparkplugNode(self.plant, cfg.sparkplug)
        try:
            await self.runner.start()
            if self.modbus is not None:
                await self.modbus.start()
            if self.opcua is not None:
                await self.opcua.start()
            if self.mes is not None:
                await self.mes.start()
                if cfg.broker_timeout > 0:
                    async with asyncio.timeout(cfg.broker_timeout):
                        await self.mes.wait_connected()
            if self.sparkplug is not None:
                await self.sparkplug.start()
                if cfg.broker_timeout > 0:
                    async with asyncio.timeout(cfg.broker_timeout):
                        await self.sparkplug.wait_connected()
        except BaseException:
            await self.stop()
            raise

    async def stop(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for server in (self.sparkplug, self.mes, self.opcua, self.modbus):
            if server is not None:
                try:
                    await server.stop()
                except Exception:
                    log.exception("stopping %s failed", type(server).__name__)
        await self.runner.stop()
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    # -- servers -------------------------------------------------------------------------------

    def server(self, name: str) -> OpcUaPlc | ModbusDevices | MqttMes:
        """The server object for ``opcua``, ``modbus`` or ``mqtt`` (ValueError if not running)."""
        servers: dict[str, OpcUaPlc | ModbusDevices | MqttMes | None] = {
            "opcua": self.opcua,
            "modbus": self.modbus,
            "mqtt": self.mes,
        }
        if name not in servers:
            raise ValueError(f"unknown server {name!r}; expected one of {SERVERS}")
        server = servers[name]
        if server is None:
            raise ValueError(f"server {name!r} is not part of this bench")
        return server

    async def stop_server(self, name: str) -> None:
        await self.server(name).stop()

    async def start_server(self, name: str) -> None:
        await self.server(name).start()

    async def outage(self, name: str, seconds: float) -> None:
        """Stop a server for ``seconds``, then start it again on the same port."""
        await self.server(name).restart(downtime=seconds)

    def schedule_outage(self, name: str, after: float, seconds: float) -> None:
        """Run :meth:`outage` in the background ``after`` seconds from now."""
        self.server(name)

        async def run() -> None:
            await asyncio.sleep(after)
            await self.outage(name, seconds)

        task = asyncio.create_task(run(), name=f"outage-{name}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def command(self, cmd: Mapping[str, Any]) -> None:
        """Apply a control command: a fault command, ``stop``/``start``/``restart`` (``server``,
        ``downtime``), ``setpoint`` (``target_temperature``/``cycle_time``/``running``),
        ``start_batch`` (``batch_id``), ``end_batch`` or ``speed`` (``value``)."""
        name = str(cmd.get("cmd", ""))
        if name in ("stop", "start", "restart"):
            server = str(cmd.get("server", ""))
            if server == "mqtt":
                raise ValueError("the MES cannot be stopped over its own control topic")
            if name == "stop":
                await self.stop_server(server)
            elif name == "start":
                await self.start_server(server)
            else:
                await self.outage(server, float(cmd.get("downtime", 0.0)))
        elif name == "setpoint":
            self.plant.set_setpoints(
                target_temperature=cmd.get("target_temperature"),
                cycle_time=cmd.get("cycle_time"),
                running=cmd.get("running"),
            )
        elif name == "start_batch":
            self.plant.start_batch(cmd.get("batch_id"))
        elif name == "end_batch":
            self.plant.end_batch()
        elif name == "speed":
            self.runner.speed = float(cmd["value"])
        else:
            self.faults.command(cmd)

    async def reset(self) -> None:
        """Back to the configured state: faults off, configured setpoints, clock running, every
        configured server started (batches and stocks carry on)."""
        self.faults.clear_all()
        self.runner.paused = False
        initial = self.config.plant.setpoints
        self.plant.set_setpoints(
            target_temperature=initial.target_temperature,
            cycle_time=initial.cycle_time,
            running=initial.running,
        )
        for server in (self.modbus, self.opcua, self.mes):
            if server is not None and not server.running:
                await server.start()

    def endpoints(self) -> dict[str, Any]:
        """Where everything listens, JSON-ready (also printed by the CLI)."""
        return {
            "opcua": self.opcua.endpoint_info() if self.opcua is not None else None,
            "modbus": self.modbus.endpoint_info() if self.modbus is not None else None,
            "mqtt": self.mes.endpoint_info() if self.mes is not None else None,
            "sparkplug": self.sparkplug.endpoint_info() if self.sparkplug is not None else None,
            "workdir": str(self.workdir),
            "speed": self.runner.speed,
            "seed": self.plant.config.seed,
        }
