"""The service side of the ingestion workers, fed frames as a worker writes them: the newest
source timestamp per path wins across workers, status and outbox figures add up over restarts,
and the workers' problems reach the service's reporter naming the worker."""

from __future__ import annotations

import asyncio

import orjson

from circman5.connectors.mqtt.config import MqttConnectorSettings
from circman5.samples import Quality, Sample
from circman5.service.workers.pool import IngestionWorkerPool, worker_outboxes
from circman5.sinks.config import OutputSettings


class Problems:
    def __init__(self) -> None:
        self.reports: list[tuple[str, str, str, dict[str, object]]] = []

    def report(
        self, severity: str, error_type: str, message: str, details: dict[str, object]
    ) -> None:
        self.reports.append((severity, error_type, message, details))


def pool(reporter: Problems) -> IngestionWorkerPool:
    settings = MqttConnectorSettings.model_validate(
        {
            "type": "mqtt",
            "name": "mes",
            "protocol": "5",
            "workers": 2,
            "tags": [{"address": "line/+/t", "path": "line.{1}.t", "field": "v"}],
        }
    )
    outputs = OutputSettings.model_validate(
        {"influxdb": {"url": "http://127.0.0.1:9", "org": "o", "bucket": "b", "token": "t"}}
    )
    return IngestionWorkerPool(settings, outputs, reporter)


def frame(
    samples: list[list[object]],
    samples_in: int,
    depth: int = 0,
    problems: list[object] | None = None,
) -> bytes:
    outbox = {
        "name": "influxdb-mes-worker-1",
        "depth_batches": 1 if depth else 0,
        "depth_points": depth,
        "depth_bytes": 0,
        "oldest_age_s": None,
        "accepted_batches": 0,
        "accepted_points": 0,
        "delivered_batches": 0,
        "delivered_points": 0,
        "retried": 0,
        "quarantined_batches": 0,
        "quarantined_points": 0,
        "quarantine_depth": 0,
        "dropped_batches": 0,
        "dropped_points": 0,
        "last_write_latency_s": None,
        "sink_available": True,
        "last_error": None,
    }
    status = {"connected": True, "samples_in": samples_in, "malformed": 1, "last_error": None}
    return orjson.dumps({"s": samples, "c": status, "o": outbox, "p": problems or []})


async def taken(source: IngestionWorkerPool) -> list[Sample]:
    batches = source.batches()
    out: list[Sample] = []
    while True:
        try:
            out += await asyncio.wait_for(anext(batches), 0.2)
        except TimeoutError:
            return out


def test_an_older_sample_from_another_worker_never_replaces_a_newer_one() -> None:
    reporter = Problems()
    workers = pool(reporter)
    first, second = workers._workers
    workers._on_frame(first, frame([["line/a/t", "line.a.t", 5.0, 2_000, "good"]], 10))
    workers._on_frame(
        second,
        frame(
            [
                ["line/a/t", "line.a.t", 4.0, 1_000, "good"],
                ["line/b/t", "line.b.t", 7.0, 1_500, "good"],
            ],
            20,
        ),
    )
    workers._on_frame(first, frame([["line/a/t", "line.a.t", 6.0, 3_000, "stale"]], 11))
    samples = asyncio.run(taken(workers))
    assert [(s.path, s.value, s.quality) for s in samples] == [
        ("line.a.t", 5.0, Quality.GOOD),
        ("line.b.t", 7.0, Quality.GOOD),
        ("line.a.t", 6.0, Quality.STALE),
    ]
    assert all(s.source == "mes" for s in samples)


def test_counters_add_up_over_workers_and_restarts_and_problems_name_the_worker() -> None:
    reporter = Problems()
    workers = pool(reporter)
    first, second = workers._workers
    for worker in (first, second):
        worker.status.alive = True
    workers._on_frame(
        first,
        frame([], 100, depth=40, problems=[["warning", "MalformedInput", "bad", {"address": "x"}]]),
    )
    workers._on_frame(second, frame([], 50))
    assert workers.status.samples_in == 150 and workers.status.connected
    first.retire()  # the process died; its replacement starts from zero
    assert not workers.status.connected
    assert "worker 1" in (workers.status.last_error or "")
    first.status.alive = True
    workers._on_frame(first, frame([], 5))
    assert workers.status.samples_in == 155
    assert workers.status.malformed == 3
    assert [w.messages for w in workers.workers] == [105, 50]
    assert [m.depth_points for m in worker_outboxes([workers])] == [0, 0]
    assert reporter.reports == [("warning", "MalformedInput", "bad", {"address": "x", "worker": 1})]
