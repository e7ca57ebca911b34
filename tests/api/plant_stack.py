"""A real plant behind the twin, for the write-back and browser tests.

The simulated line (plant model + OPC UA PLC from ``simulators``), the OPC UA connector on it,
and the synchronization engine feeding the DigitalTwin: the same chain as in the service. The
setpoints ``production_line.target_temperature`` and ``production_line.cycle_time`` are writable
through the connector (``connector name: plc``).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

from circman5.api.setpoints import SetpointLimit
from circman5.connectors.config import OpcUaConnectorSettings, OpcUaTag
from circman5.connectors.opcua.client import OpcUaConnector
from circman5.manufacturing.digital_twin.core.synchronization import SynchronizationEngine
from circman5.manufacturing.digital_twin.core.twin_core import DigitalTwin
from simulators.bench import SimulatorBench
from simulators.config import BenchConfig
from simulators.opcua_plc import NAMESPACE_URI, NODES

CONNECTOR = "plc"

# The PLC variables the twin follows (the twin's state sections).
TWIN_PATHS = {
    "production_line.status",
    "production_line.temperature",
    "production_line.energy_consumption",
    "production_line.production_rate",
    "production_line.efficiency",
    "production_line.defect_rate",
    "production_line.target_temperature",
    "production_line.cycle_time",
    "materials.silicon_wafer.inventory",
    "materials.silicon_wafer.quality",
    "materials.solar_glass.inventory",
    "materials.solar_glass.quality",
    "environment.temperature",
    "environment.humidity",
}

SETPOINT_LIMITS = (
    SetpointLimit(
        "production_line.target_temperature",
        18.0,
        32.0,
        CONNECTOR,
        unit="°C",
        description="Laminator target temperature",
        tolerance=1e-6,
    ),
    SetpointLimit(
        "production_line.cycle_time",
        20.0,
        60.0,
        CONNECTOR,
        unit="s",
        description="Laminator cycle time",
        tolerance=1e-6,
    ),
)


@dataclass
class PlantStack:
    bench: SimulatorBench
    connector: OpcUaConnector
    engine: SynchronizationEngine


def connector_settings(url: str) -> OpcUaConnectorSettings:
    return OpcUaConnectorSettings(
        type="opcua",
        name=CONNECTOR,
        url=url,
        publishing_interval_ms=50,
        sampling_interval_ms=50,
        request_timeout_s=4.0,
        tags=[
            OpcUaTag(
                address=f"nsu={NAMESPACE_URI};s={node.node_id}",
                path=node.path,
                writable=node.writable,
            )
            for node in NODES
            if node.path in TWIN_PATHS
        ],
    )


@contextlib.asynccontextmanager
async def plant_stack(
    workdir: Path, twin: DigitalTwin, synchronize: bool = True
) -> AsyncIterator[PlantStack]:
    """Start the plant, the PLC, the connector and (if ``synchronize``) the sync engine."""
    bench = SimulatorBench(BenchConfig(workdir=workdir, modbus=None, mqtt=None))
    await bench.start()
    try:
        assert bench.opcua is not None
        async with OpcUaConnector(connector_settings(bench.opcua.url)) as connector:
            try:
                async with asyncio.timeout(20.0):
                    await connector.wait_connected()
            except TimeoutError as err:
                url = bench.opcua.url
                raise AssertionError(f"the OPC UA connector did not connect to {url}") from err
            engine = SynchronizationEngine(twin, [connector], tick_rate_hz=20.0)
            async with asyncio.TaskGroup() as tasks:
                runner = tasks.create_task(engine.run()) if synchronize else None
                try:
                    yield PlantStack(bench, connector, engine)
                finally:
                    if runner is not None:
                        runner.cancel()
    finally:
        await bench.stop()
