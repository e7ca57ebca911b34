"""The connector contract: the factory, the Protocol, single samples, no import side effects."""

from __future__ import annotations

import asyncio
import subprocess
import sys

from circman5.connectors import Connector, create_connector, create_connectors, load_connectors
from circman5.connectors.base import BaseConnector
from circman5.connectors.modbus.client import ModbusConnector
from circman5.connectors.mqtt.client import MqttConnector
from circman5.connectors.opcua.client import OpcUaConnector
from circman5.samples import SampleValue
from simulators.external import Mosquitto
from tests.ingestion.test_mqtt import publish

TAG_MAP = """
[[connectors]]
type = "opcua"
name = "plc"
url = "opc.tcp://127.0.0.1:4840"
[[connectors.tags]]
address = "i=2258"
path = "server.current_time"

[[connectors]]
type = "mqtt"
name = "mes"
[[connectors.tags]]
address = "plant/temp"
path = "production_line.temperature"

[[connectors]]
type = "modbus"
name = "meter"
host = "127.0.0.1"
enabled = false
[[connectors.tags]]
address = "ir:0"
path = "energy_meter.active_power"
"""


def test_the_factory_builds_each_type() -> None:
    settings = load_connectors(TAG_MAP)
    built = [create_connector(entry) for entry in settings]
    assert [type(c) for c in built] == [OpcUaConnector, MqttConnector, ModbusConnector]
    assert all(isinstance(c, Connector) for c in built)
    assert [c.name for c in create_connectors(settings)] == ["plc", "mes"]  # meter is disabled
    assert built[0].paths() == ["server.current_time"]
    assert built[0].status.connected is False and built[0].status.protocol == "opcua"


def test_importing_the_contract_and_the_engine_loads_no_protocol_library() -> None:
    code = (
        "import sys\n"
        "import circman5.connectors, circman5.connectors.config\n"
        "import circman5.manufacturing.digital_twin.core.synchronization\n"
        "loaded = [m for m in ('asyncua', 'paho', 'pymodbus') if m in sys.modules]\n"
        "import threading\n"
        "print(loaded, threading.active_count())\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert result.stdout.strip() == "[] 1"


async def test_samples_one_at_a_time(mosquitto: Mosquitto) -> None:
    await asyncio.to_thread(publish, mosquitto.port, [("plant/temp", b"21.5", 1)], retain=True)
    settings = load_connectors(
        TAG_MAP.replace('name = "mes"', f'name = "mes"\nport = {mosquitto.port}')
    )
    connector = create_connector(settings[1])
    async with connector:
        async with asyncio.timeout(10):
            async for sample in connector.samples():  # the retained message comes first
                assert sample.path == "production_line.temperature"
                assert sample.value == 21.5
                break
    assert connector.status.connected is False
    assert connector.status.samples_in == 1


class _StubbornConnector(BaseConnector):
    """A connector whose loop swallows the first cancellation, as a library sometimes does."""

    protocol = "stub"

    def __init__(self) -> None:
        super().__init__("stubborn")
        self.swallowed = 0

    async def write(self, target: str, value: SampleValue) -> None:
        raise NotImplementedError

    async def _run(self) -> None:
        while True:
            try:
                await asyncio.sleep(3600)
            except asyncio.CancelledError:
                if self.swallowed:
                    raise
                self.swallowed += 1  # lost, like asyncio.wait_for's race on Python 3.11


async def test_a_connector_closes_even_when_its_loop_swallows_a_cancellation() -> None:
    connector = _StubbornConnector()
    async with asyncio.timeout(10):
        async with connector:
            await asyncio.sleep(0.05)
    assert connector.swallowed == 1
