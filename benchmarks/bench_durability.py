"""Durability: what acknowledge-after-durable costs, and how fast the outputs recover.

* **QoS 1 throughput.** A publisher process queues ``MESSAGES`` QoS 1 JSON messages in mosquitto
  for the connector's persistent session (a publisher alone is slower than the pipeline on a
  loaded machine); then the connector connects and the broker sends them as fast as they are
  taken: MqttConnector ->
  SynchronizationEngine (10 Hz) -> the service's durable sample sink -> LineProtocolWriter ->
  Outbox (SQLite group commit; the sink behind it accepts at once). Measured: messages per
  second committed to the outbox, with ``acknowledge = "durable"`` (PUBACK once committed)
  against ``acknowledge = "receipt"`` (PUBACK on receipt, the old way) in the same run, rounds
  alternating, best of each. Target: at least 0.9 of the receipt figure. A second row, without
  a target, publishes live to a broker with mosquitto's default ``max_inflight_messages 20``:
  there the acknowledgement round trip (drain, group commit) bounds the rate.
* **Output recovery.** A stream of samples goes through the outbox to VictoriaMetrics; the
  server is stopped for ``OUTAGE_S`` and started again. Measured: seconds from the server being
  ready again (its /health answers) to the first delivery (the ``sink_recovered`` event).
  Baseline: the old policy, every failure backed off exponentially (0.5 s doubling to 30 s).
  The MQTT events output likewise: mosquitto stopped and started; seconds from the broker
  listening to the first event delivered; baseline: the old reconnect delays (1 s doubling to
  30 s). Target: at most 3 s.

Run: ``python -m benchmarks durability``.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from benchmarks.report import Row

_ROOT = Path(__file__).resolve().parent.parent
ROUNDS = int(os.environ.get("BENCH_DURABILITY_ROUNDS", "2"))
MESSAGES = 40_000
OUTAGE_S = 8.0
RATIO = 0.9
RECOVERY_TARGET_S = 3.0

_PUBLISHER = """
import sys
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
port, count = int(sys.argv[1]), int(sys.argv[2])
client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="bench-qos1-publisher")
client.max_inflight_messages_set(1000)
client.max_queued_messages_set(0)
client.connect("127.0.0.1", port)
client.loop_start()
infos = [
    client.publish("bench/qos1/tag%d" % (i % 100), b'{"value": %d.5}' % i, qos=1)
    for i in range(count)
]
for info in infos:
    info.wait_for_publish(120)
