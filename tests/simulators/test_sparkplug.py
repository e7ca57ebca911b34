"""The simulators' Sparkplug B edge node: read by the product's Sparkplug host connector,
commanded by an independent host (MQTT.js + Eclipse Tahu's sparkplug-payload), and as the
``--sparkplug`` option of the simulator process."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from circman5.connectors.sparkplug.client import SparkplugConnector
from circman5.connectors.sparkplug.config import SparkplugConnectorSettings
from circman5.samples import Quality
from simulators.bench import SimulatorBench
from simulators.config import SparkplugConfig
from simulators.external import Mosquitto
from simulators.process import SimulatorProcess
from simulators.sparkplug_node import device_and_metric
from tests.ingestion.conftest import collecting, eventually
from tests.ingestion.sparkplug_host import SparkplugHost, metrics_by_name

GROUP, NODE = "Plant1", "sim-line1"
PATHS = {
    "production_line.temperature": "Plant1/sim-line1/production_line/temperature",
    "production_line.target_temperature": "Plant1/sim-line1/production_line/target_temperature",
    "production_line.status": "Plant1/sim-line1/production_line/status",
    "production_line.running": "Plant1/sim-line1/production_line/running",
    "materials.silicon_wafer.inventory": "Plant1/sim-line1/materials/silicon_wafer/inventory",
}


def host_settings(port: int) -> SparkplugConnectorSettings:
    return SparkplugConnectorSettings.model_validate(
        {
            "type": "sparkplug",
            "name": "plant",
            "port": port,
            "tags": [{"address": address, "path": path} for path, address in PATHS.items()],
        }
    )


async def test_the_product_host_reads_the_simulated_edge_node(
    mosquitto: Mosquitto, sim_bench_factory: Callable[..., Awaitable[SimulatorBench]]
) -> None:
    bench = await sim_bench_factory(
        opcua=None, modbus=None, sparkplug=SparkplugConfig(port=mosquitto.port, rate_hz=20)
    )
    spb_host = SparkplugHost(mosquitto.url, GROUP)
    try:
        spb_host.wait_for(lambda m: m.get("event") == "subscribed", what="the subscription")
        connector = SparkplugConnector(host_settings(mosquitto.port))
        async with collecting(connector) as collector:
            # the host asks the node (born before the host listened) for a rebirth
            await eventually(lambda: set(PATHS) <= set(collector.latest()), within=20)
            plant = bench.plant.snapshot()
            latest = collector.latest()
            assert latest["production_line.status"].value == plant["production_line.status"]
            assert latest["production_line.running"].value is True
            assert isinstance(latest["production_line.temperature"].value, float)
            catalog = {m.address: m for m in connector.catalog()}
            assert catalog[PATHS["production_line.temperature"]].unit == "°C"
            assert catalog[PATHS["production_line.temperature"]].datatype == "Double"
            assert connector.stats.rebirth_requests >= 1

            # DATA by alias follows the plant
            bench.plant.set_setpoints(target_temperature=26.0)
            await eventually(
                lambda: collector.values("production_line.target_temperature")[-1:] == [26.0],
                what="the new setpoint as DDATA",
            )

            # an independent host writes a setpoint with a DCMD; an out-of-range one is refused
            await spb_host.asend(
                "dcmd",
                node=NODE,
                device="production_line",
                metrics=[{"name": "target_temperature", "type": "Double", "value": 24.5}],
            )
            await eventually(
                lambda: bench.plant.setpoints.target_temperature == 24.5, what="the DCMD write"
            )
            await eventually(
                lambda: collector.values("production_line.target_temperature")[-1:] == [24.5],
                what="the written setpoint back as DDATA",
            )
            assert bench.sparkplug is not None
            await spb_host.asend(
                "dcmd",
                node=NODE,
                device="production_line",
                metrics=[{"name": "target_temperature", "type": "Double", "value": 99.0}],
            )
            await eventually(lambda: bench.sparkplug.commands_refused == 1, what="the refusal")
            assert bench.plant.setpoints.target_temperature == 24.5

            # the node stops: NDEATH, every path stale
            await bench.sparkplug.stop()
            await eventually(
                lambda: set(PATHS) <= set(collector.latest(Quality.STALE)),
                what="every path stale after the death",
            )
    finally:
        spb_host.close()


def test_the_simulator_process_speaks_sparkplug(
    mosquitto: Mosquitto, sim_process_factory: Callable[..., SimulatorProcess]
) -> None:
    spb_host = SparkplugHost(mosquitto.url, "Demo")
    try:
        spb_host.wait_for(lambda m: m.get("event") == "subscribed", what="the subscription")
        process = sim_process_factory(
            extra_args=("--sparkplug", "--sparkplug-group", "Demo", "--sparkplug-node", "gw"),
            broker=mosquitto,
        )
        endpoint: dict[str, Any] = process.endpoints["sparkplug"]
        assert (endpoint["group_id"], endpoint["edge_node_id"]) == ("Demo", "gw")
        index, _ = spb_host.wait_message("NBIRTH", node="gw")
        _, line = spb_host.wait_message("DBIRTH", start=index, device="production_line")
        temperature = metrics_by_name(line)["temperature"]
        assert temperature["type"] == "Double"
        assert temperature["properties"]["engUnit"]["value"] == "°C"
        spb_host.wait_message("DDATA", start=index, device="production_line")
        process.kill()
        _, death = spb_host.wait_message("NDEATH", start=index, node="gw")
        assert metrics_by_name(death)["bdSeq"]["value"] == 0
    finally:
        spb_host.close()


def test_metric_names_follow_the_gateway_convention() -> None:
    assert device_and_metric("materials.silicon_wafer.inventory") == (
        "materials",
        "silicon_wafer/inventory",
    )
    assert device_and_metric("production_line.temperature") == ("production_line", "temperature")
