"""OPC UA browse discovery: the MQTT wildcard naming rules and the path cap (``max_nodes``).

Against a small asyncua server written here (not the plant simulator), with more nodes than the
cap and browse names that cannot all make twin paths.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
from asyncua import Server, ua

from circman5.connectors.config import OpcUaConnectorSettings
from circman5.connectors.opcua.client import OpcUaConnector
from circman5.connectors.opcua.discovery import discovered_path
from simulators.external import free_port
from tests.ingestion.conftest import RecordingReporter, collecting, eventually
from tests.ingestion.opcua_server import SmallOpcUaServer

pytestmark = pytest.mark.asyncio(loop_scope="session")

NS = "urn:circman5:test:discovery"
CELLS = 12
CAP = 5


class BrowseServer(SmallOpcUaServer):
    """asyncua server: ``Plant/Cells/Cell00..Cell11`` and ``Plant/Seq/{0,1,SiliconWafer}``."""

    async def start(self) -> None:
        server = Server()
        await server.init()
        server.set_endpoint(f"opc.tcp://127.0.0.1:{self.port}/discovery")
        server.set_security_policy([ua.SecurityPolicyType.NoSecurity])
        index = await server.register_namespace(NS)
        plant = await server.nodes.objects.add_object(ua.NodeId("Plant", index), "Plant")
        cells = await plant.add_object(ua.NodeId("Plant.Cells", index), "Cells")
        for number in range(CELLS):
            name = f"Cell{number:02d}"
            await cells.add_variable(ua.NodeId(f"Plant.Cells.{name}", index), name, float(number))
        seq = await plant.add_object(ua.NodeId("Plant.Seq", index), "Seq")
        for name in ("0", "1", "SiliconWafer"):
            await seq.add_variable(ua.NodeId(f"Plant.Seq.{name}", index), name, 1.5)
        await server.start()
        self.server = server


@asynccontextmanager
async def browse_server() -> AsyncIterator[BrowseServer]:
    server = BrowseServer(free_port())
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


def settings(port: int, discover: list[dict[str, Any]]) -> OpcUaConnectorSettings:
    return OpcUaConnectorSettings.model_validate(
        {
            "type": "opcua",
            "name": "browse",
            "url": f"opc.tcp://127.0.0.1:{port}/discovery",
            "namespace_uri": NS,
            "reconnect_absent_s": 0.2,
            "discover": discover,
        }
    )


async def test_discovery_beyond_the_cap_is_counted_reported_once_and_not_added(
    caplog: pytest.LogCaptureFixture,
) -> None:
    reporter = RecordingReporter()
    rule = {"root": "s=Plant", "pattern": "Cells/*", "path": "cells.{name}", "max_nodes": CAP}
    async with browse_server() as server:
        connector = OpcUaConnector(settings(server.port, [rule]), reporter)
        with caplog.at_level(logging.WARNING, logger="circman5.connectors.opcua"):
            async with collecting(connector) as collector:
                await eventually(lambda: len(collector.latest()) == CAP, what="the capped tags")
                assert connector.status.paths_over_limit == CELLS - CAP
                [limit] = reporter.of("DiscoveryPathLimit")
                assert limit.severity == "error"
                assert limit.details["limit"] == CAP
                assert limit.details["over_limit"] == CELLS - CAP

                # A reconnect browses again: counted again, not reported again.
                sessions = connector.sessions
                await server.stop()
                await eventually(lambda: not connector.status.connected, what="the outage")
                await server.start()
                await eventually(lambda: connector.sessions > sessions, what="the new session")
                await eventually(lambda: connector.status.connected, what="the reconnect")
                assert connector.status.paths_over_limit == 2 * (CELLS - CAP)
                assert len(reporter.of("DiscoveryPathLimit")) == 1
                assert len({s.path for s in collector.samples}) == CAP
    warnings = [r for r in caplog.records if "max_nodes" in r.getMessage()]
    assert len(warnings) == 1


async def test_discovered_names_follow_the_wildcard_naming_rules() -> None:
    reporter = RecordingReporter()
    rules = [
        # digits only inside a named segment: fine, as for MQTT's 'bench.seq_{1}'
        {"root": "s=Plant", "pattern": "Seq/*", "path": "seq.n_{name}"},
        # digits only as a segment of its own: refused, 'silicon_wafer' is fine
        {"root": "s=Plant", "pattern": "Seq/*", "path": "bare.{name}"},
    ]
    async with browse_server() as server:
        connector = OpcUaConnector(settings(server.port, rules), reporter)
        async with collecting(connector) as collector:
            expected = {"seq.n_0", "seq.n_1", "seq.n_silicon_wafer", "bare.silicon_wafer"}
            await eventually(lambda: set(collector.latest()) == expected, what="named tags")
            assert connector.status.topics_refused == 2
            refused = reporter.of("PathRefused")
            assert refused, "the refused names are reported"
            assert "seq_{1}" in refused[0].message
            assert connector.status.malformed == 0


async def test_discovered_path_uses_the_mqtt_segment_rules() -> None:
    assert discovered_path("materials.{1}.{name}", "Inventory", ["SiliconWafer"]) == (
        "materials.silicon_wafer.inventory"
    )
    assert discovered_path("seq.n_{name}", "7", []) == "seq.n_7"
    with pytest.raises(ValueError, match="segment must start with a letter"):
        discovered_path("seq.{name}", "7", [])
    with pytest.raises(ValueError, match="no letters or digits"):
        discovered_path("seq.{name}", "--", [])
