"""The Sparkplug B host connector against a real mosquitto and an independent edge node
(Eclipse Tahu's Node.js sparkplug-client, see :mod:`tests.ingestion.sparkplug_edge`)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Any

import orjson
import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from circman5.connectors.sparkplug.client import SparkplugConnector
from circman5.connectors.sparkplug.config import SparkplugConnectorSettings
from circman5.samples import Quality
from simulators.external import Mosquitto
from tests.ingestion.conftest import Collector, RecordingReporter, collecting, eventually
from tests.ingestion.sparkplug_edge import EdgeNode

GROUP = "Plant1"
T0 = 1_767_323_045_000  # ms: 2026-01-02T03:04:05Z

TAGS: list[dict[str, Any]] = [
    {"address": f"{GROUP}/+/+/Temperature", "path": "line.{1}.{2}.temperature"},
    {"address": f"{GROUP}/gw1//Uptime", "path": "line.gw1.uptime"},
    {"address": f"{GROUP}/gw1/oven/Running", "path": "line.gw1.oven.running"},
    {"address": f"{GROUP}/gw1/oven/Recipe", "path": "line.gw1.oven.recipe"},
    {"address": f"{GROUP}/gw1/oven/Offset", "path": "line.gw1.oven.offset"},
    {"address": f"{GROUP}/gw1/oven/Count", "path": "line.gw1.oven.count"},
    {"address": f"{GROUP}/gw1/oven/Started", "path": "line.gw1.oven.started"},
    {"address": f"{GROUP}/gw1/oven/Power", "path": "line.gw1.oven.power_kw", "scale": 0.001},
    {"address": f"{GROUP}/gw1/oven/Batches", "path": "line.gw1.oven.batches"},
]

NODE_BIRTH = [{"name": "Uptime", "alias": 1, "type": "Int64", "value": 100}]
OVEN_BIRTH: list[dict[str, Any]] = [
    {
        "name": "Temperature",
        "alias": 10,
        "type": "Double",
        "value": 20.0,
        "properties": {"engUnit": {"type": "String", "value": "degC"}},
    },
    {"name": "Running", "alias": 11, "type": "Boolean", "value": False},
    {"name": "Recipe", "alias": 12, "type": "String", "value": "A"},
    {"name": "Offset", "alias": 13, "type": "Int32", "value": 0},
    {"name": "Count", "alias": 14, "type": "UInt32", "value": 0},
    {"name": "Started", "alias": 15, "type": "DateTime", "value": T0},
    {"name": "Power", "alias": 16, "type": "Float", "value": 1500.0},
    {"name": "Unmapped", "alias": 17, "type": "Int16", "value": 3},
]
OVEN_PATHS = {
    "line.gw1.oven.temperature",
    "line.gw1.oven.running",
    "line.gw1.oven.recipe",
    "line.gw1.oven.offset",
    "line.gw1.oven.count",
    "line.gw1.oven.started",
    "line.gw1.oven.power_kw",
}


def settings(
    port: int, tags: list[dict[str, Any]] = TAGS, **extra: Any
) -> SparkplugConnectorSettings:
    return SparkplugConnectorSettings.model_validate(
        {
            "type": "sparkplug",
            "name": "scada",
            "port": port,
            "tags": tags,
            "rebirth_interval_s": 0.5,
            **extra,
        }
    )


@pytest.fixture
def edge(mosquitto: Mosquitto) -> Iterator[EdgeNode]:
    node = EdgeNode(mosquitto.url, GROUP, "gw1")
    node.wait_event("connected")
    yield node
    node.close()


@asynccontextmanager
async def host(
    port: int, reporter: RecordingReporter | None = None, **extra: Any
) -> AsyncIterator[Collector]:
    async with collecting(SparkplugConnector(settings(port, **extra), reporter)) as collector:
        yield collector


def connector_of(collector: Collector) -> SparkplugConnector:
    connector = collector.connector
    assert isinstance(connector, SparkplugConnector)
    return connector


async def born(edge: EdgeNode, collector: Collector) -> None:
    """NBIRTH + DBIRTH(Oven): the birth values reach the twin paths."""
    await edge.asend("nbirth", metrics=NODE_BIRTH)
    await edge.asend("dbirth", device="oven", metrics=OVEN_BIRTH)
    await eventually(
        lambda: OVEN_PATHS | {"line.gw1.uptime"} <= set(collector.latest()), what="birth values"
    )


async def test_births_and_data_by_alias_reach_twin_paths(
    mosquitto: Mosquitto, edge: EdgeNode
) -> None:
    async with host(mosquitto.port) as collector:
        await born(edge, collector)
        assert collector.latest()["line.gw1.oven.temperature"].value == 20.0
        assert collector.latest()["line.gw1.uptime"].value == 100
        await edge.asend(
            "ddata",
            device="oven",
            metrics=[
                {"alias": 10, "type": "Double", "value": 215.5, "timestamp": T0 + 1},
                {"alias": 11, "type": "Boolean", "value": True, "timestamp": T0 + 2},
                {"alias": 12, "type": "String", "value": "B-7", "timestamp": T0 + 3},
                {"alias": 13, "type": "Int32", "value": -5, "timestamp": T0 + 4},
                {"alias": 14, "type": "UInt32", "value": 4_000_000_000, "timestamp": T0 + 5},
                {"alias": 15, "type": "DateTime", "value": T0 + 60_000, "timestamp": T0 + 6},
                {"alias": 16, "type": "Float", "value": 2500.0, "timestamp": T0 + 7},
                {"alias": 17, "type": "Int16", "value": 4, "timestamp": T0 + 8},
            ],
        )
        await edge.asend(
            "ndata", metrics=[{"alias": 1, "type": "Int64", "value": 2**40, "timestamp": T0 + 9}]
        )
        await eventually(
            lambda: (
                collector.latest().get("line.gw1.uptime") is not None
                and collector.latest()["line.gw1.uptime"].value == 2**40
            ),
            what="the data",
        )
        latest = collector.latest()
        values = {path: latest[path].value for path in OVEN_PATHS | {"line.gw1.uptime"}}
        assert values == {
            "line.gw1.oven.temperature": 215.5,
            "line.gw1.oven.running": True,
            "line.gw1.oven.recipe": "B-7",
            "line.gw1.oven.offset": -5,
            "line.gw1.oven.count": 4_000_000_000,
            "line.gw1.oven.started": "2026-01-02T03:05:05.000+00:00",
            "line.gw1.oven.power_kw": pytest.approx(2.5),
            "line.gw1.uptime": 2**40,
        }
        assert latest["line.gw1.oven.temperature"].timestamp_ns == (T0 + 1) * 1_000_000
        assert latest["line.gw1.uptime"].timestamp_ns == (T0 + 9) * 1_000_000
        assert latest["line.gw1.oven.temperature"].address == f"{GROUP}/gw1/oven/Temperature"
        assert latest["line.gw1.oven.temperature"].source == "scada"
        assert not any(path.endswith("unmapped") for path in latest)
        connector = connector_of(collector)
        assert connector.stats.rebirth_requests == 0 and connector.stats.seq_gaps == 0
        catalog = {info.address: info for info in connector.catalog()}
        temperature = catalog[f"{GROUP}/gw1/oven/Temperature"]
        assert (temperature.datatype, temperature.alias, temperature.unit) == ("Double", 10, "degC")
        assert catalog[f"{GROUP}/gw1//Uptime"].datatype == "Int64"
        assert catalog[f"{GROUP}/gw1//bdSeq"].datatype == "UInt64"


async def test_deaths_make_metrics_stale_with_their_last_values(
    mosquitto: Mosquitto, edge: EdgeNode
) -> None:
    async with host(mosquitto.port) as collector:
        await born(edge, collector)
        await edge.asend(
            "ddata", device="oven", metrics=[{"alias": 10, "type": "Double", "value": 99.0}]
        )
        await eventually(
            lambda: collector.latest()["line.gw1.oven.temperature"].value == 99.0, what="data"
        )
        await edge.asend("ddeath", device="oven")
        await eventually(
            lambda: set(collector.latest(Quality.STALE)) >= OVEN_PATHS, what="the device stale"
        )
        stale = collector.latest(Quality.STALE)
        assert stale["line.gw1.oven.temperature"].value == 99.0
        assert "line.gw1.uptime" not in stale
        # The process dies: mosquitto publishes its will, an NDEATH with the birth's bdSeq.
        await asyncio.to_thread(edge.kill)
        await eventually(
            lambda: "line.gw1.uptime" in collector.latest(Quality.STALE), what="the node stale"
        )
        assert collector.latest(Quality.STALE)["line.gw1.uptime"].value == 100
        connector = connector_of(collector)
        assert connector.stats.deaths == 2
        assert connector.status.stale_tags >= len(OVEN_PATHS) + 1


async def test_sequence_gap_requests_a_rebirth(mosquitto: Mosquitto, edge: EdgeNode) -> None:
    async with host(mosquitto.port) as collector:
        await born(edge, collector)
        connector = connector_of(collector)
        births = connector.stats.births
        await edge.asend("skip_seq", count=3)
        await edge.asend(
            "ddata", device="oven", metrics=[{"alias": 10, "type": "Double", "value": 1.5}]
        )
        command = await edge.await_event("ncmd")
        assert command["metrics"] == [
            {"name": "Node Control/Rebirth", "type": "Boolean", "value": True}
        ]
        await edge.await_event("rebirth")
        await eventually(lambda: connector.stats.births >= births + 2, what="NBIRTH + DBIRTH again")
        assert connector.stats.seq_gaps == 1
        assert connector.stats.rebirth_requests == 1
        # After the rebirth the sequence is in step again: data flows, no more requests.
        await edge.asend(
            "ddata", device="oven", metrics=[{"alias": 10, "type": "Double", "value": 7.0}]
        )
        await eventually(
            lambda: collector.latest()["line.gw1.oven.temperature"].value == 7.0, what="data"
        )
        assert connector.stats.seq_gaps == 1 and connector.stats.rebirth_requests == 1


async def test_unknown_alias_requests_a_rebirth(mosquitto: Mosquitto, edge: EdgeNode) -> None:
    reporter = RecordingReporter()
    async with host(mosquitto.port, reporter) as collector:
        await born(edge, collector)
        await edge.asend(
            "ddata",
            device="oven",
            metrics=[
                {"alias": 99, "type": "Double", "value": 1.0},
                {"alias": 10, "type": "Double", "value": 42.0},
            ],
        )
        command = await edge.await_event("ncmd")
        assert command["metrics"][0]["name"] == "Node Control/Rebirth"
        connector = connector_of(collector)
        assert connector.stats.unknown_aliases == 1
        # The known alias of the same message is still used; nothing is guessed for alias 99.
        await eventually(
            lambda: collector.latest()["line.gw1.oven.temperature"].value in (42.0, 20.0),
            what="the known alias",
        )
        assert 42.0 in collector.values("line.gw1.oven.temperature")
        assert reporter.of("SparkplugRebirth")


async def test_data_before_birth_requests_a_rebirth(mosquitto: Mosquitto, edge: EdgeNode) -> None:
    async with host(mosquitto.port) as collector:
        # The edge node was born before this host came up (silent: not published now).
        await edge.asend("nbirth", metrics=NODE_BIRTH, silent=True)
        await edge.asend("dbirth", device="oven", metrics=OVEN_BIRTH, silent=True)
        await edge.asend(
            "ddata", device="oven", metrics=[{"alias": 10, "type": "Double", "value": 5.0}]
        )
        await edge.await_event("ncmd")
        await edge.await_event("rebirth")
        await eventually(lambda: set(collector.latest()) >= OVEN_PATHS, what="the births")
        connector = connector_of(collector)
        assert connector.stats.data_before_birth >= 1
        # The DDATA before the birth was dropped, not guessed: the value is the birth's.
        assert 5.0 not in collector.values("line.gw1.oven.temperature")
        assert collector.latest()["line.gw1.oven.temperature"].value == 20.0


async def test_dataset_metric_is_reported_unsupported_once(
    mosquitto: Mosquitto, edge: EdgeNode
) -> None:
    reporter = RecordingReporter()
    tags = [*TAGS, {"address": f"{GROUP}/gw1/oven/Table", "path": "line.gw1.oven.table"}]
    dataset = {
        "numOfColumns": 2,
        "columns": ["slot", "temp"],
        "types": ["Int32", "Double"],
        "rows": [[1, 20.5], [2, 21.0]],
    }
    async with host(mosquitto.port, reporter, tags=tags) as collector:
        await edge.asend("nbirth", metrics=NODE_BIRTH)
        await edge.asend(
            "dbirth",
            device="oven",
            metrics=[
                *OVEN_BIRTH,
                {"name": "Table", "alias": 30, "type": "DataSet", "value": dataset},
            ],
        )
        await eventually(lambda: set(collector.latest()) >= OVEN_PATHS, what="the births")
        for _ in range(2):
            await edge.asend(
                "ddata", device="oven", metrics=[{"alias": 30, "type": "DataSet", "value": dataset}]
            )
        # A rebirth does not report it again either.
        await edge.asend("nbirth", metrics=NODE_BIRTH)
        await edge.asend(
            "dbirth",
            device="oven",
            metrics=[
                *OVEN_BIRTH,
                {"name": "Table", "alias": 30, "type": "DataSet", "value": dataset},
            ],
        )
        connector = connector_of(collector)
        await eventually(lambda: connector.stats.births >= 4, what="the second births")
        reports = reporter.of("UnsupportedMetric")
        assert len(reports) == 1
        assert reports[0].details["address"] == f"{GROUP}/gw1/oven/Table"
        assert reports[0].details["datatype"] == "DataSet"
        assert connector.stats.unsupported == 1
        assert "line.gw1.oven.table" not in {s.path for s in collector.samples}
        assert connector.stats.rebirth_requests == 0


async def test_primary_host_state_is_published_and_withdrawn(mosquitto: Mosquitto) -> None:
    states: list[dict[str, Any]] = []
    watcher = paho.Client(CallbackAPIVersion.VERSION2, client_id="", protocol=paho.MQTTv311)
    watcher.on_message = lambda client, userdata, message: states.append(
        {"retain": message.retain, **orjson.loads(message.payload)}
    )
    watcher.connect("127.0.0.1", mosquitto.port)
    watcher.subscribe("spBv1.0/STATE/edge-twin", qos=1)
    watcher.loop_start()
    try:
        async with host(mosquitto.port, primary_host_id="edge-twin"):
            await eventually(lambda: any(s["online"] for s in states), what="STATE online")
        await eventually(lambda: not states[-1]["online"], what="STATE offline")
        online = next(s for s in states if s["online"])
        assert online["timestamp"] == states[-1]["timestamp"] > 0
    finally:
        watcher.disconnect()
        watcher.loop_stop()
    # Retained: a host or edge node that subscribes later sees the last state.
    late: list[dict[str, Any]] = []
    reader = paho.Client(CallbackAPIVersion.VERSION2, client_id="", protocol=paho.MQTTv311)
    reader.on_message = lambda client, userdata, message: late.append(orjson.loads(message.payload))
    reader.connect("127.0.0.1", mosquitto.port)
    reader.subscribe("spBv1.0/STATE/edge-twin", qos=1)
    reader.loop_start()
    try:
        await eventually(lambda: bool(late), what="the retained STATE")
        assert late[0]["online"] is False
    finally:
        reader.disconnect()
        reader.loop_stop()


async def test_broker_restart_makes_everything_stale_until_the_node_is_born_again(
    mosquitto: Mosquitto, edge: EdgeNode
) -> None:
    async with host(mosquitto.port, reconnect_initial_s=0.2, reconnect_max_s=1.0) as collector:
        await born(edge, collector)
        connector = connector_of(collector)
        await asyncio.to_thread(mosquitto.restart)
        await eventually(
            lambda: OVEN_PATHS | {"line.gw1.uptime"} <= set(collector.latest(Quality.STALE)),
            within=15,
            what="every path stale while the broker is away",
        )
        await eventually(lambda: connector.status.connected, within=15, what="the reconnect")
        await edge.await_event("connected", within=20)
        # The host forgot the births; the node's next DATA makes it ask for a rebirth.
        mark = len(collector.samples)

        async def data_again() -> bool:
            await edge.asend(
                "ddata", device="oven", metrics=[{"alias": 10, "type": "Double", "value": 33.0}]
            )
            await asyncio.sleep(0.2)
            return 33.0 in [
                s.value
                for s in collector.samples[mark:]
                if s.path == "line.gw1.oven.temperature" and s.quality is Quality.GOOD
            ]

        await eventually(data_again, within=20, what="fresh data after a rebirth")
        assert connector.stats.rebirth_requests >= 1
        assert connector.status.reconnects >= 1


async def test_a_null_metric_is_bad_and_a_non_finite_one_malformed(
    mosquitto: Mosquitto, edge: EdgeNode
) -> None:
    async with host(mosquitto.port) as collector:
        await born(edge, collector)
        await edge.asend(
            "ddata",
            device="oven",
            metrics=[
                {"alias": 10, "type": "Double", "value": None},  # is_null
                {"alias": 16, "type": "Float", "value": "NaN"},
                {"alias": 12, "type": "String", "value": "after"},
            ],
        )
        await eventually(
            lambda: (
                "line.gw1.oven.temperature" in collector.latest(Quality.BAD)
                and collector.latest()["line.gw1.oven.recipe"].value == "after"
            ),
            what="the null and the rest of the message",
        )
        assert collector.latest(Quality.BAD)["line.gw1.oven.temperature"].value == 20.0
        connector = connector_of(collector)
        assert connector.stats.nulls == 1
        assert connector.status.malformed == 1  # the NaN: reported, not passed on
        assert "NaN" not in [str(v) for v in collector.values("line.gw1.oven.power_kw")]
