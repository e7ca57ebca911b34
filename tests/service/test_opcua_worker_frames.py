"""The service side of OPC UA ingestion workers, fed frames as a worker writes them: the pool is
an OPC UA connector to the engine (protocol, silence never stales a tag, no writes), a dead
worker's tags (and only its) go stale with their last values, and the tags each worker's
session monitors are in its status."""

from __future__ import annotations

import asyncio
import math

import orjson
import pytest

from circman5.connectors.opcua.config import OpcUaConnectorSettings
from circman5.errors import TagWriteError
from circman5.samples import Quality
from circman5.service.workers.pool import IngestionWorkerPool
from circman5.sinks.config import OutputSettings
from tests.service.test_worker_frames import Problems, taken


def pool() -> IngestionWorkerPool:
    settings = OpcUaConnectorSettings.model_validate(
        {
            "type": "opcua",
            "name": "kiln",
            "url": "opc.tcp://127.0.0.1:4840",
            "namespace_uri": "urn:kiln",
            "workers": 2,
            "tags": [
                {"address": "s=Zone1.Pressure", "path": "kiln.zone1.pressure"},
                {
                    "address": "s=Zone2.Pressure",
                    "path": "kiln.zone2.pressure",
                    "stale_timeout_s": 5,
                },
            ],
        }
    )
    outputs = OutputSettings.model_validate(
        {"influxdb": {"url": "http://127.0.0.1:9", "org": "o", "bucket": "b", "token": "t"}}
    )
    return IngestionWorkerPool(settings, outputs, Problems())


def frame(rows: list[list[object]], tags: int) -> bytes:
    status = {"connected": True, "samples_in": len(rows), "extra": {"tags": tags}}
    return orjson.dumps({"s": rows, "c": status, "o": None, "p": []})


def test_the_pool_is_an_opcua_connector_without_writes() -> None:
    workers = pool()
    assert workers.status.protocol == "opcua"
    assert workers.stale_after("kiln.zone1.pressure") == math.inf
    assert workers.stale_after("kiln.zone2.pressure") == 5
    assert workers.stale_after("kiln.discovered.path") == math.inf
    with pytest.raises(TagWriteError):
        asyncio.run(workers.write("kiln.zone1.pressure", 1.0))


def test_a_dead_workers_tags_go_stale_with_their_last_values_and_only_its() -> None:
    workers = pool()
    first, second = workers._workers
    workers._on_frame(
        first, frame([["s=Zone1.Pressure", "kiln.zone1.pressure", 1.5, 1_000, "good"]], 1)
    )
    workers._on_frame(
        second, frame([["s=Zone2.Pressure", "kiln.zone2.pressure", 2.5, 1_000, "good"]], 1)
    )
    assert [w.tags for w in workers.workers] == [1, 1]
    assert [entry["tags"] for entry in workers.status.extra["workers"]] == [1, 1]
    first.retire()
    workers._orphaned(first)
    second.retire()  # shut down, not dead: the pool does not call _orphaned for it
    samples = asyncio.run(taken(workers))
    assert [(s.path, s.value, s.quality) for s in samples] == [
        ("kiln.zone1.pressure", 1.5, Quality.GOOD),
        ("kiln.zone2.pressure", 2.5, Quality.GOOD),
        ("kiln.zone1.pressure", 1.5, Quality.STALE),
    ]
