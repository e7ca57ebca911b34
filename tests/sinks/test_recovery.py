"""Outputs recover in seconds, and an overflow is one story: real servers stopped and started.

Per output (VictoriaMetrics through the InfluxDB v2 API, the MQTT events output): the server goes
away and comes back; data flows again, with exactly one ``sink_unavailable`` and one
``sink_recovered`` event that carries the outage length. How fast is measured by
``python -m benchmarks durability``, not asserted here.
"""

from __future__ import annotations

import asyncio
import json
import time
import urllib.error
import urllib.request
from collections.abc import Callable

from circman5.errors import SinkUnavailable
from circman5.samples import Sample
from circman5.service.health import HealthServer
from circman5.service.outputs import output_reasons
from circman5.sinks.config import InfluxDB2Settings, OutboxSettings
from circman5.sinks.influxdb import InfluxDB2Sink
from circman5.sinks.line_protocol import LineEncoder
from circman5.sinks.mqtt_events import MqttEventPublisher
from circman5.sinks.outbox import Outbox
from circman5.sinks.timeseries import LineProtocolWriter
from simulators.external import Mosquitto, VictoriaMetrics
from tests.sinks.conftest import Subscriber
from tests.sinks.helpers import vm_values, wait_async
from tests.sinks.test_mqtt_events import Category, Event, raise_from_thread, settings
from tests.sinks.test_outbox import T0, RecordingReporter


class Producer:
    """Writes 100 samples every 20 ms with values 0, 1, 2, ... until stopped."""

    def __init__(self, writer: LineProtocolWriter) -> None:
        self.writer = writer
        self.written = 0
        self.running = True

    async def run(self) -> None:
        while self.running:
            samples = [
                Sample("plc", "a", "p", float(i), T0 + i * 1_000_000)
                for i in range(self.written, self.written + 100)
            ]
            await self.writer.put_samples(samples)
            self.written += len(samples)
            await asyncio.sleep(0.02)


async def test_victoria_metrics_restart_resumes_with_a_restored_event_and_loses_nothing(
    victoria_metrics: VictoriaMetrics,
) -> None:
    reporter = RecordingReporter()
    # the defaults: probe an absent server every 0.5-1 s, backoff up to 30 s when overloaded
    async with (
        InfluxDB2Sink(InfluxDB2Settings(url=victoria_metrics.url)) as sink,
        Outbox(sink, name="ts", reporter=reporter, mergeable=True) as outbox,
    ):
        producer = Producer(LineProtocolWriter(LineEncoder(), outbox))
        async with asyncio.TaskGroup() as tg:
            tg.create_task(producer.run())
            await wait_async(lambda: outbox.metrics.delivered_points > 1000, 30, "delivery")
            await asyncio.to_thread(victoria_metrics.stop)
            down_at = time.monotonic()
            # six failed probes: long enough for exponential backoff to have reached 8-16 s
            await wait_async(lambda: outbox.metrics.retried >= 6, 30, "probes while down")
            await asyncio.to_thread(victoria_metrics.start)
            await wait_async(lambda: "sink_recovered" in reporter.types(), 30, "the recovery")
            up_for = time.monotonic() - down_at
            delivered = outbox.metrics.delivered_points
            await wait_async(
                lambda: outbox.metrics.delivered_points > delivered + 1000, 30, "new data"
            )
            producer.running = False
        await asyncio.wait_for(outbox.drain(), 60)
    victoria_metrics.force_flush()
    values = set(vm_values(victoria_metrics.url, '{__name__="sample_value"}'))
    missing = {float(i) for i in range(producer.written)} - values
    assert not missing, f"{len(missing)} points lost, e.g. {sorted(missing)[:5]}"
    assert reporter.types().count("sink_unavailable") == 1, reporter.events
    assert reporter.types().count("sink_recovered") == 1, reporter.events
    recovered = next(e for e in reporter.events if e[1] == "sink_recovered")
    outage = recovered[3]["outage_s"]
    # from the first failed delivery to the first good one: within the time the server was away
    assert isinstance(outage, float) and 0 < outage <= up_for + 0.5, (outage, up_for)


