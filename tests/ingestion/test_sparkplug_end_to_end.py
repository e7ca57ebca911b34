"""The twin fed by a Sparkplug connector built from TOML, through the synchronization engine,
with Eclipse Tahu's Node.js sparkplug-client as the plant's edge node."""

from __future__ import annotations

import time

from circman5.connectors.config import load_connectors
from circman5.connectors.factory import create_connector
from circman5.manufacturing.digital_twin.core.twin_core import DigitalTwin
from circman5.manufacturing.digital_twin.event_notification.reporter import EventProblemReporter
from simulators.external import Mosquitto
from tests.ingestion.conftest import eventually
from tests.ingestion.sparkplug_edge import EdgeNode
from tests.ingestion.test_end_to_end import pipeline


def edge_toml(port: int) -> str:
    return f"""
[[connectors]]
type = "sparkplug"
name = "plant"
port = {port}
rebirth_interval_s = 0.5

[[connectors.tags]]
address = "Plant1/Line1Gateway/Furnace/Zone1/Temperature"
path = "production_line.temperature"

[[connectors.tags]]
address = "Plant1/Line1Gateway//Energy/Total"
path = "production_line.energy_consumption"
scale = 0.001
"""


async def test_the_twin_follows_a_sparkplug_edge_node(
    twin: DigitalTwin, mosquitto: Mosquitto
) -> None:
    (settings,) = load_connectors(edge_toml(mosquitto.port), "edge.toml")
    connector = create_connector(settings, EventProblemReporter())
    edge = EdgeNode(mosquitto.url, "Plant1", "Line1Gateway")
    try:
        await edge.await_event("connected")
        async with pipeline(twin, [connector]) as line:
            await connector.wait_connected()
            now = int(time.time() * 1000)
            await edge.asend(
                "nbirth",
                metrics=[
                    {"name": "Energy/Total", "alias": 1, "type": "UInt64", "value": 125_000},
                ],
            )
            await edge.asend(
                "dbirth",
                device="Furnace",
                metrics=[
                    {"name": "Zone1/Temperature", "alias": 2, "type": "Float", "value": 21.5},
                ],
            )
            await eventually(
                lambda: (
                    line.value("production_line.temperature") == 21.5
                    and line.value("production_line.energy_consumption") == 125.0
                ),
                what="the birth values in the twin",
            )
            await edge.asend(
                "ddata",
                device="Furnace",
                metrics=[{"alias": 2, "type": "Float", "value": 180.25, "timestamp": now}],
            )
            await eventually(
                lambda: line.value("production_line.temperature") == 180.25,
                what="DDATA in the twin",
            )
            assert line.quality("production_line.temperature") == "good"
            await edge.asend("ddeath", device="Furnace")
            await eventually(
                lambda: line.quality("production_line.temperature") == "stale",
                what="the device's death in the twin",
            )
            assert line.value("production_line.temperature") == 180.25  # the last value stays
            assert line.quality("production_line.energy_consumption") == "good"
            assert "plant" in line.engine.stats.sources
    finally:
        edge.close()
