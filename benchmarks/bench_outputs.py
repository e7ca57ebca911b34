"""Outputs benchmark: line-protocol encoding, and points per second through the outbox into
VictoriaMetrics, each beside a baseline measured in the same run.

* encoding: :class:`LineEncoder` on Samples vs influxdb-client ``Point.to_line_protocol()``;
* delivery: prebuilt lines accepted by the outbox (``put``: on disk before it returns), stored in
  SQLite and sent with influxdb-client, until VictoriaMetrics accepted every point, vs a bare
  influxdb-client write loop of the same lines in requests of the same size;
* accept cost: the time ``Outbox.submit`` takes on the caller's thread, per batch.

Run: ``python -m benchmarks outputs``.
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from pathlib import Path

from influxdb_client.client.influxdb_client import InfluxDBClient
from influxdb_client.client.write.point import Point
from influxdb_client.client.write_api import SYNCHRONOUS
from influxdb_client.domain.write_precision import WritePrecision

from benchmarks.report import Row
from circman5.connectors.sample import Sample
from circman5.sinks.config import InfluxDB2Settings, OutboxSettings
from circman5.sinks.influxdb import InfluxDB2Sink
from circman5.sinks.line_protocol import LineEncoder
from circman5.sinks.outbox import Outbox
from simulators.external import VictoriaMetrics

POINTS = 1_000_000
PRODUCER_BATCH = 1_000  # lines per put: a few ticks of a busy line
REQUEST_POINTS = 10_000  # lines per HTTP request (outbox batch_max_points, baseline requests)
PRODUCERS = 4
TARGET_POINTS_PER_S = 200_000.0
T0 = 1_700_000_000_000_000_000


def make_samples(count: int) -> list[Sample]:
    return [
        Sample("plc", f"ns=2;i={i % 200}", f"line.machine{i % 200}.value", i * 0.5, T0 + i * 1000)
        for i in range(count)
    ]


def bench_encoding(samples: list[Sample]) -> Row:
    encoder = LineEncoder("site1", "line1")
    start = time.perf_counter()
    for i in range(0, len(samples), PRODUCER_BATCH):
        encoder.encode_samples(samples[i : i + PRODUCER_BATCH])
    ours = len(samples) / (time.perf_counter() - start)
    subset = samples[:100_000]
    start = time.perf_counter()
    for s in subset:
        Point("sample").tag("site", "site1").tag("line", "line1").tag("source", s.source).tag(
            "path", s.path
        ).tag("quality", s.quality.value).field("value", s.value).time(
            s.timestamp_ns
        ).to_line_protocol()
    baseline = len(subset) / (time.perf_counter() - start)
    return Row(
        "encode Samples to line protocol",
        ours,
        "points/s",
        TARGET_POINTS_PER_S,
        baseline=baseline,
        baseline_label="influxdb-client Point",
    )


def bench_bare_client(url: str, requests: list[bytes]) -> float:
    client = InfluxDBClient(url=url, token="", org="bench", retries=False)
    try:
        write_api = client.write_api(write_options=SYNCHRONOUS)
        start = time.perf_counter()
        for body in requests:
            write_api.write(bucket="bench", record=body, write_precision=WritePrecision.NS)
        elapsed = time.perf_counter() - start
    finally:
        client.close()
    return POINTS / elapsed


async def bench_outbox(url: str, batches: list[bytes], path: Path) -> tuple[float, float, float]:
    """(points/s end to end, submit µs per batch, most points waiting in the outbox)."""
    settings = OutboxSettings(batch_max_points=REQUEST_POINTS)
    peak = 0
    async with (
        InfluxDB2Sink(InfluxDB2Settings(url=url, bucket="bench", org="bench")) as sink,
        Outbox(sink, name="bench", settings=settings, path=path, mergeable=True) as outbox,
    ):

        async def produce(mine: list[bytes]) -> None:
            nonlocal peak
            for body in mine:
                await outbox.put(body, PRODUCER_BATCH)
                peak = max(peak, outbox.metrics.depth_points)

        start = time.perf_counter()
        async with asyncio.TaskGroup() as tg:
            for k in range(PRODUCERS):
                tg.create_task(produce(batches[k::PRODUCERS]))
        await outbox.drain()
        rate = POINTS / (time.perf_counter() - start)
        assert outbox.metrics.delivered_points == POINTS, outbox.metrics

        # the caller's cost of accepting a batch (the commit happens on the worker thread)
        few = batches[:2000]
        start = time.perf_counter()
        for body in few:
            outbox.submit(body, PRODUCER_BATCH)
        submit_us = (time.perf_counter() - start) / len(few) * 1e6
        await outbox.drain()
    return rate, submit_us, float(peak)


def main() -> list[Row]:
    samples = make_samples(POINTS)
    rows = [bench_encoding(samples)]
    encoder = LineEncoder("site1", "line1")
    batches = [
        encoder.encode_samples(samples[i : i + PRODUCER_BATCH])[0]
        for i in range(0, POINTS, PRODUCER_BATCH)
    ]
    per_request = REQUEST_POINTS // PRODUCER_BATCH
    requests = [b"".join(batches[i : i + per_request]) for i in range(0, len(batches), per_request)]
    with (
        tempfile.TemporaryDirectory(prefix="circman5-bench-") as tmp,
        VictoriaMetrics(Path(tmp) / "vm") as vm,
    ):
        baseline = bench_bare_client(vm.url, requests)
        rate, submit_us, peak = asyncio.run(
            bench_outbox(vm.url, batches, Path(tmp) / "outbox.sqlite3")
        )
    rows += [
        Row(
            "outbox -> VictoriaMetrics (on disk before put returns)",
            rate,
            "points/s",
            TARGET_POINTS_PER_S,
            baseline=baseline,
            baseline_label="bare influxdb-client write",
        ),
        Row("outbox submit, caller's cost per 1,000-point batch", submit_us, "µs", 50.0, False),
        Row("most points waiting in the outbox during the run", peak, "points", None, False),
    ]
    return rows