async def test_mqtt_events_output_reports_the_outage_once_and_its_end_with_the_length(
    broker: Mosquitto, subscribe: Callable[..., Subscriber]
) -> None:
    reporter = RecordingReporter()
    sub = subscribe(f"{settings(broker).base_topic}/events/#", args=("-c", "-i", "recovery"))
    during = [Event(Category.THRESHOLD, f"while down {n}") for n in range(10)]
    # the defaults: reconnect every 0.5-1 s, probe an absent broker every 0.5-1 s
    config = settings(broker, reconnect_min_s=0.5, reconnect_max_s=1.0, outbox=OutboxSettings())
    async with MqttEventPublisher(config, reporter=reporter) as publisher:
        await wait_async(lambda: publisher.link.connected, 10, "the connection")
        await asyncio.to_thread(broker.stop)
        await wait_async(lambda: "sink_unavailable" in reporter.types(), 10, "the outage event")
        raise_from_thread(publisher, during)
        await wait_async(lambda: publisher.metrics.outbox.retried >= 3, 30, "probes while down")
        await asyncio.to_thread(broker.start)
        await wait_async(lambda: "sink_recovered" in reporter.types(), 30, "the restored event")
        await asyncio.wait_for(publisher.outbox.drain(), 30)
        await asyncio.to_thread(
            sub.wait_for,
            lambda ms: (
                {e.event_id for e in during}
                <= {json.loads(m["payload"])["event_id"] for m in ms if "/events/" in m["topic"]}
            ),
            20,
            "every event raised while the broker was down",
        )
    assert reporter.types().count("sink_unavailable") == 1
    assert reporter.types().count("sink_recovered") == 1
    recovered = next(e for e in reporter.events if e[1] == "sink_recovered")
    assert isinstance(recovered[3]["outage_s"], float) and recovered[3]["outage_s"] > 0


class Absent:
    """A sink whose server is away (connection refused) until ``back`` is set."""

    name = "absent"

    def __init__(self) -> None:
        self.back = False
        self.records: list[bytes] = []

    async def write(self, records: list[bytes]) -> None:
        if not self.back:
            raise SinkUnavailable("absent: connection refused")
        self.records.extend(records)


def ready(port: int) -> tuple[int, dict[str, object]]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/ready", timeout=5) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


async def test_one_outage_is_one_overflow_episode_and_ready_says_data_is_dropped() -> None:
    reporter = RecordingReporter()
    sink = Absent()
    limits = OutboxSettings(max_points=1000, batch_max_points=100, probe_interval_s=0.05)
    async with Outbox(sink, name="small", settings=limits, reporter=reporter) as outbox:
        health = HealthServer(lambda: output_reasons([outbox.metrics]), lambda: b"")
        async with asyncio.TaskGroup() as tg:
            server = tg.create_task(health.run())
            await health.started.wait()
            # a long outage under steady input: many commits, each over the limit
            for n in range(60):
                await outbox.put(b"x" * 10, 100)
                if n == 30:
                    status, during = await asyncio.to_thread(ready, health.port)
            episode = outbox.metrics
            sink.back = True
            await asyncio.wait_for(outbox.drain(), 30)
            status_after, after = await asyncio.to_thread(ready, health.port)
            server.cancel()
    assert reporter.types().count("outbox_overflow") == 1
    assert reporter.types().count("outbox_overflow_ended") == 1
    ended = next(e for e in reporter.events if e[1] == "outbox_overflow_ended")[3]
    final = outbox.metrics
    assert final.dropped_points == 60 * 100 - len(sink.records) * 100 > 0
    assert ended["dropped_points"] == ended["total_dropped_points"] == final.dropped_points
    assert ended["dropped_batches"] == final.dropped_batches
    assert episode.dropping and episode.episode_dropped_points > 0
    assert status == 503
    reasons = during["reasons"]
    assert isinstance(reasons, list)
    assert any("dropping data" in str(r) for r in reasons), reasons
    assert (status_after, after["reasons"]) == (200, [])
    assert not final.dropping and final.episode_dropped_points == 0
