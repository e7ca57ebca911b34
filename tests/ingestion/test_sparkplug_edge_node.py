"""The Sparkplug B edge node against a real mosquitto, read by an independent host (MQTT.js and
Eclipse Tahu's sparkplug-payload, see :mod:`tests.ingestion.sparkplug_host`)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from circman5.connectors.sparkplug.edge_config import SparkplugEdgeSettings
from circman5.connectors.sparkplug.edge_node import Command, SparkplugEdgeNode
from circman5.samples import Quality
from simulators.external import Mosquitto
from tests.ingestion.conftest import eventually
from tests.ingestion.sparkplug_host import SparkplugHost, bd_seq_of, metrics_by_name

GROUP = "Twins"
NODE = "line1"


def edge_settings(port: int, **extra: Any) -> SparkplugEdgeSettings:
    return SparkplugEdgeSettings.model_validate(
        {"port": port, "group_id": GROUP, "edge_node_id": NODE, **extra}
    )


@pytest.fixture
def host(mosquitto: Mosquitto) -> Iterator[SparkplugHost]:
    spb_host = SparkplugHost(mosquitto.url, GROUP)
    spb_host.wait_for(lambda m: m.get("event") == "subscribed", what="the host's subscription")
    yield spb_host
    spb_host.close()


async def test_birth_data_deadband_rebirth_and_death(
    mosquitto: Mosquitto, host: SparkplugHost, tmp_path: Path
) -> None:
    node = SparkplugEdgeNode(
        edge_settings(
            mosquitto.port,
            publish=["production_line.*", "materials.*"],
            exclude=["production_line.secret"],
            deadband=0.5,
        ),
        units={"production_line.temperature": "°C"},
        bd_seq_file=tmp_path / "bdseq",
    )
    node.update(
        {
            "production_line.temperature": 22.5,
            "production_line.count": 3,
            "production_line.running": True,
            "production_line.status": "idle",
            "production_line.secret": 1.0,
            "environment.humidity": 45.0,
        }
    )
    async with node:
        _, birth = await host.await_message("NBIRTH", node=NODE)
        assert birth["seq"] == 0
        metrics = metrics_by_name(birth)
        assert set(metrics) == {
            "bdSeq",
            "Node Control/Rebirth",
            "production_line.temperature",
            "production_line.count",
            "production_line.running",
            "production_line.status",
        }
        assert metrics["Node Control/Rebirth"]["value"] is False
        bd_seq = bd_seq_of(birth)
        assert bd_seq == 0
        temperature = metrics["production_line.temperature"]
        assert (temperature["type"], temperature["value"]) == ("Double", 22.5)
        assert temperature["properties"]["engUnit"] == {"type": "String", "value": "°C"}
        assert (
            metrics["production_line.count"]["type"],
            metrics["production_line.count"]["value"],
        ) == ("Int64", 3)
        assert metrics["production_line.running"]["type"] == "Boolean"
        assert metrics["production_line.status"]["value"] == "idle"
        aliases = [m["alias"] for name, m in metrics.items() if "." in name]
        assert len(set(aliases)) == 4 and all(isinstance(a, int) for a in aliases)
        alias = {name: m["alias"] for name, m in metrics.items()}

        # within the deadband: nothing; beyond it: one NDATA by alias with both changes
        node.update({"production_line.temperature": 22.9})
        node.update({"production_line.temperature": 23.5, "production_line.count": 4})
        index, data = await host.await_message("NDATA", node=NODE)
        assert data["seq"] == 1
        assert {(m["alias"], m["name"], m["value"]) for m in data["metrics"]} == {
            (alias["production_line.temperature"], None, 23.5),
            (alias["production_line.count"], None, 4),
        }
        assert node.stats.within_deadband == 1
        node.update({"production_line.status": "running"})
        index, data = await host.await_message("NDATA", start=index + 1, node=NODE)
        assert data["seq"] == 2
        assert [(m["alias"], m["value"]) for m in data["metrics"]] == [
            (alias["production_line.status"], "running")
        ]

        # a host asks for a rebirth: the current values, the same session (bdSeq)
        await host.asend(
            "ncmd",
            node=NODE,
            metrics=[{"name": "Node Control/Rebirth", "type": "Boolean", "value": True}],
        )
        index, rebirth = await host.await_message("NBIRTH", start=index + 1, node=NODE)
        assert rebirth["seq"] == 0 and bd_seq_of(rebirth) == bd_seq
        reborn = metrics_by_name(rebirth)
        assert reborn["production_line.temperature"]["value"] == 23.5
        assert reborn["production_line.status"]["value"] == "running"

        # a value that does not fit its type, or a new path: a new birth instead of data
        node.update({"production_line.count": 4.5, "materials.wafer": 10.0})
        index, grown = await host.await_message("NBIRTH", start=index + 1, node=NODE)
        grown_metrics = metrics_by_name(grown)
        assert grown_metrics["production_line.count"]["type"] == "Double"
        assert grown_metrics["production_line.count"]["value"] == 4.5
        assert grown_metrics["production_line.count"]["alias"] == alias["production_line.count"]
        assert grown_metrics["materials.wafer"]["value"] == 10.0
        assert not any(m.get("type") == "NDATA" for m in host.messages[index:])
    # a clean stop: NDEATH with the session's bdSeq
    _, death = await host.await_message("NDEATH", node=NODE)
    assert bd_seq_of(death) == bd_seq
    assert (tmp_path / "bdseq").read_text().strip() == "1"


async def test_devices_per_section_and_commands(mosquitto: Mosquitto, host: SparkplugHost) -> None:
    commands: list[Command] = []
    node = SparkplugEdgeNode(
        edge_settings(mosquitto.port, devices="sections"), on_command=commands.append
    )
    node.update(
        {
            "production_line.target_temperature": 25.0,
            "production_line.temperature": 22.0,
            "environment.humidity": 45.0,
            "system_status": "running",
        }
    )
    async with node:
        index, birth = await host.await_message("NBIRTH", node=NODE)
        assert "system_status" in metrics_by_name(birth)  # no section: a node metric
        _, line = await host.await_message("DBIRTH", start=index, device="production_line")
        _, env = await host.await_message("DBIRTH", start=index, device="environment")
        assert set(metrics_by_name(line)) == {"target_temperature", "temperature"}
        assert metrics_by_name(env)["humidity"]["value"] == 45.0
        assert sorted([birth["seq"], line["seq"], env["seq"]]) == [0, 1, 2]

        node.update({"environment.humidity": 50.0})
        _, data = await host.await_message("DDATA", start=index, device="environment")
        assert data["metrics"][0]["value"] == 50.0

        await host.asend(
            "dcmd",
            node=NODE,
            device="production_line",
            metrics=[{"name": "target_temperature", "type": "Double", "value": 26.5}],
        )
        await host.asend(
            "ncmd", node=NODE, metrics=[{"name": "system_status", "type": "String", "value": "x"}]
        )
        await eventually(lambda: len(commands) == 2, what="two commands")
        assert (commands[0].name, commands[0].value, commands[0].device) == (
            "production_line.target_temperature",
            26.5,
            "production_line",
        )
        assert (commands[1].name, commands[1].value) == ("system_status", "x")

        # garbage on the command topic is counted, the node keeps going
        await host.asend("raw", topic=f"spBv1.0/{GROUP}/NCMD/{NODE}", base64="////")
        await eventually(lambda: node.stats.bad_commands == 1, what="the bad command counted")
        node.update({"environment.humidity": 51.0})
        await host.await_for(
            lambda m: m.get("type") == "DDATA" and m["metrics"][0]["value"] == 51.0
        )


async def test_a_new_session_after_the_broker_returns(
    mosquitto: Mosquitto, host: SparkplugHost
) -> None:
    node = SparkplugEdgeNode(edge_settings(mosquitto.port, reconnect_initial_s=0.2))
    node.update({"production_line.temperature": 22.0})
    async with node:
        _, first = await host.await_message("NBIRTH", node=NODE)
        # the broker drops the node's connection (another client takes over its client id)
        import paho.mqtt.client as paho
        from paho.mqtt.enums import CallbackAPIVersion

        thief = paho.Client(
            CallbackAPIVersion.VERSION2,
            client_id=node.settings.effective_client_id,
            reconnect_on_failure=False,
        )
        thief.connect("127.0.0.1", mosquitto.port)
        thief.loop_start()
        try:
            index, death = await host.await_message("NDEATH", node=NODE)
            assert bd_seq_of(death) == bd_seq_of(first)  # the will of the first session
        finally:
            thief.disconnect()
            thief.loop_stop()
        _, second = await host.await_message("NBIRTH", start=index, node=NODE)
        assert bd_seq_of(second) == bd_seq_of(first) + 1
        assert metrics_by_name(second)["production_line.temperature"]["value"] == 22.0


async def test_a_primary_host_decides_when_the_node_is_born(
    mosquitto: Mosquitto, host: SparkplugHost
) -> None:
    node = SparkplugEdgeNode(edge_settings(mosquitto.port, primary_host_id="scada"))
    node.update({"production_line.temperature": 22.0})
    async with node:
        await node.connected.wait()
        # no STATE yet: connected, but no birth until the host says it is online
        await host.asend("state", host="scada", online=True, timestamp=1000)
        index, _ = await host.await_for(lambda m: m.get("ok") == "state")
        first_birth, birth = await host.await_message("NBIRTH", node=NODE)
        assert first_birth > index
        bd_seq = bd_seq_of(birth)

        # the host goes offline: NDEATH, and no data while it is away
        await host.asend("state", host="scada", online=False, timestamp=2000)
        index, death = await host.await_message("NDEATH", start=first_birth, node=NODE)
        assert bd_seq_of(death) == bd_seq
        node.update({"production_line.temperature": 23.0})
        assert node.stats.data_messages == 0
        # an older STATE does not count
        await host.asend("state", host="scada", online=True, timestamp=1500)
        await host.asend("state", host="scada", online=True, timestamp=3000)
        index, reborn = await host.await_message("NBIRTH", start=index, node=NODE)
        assert metrics_by_name(reborn)["production_line.temperature"]["value"] == 23.0
        assert not any(
            m.get("type") in ("NBIRTH", "NDATA") for m in host.messages[first_birth + 1 : index]
        )
        node.update({"production_line.temperature": 24.0})
        _, data = await host.await_message("NDATA", start=index, node=NODE)
        assert data["metrics"][0]["value"] == 24.0


async def test_the_products_own_host_reads_the_twins_edge_node(
    mosquitto: Mosquitto,
) -> None:
    """Both directions of the product agree: its host connector reads its edge node's births
    and data by alias (devices per section, Int64, Boolean, String, Double)."""
    from circman5.connectors.sparkplug.client import SparkplugConnector
    from circman5.connectors.sparkplug.config import SparkplugConnectorSettings
    from tests.ingestion.conftest import collecting

    node = SparkplugEdgeNode(edge_settings(mosquitto.port, devices="sections"))
    node.update(
        {
            "production_line.temperature": 22.5,
            "production_line.count": -3,
            "production_line.running": True,
            "materials.silicon_wafer.grade": "A",
        }
    )
    reader = SparkplugConnector(
        SparkplugConnectorSettings.model_validate(
            {
                "type": "sparkplug",
                "name": "loop",
                "port": mosquitto.port,
                "tags": [
                    {"address": f"{GROUP}/{NODE}/production_line/temperature", "path": "copy.t"},
                    {"address": f"{GROUP}/{NODE}/production_line/count", "path": "copy.n"},
                    {"address": f"{GROUP}/{NODE}/production_line/running", "path": "copy.r"},
                    {"address": f"{GROUP}/{NODE}/materials/silicon_wafer.grade", "path": "copy.g"},
                ],
            }
        )
    )
    async with collecting(reader) as collector:
        async with node:
            await eventually(
                lambda: set(collector.latest()) == {"copy.t", "copy.n", "copy.r", "copy.g"}
            )
            latest = collector.latest()
            assert (latest["copy.t"].value, latest["copy.n"].value) == (22.5, -3)
            assert (latest["copy.r"].value, latest["copy.g"].value) == (True, "A")
            node.update({"production_line.temperature": 23.25, "production_line.count": 7})
            await eventually(lambda: collector.values("copy.n")[-1:] == [7], what="DDATA by alias")
            assert collector.values("copy.t")[-1] == 23.25
            assert reader.stats.rebirth_requests == 0 and reader.stats.seq_gaps == 0
        await eventually(
            lambda: (
                set(collector.latest(Quality.STALE)) == {"copy.t", "copy.n", "copy.r", "copy.g"}
            ),
            what="stale after the NDEATH",
        )
