"""Wildcard topics against mosquitto: captured levels that cannot be one path segment are
refused (counted, reported), digit levels inside a named segment pass, and the number of twin
paths a connector creates from wildcards is capped (one event; known paths keep flowing)."""

from __future__ import annotations

from typing import Any

import pytest

from circman5.connectors.config import MqttConnectorSettings
from circman5.connectors.mqtt.client import MqttConnector
from simulators.external import Mosquitto
from tests.ingestion.conftest import RecordingReporter, collecting, eventually
from tests.ingestion.test_mqtt import apublish, wait_subscribed

pytestmark = pytest.mark.asyncio(loop_scope="session")


def settings(port: int, **extra: Any) -> MqttConnectorSettings:
    return MqttConnectorSettings.model_validate(
        {
            "type": "mqtt",
            "name": "mes",
            "port": port,
            "tags": [
                {
                    "address": "mes/line1/+/inventory",
                    "path": "materials.{1}.inventory",
                    "field": "inventory",
                },
                {"address": "bench/seq/+", "path": "bench.seq_{1}"},
                {"address": "probe", "path": "test.probe"},
            ],
            **extra,
        }
    )


async def test_captured_levels_are_refused_or_named(mosquitto: Mosquitto) -> None:
    reporter = RecordingReporter()
    async with collecting(MqttConnector(settings(mosquitto.port), reporter)) as collector:
        await wait_subscribed(mosquitto.port, collector)
        await apublish(
            mosquitto.port,
            [
                ("mes/line1/x.y/inventory", b'{"inventory": 1}', 1),  # would be materials.x.y...
                ("mes/line1/line-1/inventory", b'{"inventory": 2}', 1),
                ("mes/line1/0/inventory", b'{"inventory": 3}', 1),  # '0' alone: not a name
                ("bench/seq/0", b"4", 1),  # seq_0: a name
                ("bench/seq/17", b"5", 1),
                ("mes/line1/silicon_wafer/inventory", b'{"inventory": 6}', 1),
            ],
        )
        await eventually(
            lambda: "materials.silicon_wafer.inventory" in collector.latest(), what="the last"
        )
        connector = collector.connector
        paths = set(collector.latest())
        assert {"bench.seq_0", "bench.seq_17", "materials.silicon_wafer.inventory"} <= paths
        assert not [p for p in paths if p.startswith("materials.") and "silicon" not in p]
        assert connector.status.topics_refused == 3
        assert connector.status.malformed == 0
        refused = reporter.of("TopicRefused")
        assert refused, "reported as an event"
        assert refused[0].details["address"] == "mes/line1/x.y/inventory"
        assert "'.'" in str(refused[0].details["reason"])


async def test_new_wildcard_paths_are_capped(mosquitto: Mosquitto) -> None:
    reporter = RecordingReporter()
    config = settings(mosquitto.port, max_wildcard_paths=5)
    async with collecting(MqttConnector(config, reporter)) as collector:
        await wait_subscribed(mosquitto.port, collector)  # test.probe: a fixed tag, no wildcard
        await apublish(mosquitto.port, [(f"bench/seq/{n}", f"{n}".encode(), 1) for n in range(8)])
        connector = collector.connector
        await eventually(lambda: connector.status.paths_over_limit >= 3, what="the capped ones")
        # known paths keep flowing after the cap is reached
        await apublish(mosquitto.port, [("bench/seq/1", b"101", 1), ("bench/seq/6", b"106", 1)])
        await eventually(lambda: 101.0 in collector.values("bench.seq_1"), what="a known path")
        await eventually(lambda: connector.status.paths_over_limit >= 4, what="the new one")
        wildcard_paths = {p for p in collector.latest() if p.startswith("bench.")}
        assert wildcard_paths == {f"bench.seq_{n}" for n in range(5)}
        assert connector.status.paths_over_limit == 4
        limit = reporter.of("WildcardPathLimit")
        assert len(limit) == 1
        assert limit[0].severity == "error"
        assert limit[0].details["limit"] == 5
        assert limit[0].details["path"] == "bench.seq_5"
