"""The outbox: outages, crashes, rejections, Retry-After and overflow, with real servers."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from circman5.samples import Sample
from circman5.sinks.config import InfluxDB1Settings, InfluxDB2Settings, OutboxSettings
from circman5.sinks.influxdb import InfluxDB1Sink, InfluxDB2Sink
from circman5.sinks.line_protocol import LineEncoder
from circman5.sinks.outbox import Outbox
from circman5.sinks.timeseries import LineProtocolWriter
from simulators.external import VictoriaMetrics
from tests.sinks.helpers import (
    LineReader,
    Reply,
    ScriptedHTTPServer,
    delivery_gaps,
    vm_values,
    wait_async,
)

T0 = 1_700_000_000_000_000_000
FAST = OutboxSettings(backoff_initial_s=0.02, backoff_max_s=0.2)


class RecordingReporter:
    """An EventReporter that keeps what it was told."""

    def __init__(self) -> None:
        self.events: list[tuple[str, str, str, dict[str, object]]] = []

    def report(
        self, severity: str, error_type: str, message: str, details: dict[str, object]
    ) -> None:
        self.events.append((severity, error_type, message, details))

    def types(self) -> list[str]:
        return [e[1] for e in self.events]


@pytest.fixture
def reporter() -> RecordingReporter:
    return RecordingReporter()


@pytest.fixture
def server() -> Iterator[ScriptedHTTPServer]:
    """An InfluxDB-speaking server whose answers the test sets in ``server.replies``."""
    srv = ScriptedHTTPServer()
    yield srv
    srv.close()


OK: Reply = (204, {}, b"")


def lines(tag: str, count: int, start: int = 0) -> bytes:
    return "".join(f"m,b={tag} value={i} {T0 + i}\n" for i in range(start, start + count)).encode()


async def test_delivers_in_order_and_reports_metrics(victoria_metrics: VictoriaMetrics) -> None:
    settings = InfluxDB2Settings(url=victoria_metrics.url)
    async with InfluxDB2Sink(settings) as sink, Outbox(sink, name="ts", mergeable=True) as outbox:
        for n in range(20):
            await outbox.put(lines("a", 100, n * 100), 100)
        await asyncio.wait_for(outbox.drain(), 30)
        metrics = outbox.metrics
    victoria_metrics.force_flush()
    assert sorted(vm_values(victoria_metrics.url, '{__name__="m_value"}')) == list(range(2000))
    assert (metrics.accepted_points, metrics.delivered_points) == (2000, 2000)
    assert (metrics.depth_batches, metrics.depth_points, metrics.oldest_age_s) == (0, 0, None)
    assert metrics.last_write_latency_s is not None and metrics.sink_available
    assert (metrics.retried, metrics.dropped_points, metrics.quarantined_points) == (0, 0, 0)


async def test_server_down_30s_under_load_loses_nothing(
    victoria_metrics: VictoriaMetrics, reporter: RecordingReporter
) -> None:
    settings = OutboxSettings(backoff_initial_s=0.1, backoff_max_s=2.0)
    producing = True
    written = 0

    async def produce(writer: LineProtocolWriter) -> None:
        nonlocal written
        while producing:  # about 20,000 points per second
            samples = [
                Sample("plc", "a", f"p{i % 5}", float(i), T0 + i * 1_000_000)
                for i in range(written, written + 200)
            ]
            await writer.put_samples(samples)
            written += len(samples)
            await asyncio.sleep(0.01)

    async with (
        InfluxDB2Sink(InfluxDB2Settings(url=victoria_metrics.url)) as sink,
        Outbox(sink, name="ts", settings=settings, reporter=reporter, mergeable=True) as outbox,
    ):
        async with asyncio.TaskGroup() as tg:
            tg.create_task(produce(LineProtocolWriter(LineEncoder(), outbox)))
            await wait_async(lambda: outbox.metrics.delivered_points > 10_000, 30, "delivery")
            await asyncio.to_thread(victoria_metrics.stop)
            down_at, written_at_stop = time.monotonic(), written
            await wait_async(
                lambda: time.monotonic() - down_at >= 30 and written - written_at_stop > 100_000,
                60,
                "30 s of writing while the server is down",
            )
            during = outbox.metrics
            await asyncio.to_thread(victoria_metrics.start)
            await wait_async(lambda: outbox.metrics.sink_available, 30, "delivery to resume")
            producing = False
        await asyncio.wait_for(outbox.drain(), 60)
    victoria_metrics.force_flush()
    values = vm_values(victoria_metrics.url, '{__name__="sample_value"}')
    assert not during.sink_available and during.retried > 0
    assert during.depth_points > 100_000 and during.oldest_age_s is not None
    assert victoria_metrics.killed_on_stop == 0  # else the server itself lost what it had
    # one request may have been in flight when the server stopped: at-least-once may repeat it
    gaps = delivery_gaps(values, written, may_repeat=settings.batch_max_points)
    assert not gaps, gaps
    assert reporter.types().count("sink_unavailable") == 1
    assert reporter.types().count("sink_recovered") == 1


def test_writer_killed_mid_stream_delivers_every_accepted_point_after_restart(
    victoria_metrics: VictoriaMetrics,
) -> None:
    script = str(Path(__file__).with_name("outbox_writer.py"))
    url = victoria_metrics.url
    writer = subprocess.Popen(
        [sys.executable, script, url, "write"], stdout=subprocess.PIPE, text=True
    )
    reader = LineReader(writer)
    try:
        reader.wait_for(lambda out: len(out) >= 20, 60, "20 accepted batches")
        victoria_metrics.stop()  # accepted batches now pile up in the outbox
        seen = len(reader.lines)
        reader.wait_for(lambda out: len(out) >= seen + 20, 60, "20 more accepted batches")
    finally:
        writer.kill()  # SIGKILL: no cleanup, no final commit
        writer.wait()
    accepted = [int(line) for line in reader.until_end(10)]
    assert accepted == list(range(len(accepted)))
    victoria_metrics.start()
    drain = subprocess.run(
        [sys.executable, script, url, "drain"], capture_output=True, text=True, timeout=90
    )
    assert drain.returncode == 0, drain.stderr
    assert drain.stdout.startswith("drained ")
    assert int(drain.stdout.split()[1]) >= 20 * 500  # the backlog left by the killed writer
    victoria_metrics.force_flush()
    values = set(vm_values(url, '{__name__="killtest_value"}'))
    missing = set(range(len(accepted) * 500)) - values
    assert not missing, f"{len(missing)} accepted points lost, e.g. {sorted(missing)[:5]}"


async def test_rejected_batch_is_quarantined_reported_and_not_retried(
    server: ScriptedHTTPServer, reporter: RecordingReporter
) -> None:
    server.replies = [
        lambda r: (400, {}, b'{"error":"unable to parse bad"}') if b"bad" in r.body else OK
    ]
    sink = InfluxDB1Sink(InfluxDB1Settings(url=server.url))
    outbox = Outbox(sink, name="q", settings=FAST, reporter=reporter)
    for tag in ("good1", "bad", "good2"):
        outbox.submit(lines(tag, 3), 3)  # before start: one commit, one merged request
    async with sink, outbox:
        await asyncio.wait_for(outbox.drain(), 10)
        quarantined = await outbox.quarantined()
        metrics = outbox.metrics
        bodies = [r.body for r in server.requests]
        server.replies = [OK]
        assert await outbox.requeue() == 1
        await asyncio.wait_for(outbox.drain(), 10)
        after_requeue = outbox.metrics
    assert bodies == [
        lines("good1", 3) + lines("bad", 3) + lines("good2", 3),
        lines("good1", 3),
        lines("bad", 3),
        lines("good2", 3),
    ]
    assert len(quarantined) == 1
    assert (quarantined[0].payload, quarantined[0].status) == (lines("bad", 3), 400)
    assert "unable to parse bad" in quarantined[0].error
    assert (metrics.quarantined_batches, metrics.quarantined_points) == (1, 3)
    assert (metrics.delivered_points, metrics.depth_batches, metrics.quarantine_depth) == (6, 0, 1)
    severity, kind, _, details = reporter.events[-1]
    assert (severity, kind, details["status"], details["points"]) == (
        "error",
        "batch_quarantined",
        400,
        3,
    )
    assert server.requests[-1].body == lines("bad", 3)
    assert (after_requeue.delivered_points, after_requeue.quarantine_depth) == (9, 0)


async def test_auth_failure_holds_batches_instead_of_quarantining(
    server: ScriptedHTTPServer, reporter: RecordingReporter
) -> None:
    refused: Reply = (401, {}, b'{"error":"authorization failed"}')
    server.replies = [refused, refused, refused, OK]
    async with (
        InfluxDB1Sink(InfluxDB1Settings(url=server.url)) as sink,
        Outbox(sink, name="hold", settings=FAST, reporter=reporter) as outbox,
    ):
        await outbox.put(lines("x", 5), 5)
        await asyncio.wait_for(outbox.drain(), 10)
        metrics = outbox.metrics
    assert (metrics.delivered_points, metrics.quarantine_depth, metrics.retried) == (5, 0, 3)
    assert reporter.types() == ["sink_unavailable", "sink_recovered"]
    assert reporter.events[0][0] == "error"
    assert len(server.requests) == 4


@pytest.mark.parametrize("status", [429, 503])
async def test_retry_after_is_honoured(
    server: ScriptedHTTPServer, reporter: RecordingReporter, status: int
) -> None:
    server.replies = [(status, {"Retry-After": "1"}, b"slow down"), OK]
    async with (
        InfluxDB2Sink(InfluxDB2Settings(url=server.url)) as sink,
        Outbox(sink, name="ra", settings=FAST, reporter=reporter) as outbox,
    ):
        await outbox.put(lines("x", 2), 2)
        await asyncio.wait_for(outbox.drain(), 10)
        metrics = outbox.metrics
    first, second = server.requests
    # the backoff alone would have retried after at most 0.02 s
    assert second.at - first.at >= 1.0
    assert first.body == second.body == lines("x", 2)
    assert (metrics.retried, metrics.delivered_points) == (1, 2)


async def test_overflow_drops_oldest_counts_and_reports(
    server: ScriptedHTTPServer, reporter: RecordingReporter
) -> None:
    server.replies = [(503, {}, b"down")]
    settings = OutboxSettings(
        max_points=100, batch_max_points=10, backoff_initial_s=0.02, backoff_max_s=0.05
    )  # one stored batch per request: the batch being sent is never dropped
    sink = InfluxDB1Sink(InfluxDB1Settings(url=server.url))
    outbox = Outbox(sink, name="full", settings=settings, reporter=reporter)
    for n in range(15):
        outbox.submit(lines(f"b{n}", 10), 10)  # one group commit of 150 points
    async with sink, outbox:
        await outbox.flush()
        first = outbox.metrics
        for n in range(15, 18):  # while the server is down and a batch may be in flight
            await outbox.put(lines(f"b{n}", 10), 10)
        second = outbox.metrics
        server.replies = [OK]
        await asyncio.wait_for(outbox.drain(), 10)
        delivered = b"".join(r.body for r in server.requests if r.status == 204)
    assert (first.dropped_batches, first.dropped_points, first.depth_points) == (5, 50, 100)
    assert (second.dropped_batches, second.dropped_points, second.depth_points) == (8, 80, 100)
    kept = [n for n in range(18) if lines(f"b{n}", 10) in delivered]
    assert len(kept) == 10 and kept[-3:] == [15, 16, 17]
    assert 0 not in kept and 4 not in kept  # the oldest went first
    assert reporter.types().count("outbox_overflow") == 1
    assert reporter.types().count("outbox_overflow_ended") == 1
    ended = next(e for e in reporter.events if e[1] == "outbox_overflow_ended")
    assert ended[3]["dropped_batches"] == 8


async def test_accepted_batches_survive_a_restart(server: ScriptedHTTPServer) -> None:
    server.replies = [(503, {}, b"down")]
    async with (
        InfluxDB1Sink(InfluxDB1Settings(url=server.url)) as sink,
        Outbox(sink, name="restart", settings=FAST) as outbox,
    ):
        for n in range(3):
            await outbox.put(lines(f"r{n}", 4), 4)
    server.replies = [OK]
    async with (
        InfluxDB1Sink(InfluxDB1Settings(url=server.url)) as sink,
        Outbox(sink, name="restart", settings=FAST) as outbox,
    ):
        assert outbox.metrics.depth_points == 12
        await asyncio.wait_for(outbox.drain(), 10)
        assert outbox.metrics.delivered_points == 12
    assert server.requests[-1].body == lines("r0", 4) + lines("r1", 4) + lines("r2", 4)


async def test_run_in_a_task_group_cancelled_while_putting(server: ScriptedHTTPServer) -> None:
    """Every put that returned is on disk; none is left waiting when the outbox is cancelled."""
    server.replies = [(503, {}, b"down")]
    sink = InfluxDB1Sink(InfluxDB1Settings(url=server.url))
    outbox = Outbox(sink, name="tg", settings=FAST)
    returned = refused = 0

    async def produce(k: int) -> None:
        nonlocal returned, refused
        for n in range(1_000_000):
            try:
                await outbox.put(lines(f"p{k}-{n}", 2), 2)
            except RuntimeError:  # the outbox stopped
                refused += 1
                return
            returned += 1

    async with sink, asyncio.TaskGroup() as tg:
        runner = tg.create_task(outbox.run())
        for k in range(3):
            tg.create_task(produce(k))
        await wait_async(lambda: returned >= 300, 30, "300 accepted batches")
        runner.cancel()
    async with sink, Outbox(sink, name="tg", settings=FAST) as reopened:
        stored = reopened.metrics.depth_points
    assert refused == 3
    assert stored == returned * 2


async def test_delivery_lingers_for_a_full_request_but_not_while_draining(
    server: ScriptedHTTPServer,
) -> None:
    settings = OutboxSettings(batch_max_points=1000, linger_s=10.0)
    async with (
        InfluxDB1Sink(InfluxDB1Settings(url=server.url)) as sink,
        Outbox(sink, name="linger", settings=settings, mergeable=True) as outbox,
    ):
        await outbox.put(lines("a", 100), 100)
        await outbox.put(lines("a", 900, 100), 900)  # committed later, still no request
        await wait_async(lambda: len(server.requests) == 1, 10, "one request")
        assert server.requests[0].body == lines("a", 1000)  # one full request, not 100 + 900
        await outbox.put(lines("b", 10), 10)
        async with asyncio.timeout(5):  # well short of linger_s: drain does not wait it out
            await outbox.drain()
        assert [r.body for r in server.requests[1:]] == [lines("b", 10)]