client.disconnect()
client.loop_stop()
"""


def _popen(command: list[str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(command, cwd=_ROOT)


class _Accepting:
    """A sink that accepts every batch at once (the figure is about committing, not sending)."""

    name = "accepting"

    async def write(self, records: Sequence[bytes]) -> None:
        return None


async def _qos1_pipeline(port: int, acknowledge: str, round_: int, live: bool = False) -> float:
    """Messages/s committed to the outbox through connector, engine and durable sink; queued in
    the session beforehand, or (``live``) published while the pipeline runs, from its start."""
    from circman5.connectors.config import MqttConnectorSettings
    from circman5.connectors.mqtt.client import MqttConnector
    from circman5.manufacturing.digital_twin.core.synchronization import SynchronizationEngine
    from circman5.service.outputs import durable_sample_sink
    from circman5.sinks.line_protocol import LineEncoder
    from circman5.sinks.outbox import Outbox
    from circman5.sinks.timeseries import LineProtocolWriter

    class _Twin:
        def update(self, external_data: Any = None) -> bool:
            return True

    settings = MqttConnectorSettings.model_validate(
        {
            "type": "mqtt",
            "name": "bench",
            "port": port,
            "qos": 1,
            "client_id": f"bench-{acknowledge}-{round_}",
            "clean_start": False,
            "acknowledge": acknowledge,
            "tags": [{"address": "bench/qos1/+", "path": "bench.{1}", "field": "value"}],
        }
    )
    command = [sys.executable, "-c", _PUBLISHER, str(port), str(MESSAGES)]
    # the session and its subscription first; then the messages wait in the broker for it
    async with MqttConnector(settings) as connector:
        async with asyncio.timeout(10):
            await connector.wait_connected()
        await asyncio.sleep(0.5)  # the SUBACK
    if not live:
        await asyncio.to_thread(subprocess.run, command, cwd=_ROOT, check=True)
    connector = MqttConnector(settings)
    outbox = Outbox(_Accepting(), name=f"bench-{acknowledge}-{round_}", mergeable=True)
    async with outbox, connector:
        engine = SynchronizationEngine(_Twin(), [connector], tick_rate_hz=10.0)
        writer = LineProtocolWriter(LineEncoder(), outbox)
        engine.add_sink(durable_sample_sink(writer), acknowledges=True)
        async with asyncio.TaskGroup() as group:
            task = group.create_task(engine.run())
            first = last = 0.0
            start_count = 0
            publisher = await asyncio.to_thread(_popen, command) if live else None
            if live:
                first = time.perf_counter()
            deadline = time.perf_counter() + 180
            while time.perf_counter() < deadline:
                accepted = outbox.metrics.accepted_points
                now = time.perf_counter()
                if accepted and not first:
                    first, start_count = now, accepted
                if accepted >= MESSAGES:
                    last = now
                    break
                await asyncio.sleep(0.005)
            if publisher is not None:
                await asyncio.to_thread(publisher.wait, 120)
            task.cancel()
    if not last:
        raise RuntimeError(f"only {outbox.metrics.accepted_points} of {MESSAGES} committed")
    return (MESSAGES - start_count) / (last - first)


def bench_qos1(workdir: Path) -> Row:
    from simulators.external import Mosquitto

    durable: list[float] = []
    receipt: list[float] = []
    for round_ in range(ROUNDS):
        for mode, figures in (("receipt", receipt), ("durable", durable)):
            with Mosquitto(workdir / f"mosquitto-{mode}-{round_}") as broker:
                figures.append(asyncio.run(_qos1_pipeline(broker.port, mode, round_)))
    return Row(
        name="MQTT QoS 1 committed, acknowledge after durable",
        value=max(durable),
        unit="msgs/s",
        target=RATIO * max(receipt),
        baseline=max(receipt),
        baseline_label="acknowledge on receipt",
    )


def bench_qos1_default_window(workdir: Path) -> Row:
    """Live publishing to a broker with mosquitto's default in-flight window (20): the
    acknowledgement round trip is what limits it (no target: configure the broker)."""
    from simulators.external import Mosquitto

    durable: list[float] = []
    receipt: list[float] = []
    for round_ in range(ROUNDS):
        for mode, figures in (("receipt", receipt), ("durable", durable)):
            with Mosquitto(
                workdir / f"mosquitto-window-{mode}-{round_}",
                extra_config="max_inflight_messages 20",
            ) as broker:
                figures.append(asyncio.run(_qos1_pipeline(broker.port, mode, round_, live=True)))
    return Row(
        name="  same, live publisher, broker max_inflight_messages 20",
        value=max(durable),
        unit="msgs/s",
        target=None,
        baseline=max(receipt),
        baseline_label="acknowledge on receipt",
    )


# -- output recovery ------------------------------------------------------------------------------


class _BackoffOnly:
    """The old policy: every failure counts as an overloaded server (exponential backoff)."""

    def __init__(self, sink: Any) -> None:
        self._sink = sink
        self.name = sink.name

    async def write(self, records: Sequence[bytes]) -> None:
        from circman5.errors import SinkUnavailable

        try:
            await self._sink.write(records)
        except SinkUnavailable as err:
            raise SinkUnavailable(str(err), err.retry_after, overloaded=True) from err


class _Clock:
    """An EventReporter noting when the sink recovered (on the event loop)."""

    def __init__(self) -> None:
        self.recovered_at = 0.0
        self.recovered = asyncio.Event()

    def report(self, severity: str, error_type: str, message: str, details: Any) -> None:
        if error_type == "sink_recovered":
            self.recovered_at = time.monotonic()
            self.recovered.set()


async def _vm_recovery(workdir: Path, old_policy: bool) -> float:
    from circman5.samples import Sample
    from circman5.sinks.config import InfluxDB2Settings
    from circman5.sinks.influxdb import InfluxDB2Sink
    from circman5.sinks.line_protocol import LineEncoder
    from circman5.sinks.outbox import Outbox
    from circman5.sinks.timeseries import LineProtocolWriter
    from simulators.external import VictoriaMetrics

    clock = _Clock()
    name = "old" if old_policy else "new"
    with VictoriaMetrics(workdir / f"vm-{name}") as vm:
        async with InfluxDB2Sink(InfluxDB2Settings(url=vm.url)) as influx:
            sink: Any = _BackoffOnly(influx) if old_policy else influx
            async with Outbox(sink, name=f"recovery-{name}", reporter=clock) as outbox:
                writer = LineProtocolWriter(LineEncoder(), outbox)
                stop = asyncio.Event()

                async def produce() -> None:
                    n = 0
                    while not stop.is_set():
                        writer.write_samples([Sample("b", "a", "p", float(n), time.time_ns())])
                        n += 1
                        await asyncio.sleep(0.01)

                async with asyncio.TaskGroup() as tg:
                    tg.create_task(produce())
                    await asyncio.sleep(1.0)
                    await asyncio.to_thread(vm.stop)
                    await asyncio.sleep(OUTAGE_S)
                    await asyncio.to_thread(vm.start)  # returns once /health answers
                    ready_at = time.monotonic()
                    await asyncio.wait_for(clock.recovered.wait(), 120)
                    stop.set()
    return clock.recovered_at - ready_at


async def _mqtt_recovery(workdir: Path, old_policy: bool) -> float:
    from circman5.sinks.config import MqttOutputSettings, OutboxSettings
    from circman5.sinks.mqtt_events import MqttEventPublisher
    from simulators.external import Mosquitto

    class _Category:
        value = "system"

    class _Event:
        category = _Category()

        def to_dict(self) -> dict[str, Any]:
            return {"message": "benchmark"}

    clock = _Clock()
    name = "old" if old_policy else "new"
    with Mosquitto(workdir / f"mosquitto-recovery-{name}") as broker:
        delays = {"reconnect_min_s": 1, "reconnect_max_s": 30} if old_policy else {}
        settings = MqttOutputSettings(
            port=broker.port,
            client_id=f"bench-recovery-{name}",
            outbox=OutboxSettings(backoff_max_s=30.0, probe_interval_s=30.0 if old_policy else 1.0),
            **delays,
        )
        async with MqttEventPublisher(settings, reporter=clock) as publisher:
            connected = asyncio.Event()
            publisher.link.add_connect_listener(connected.set)
            if not publisher.link.connected:
                await asyncio.wait_for(connected.wait(), 30)
            await asyncio.to_thread(broker.stop)
            publisher.on_event(_Event())
            await asyncio.sleep(OUTAGE_S)
            await asyncio.to_thread(broker.start)  # returns once the port listens
            ready_at = time.monotonic()
            await asyncio.wait_for(publisher.outbox.drain(), 120)
            delivered_at = time.monotonic()
    return delivered_at - ready_at


def bench_recovery(workdir: Path) -> list[Row]:
    vm_new = asyncio.run(_vm_recovery(workdir, old_policy=False))
    vm_old = asyncio.run(_vm_recovery(workdir, old_policy=True))
    mqtt_new = asyncio.run(_mqtt_recovery(workdir, old_policy=False))
    mqtt_old = asyncio.run(_mqtt_recovery(workdir, old_policy=True))
    return [
        Row(
            name=f"VictoriaMetrics back after {OUTAGE_S:.0f} s: first delivery",
            value=vm_new,
            unit="s",
            target=RECOVERY_TARGET_S,
            higher_is_better=False,
            baseline=vm_old,
            baseline_label="backoff 0.5-30 s (old)",
        ),
        Row(
            name=f"MQTT events broker back after {OUTAGE_S:.0f} s: event delivered",
            value=mqtt_new,
            unit="s",
            target=RECOVERY_TARGET_S,
            higher_is_better=False,
            baseline=mqtt_old,
            baseline_label="reconnect 1-30 s (old)",
        ),
    ]


def main() -> list[Row]:
    with tempfile.TemporaryDirectory(prefix="circman5-bench-durability-") as tmp:
        workdir = Path(tmp)
        os.environ.setdefault("CIRCMAN5_DATA_DIR", str(workdir / "data"))
        return [bench_qos1(workdir), bench_qos1_default_window(workdir), *bench_recovery(workdir)]
