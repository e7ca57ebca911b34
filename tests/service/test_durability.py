"""Zero loss under kill -9: `circman5 run` as a process, real mosquitto and VictoriaMetrics.

A QoS 1 stream goes to a persistent session; the service is killed with SIGKILL mid-stream three
times and started again. Every sequence number the broker acknowledged to the publisher must be
in VictoriaMetrics at the end: counted in the server, not in our logs.
"""

from __future__ import annotations

import asyncio
import random
from pathlib import Path

import pytest

from circman5.sinks.embedded_store import EmbeddedStore
from simulators.external import Mosquitto, VictoriaMetrics, free_port, wait_until
from tests.service.service_process import RetainedState, SequencePublisher, ServiceProcess
from tests.sinks.helpers import vm_values

TOPIC = "durability/seq"
SELECTOR = '{__name__="sample_value",path="durability.seq"}'


def service_toml(mqtt_port: int, vm_url: str | None, health_port: int, protocol: str) -> str:
    output = (
        f"""
[outputs.influxdb]
url = "{vm_url}"
org = "plant"
bucket = "line1"
token = "not-needed-by-victoria-metrics"
"""
        if vm_url
        else f"""
[outputs.mqtt]
port = {mqtt_port}
topic_prefix = "circman5"
state_interval_s = 0.2
"""
    )
    return f"""
site = "dur"
line = "line1"

[health]
port = {health_port}

[api]
enabled = false

[batches]
enabled = false
{output}
[[connectors]]
type = "mqtt"
name = "seq"
host = "127.0.0.1"
port = {mqtt_port}
protocol = "{protocol}"
client_id = "circman5-durability"
clean_start = false
qos = 1

[[connectors.tags]]
address = "{TOPIC}"
path = "durability.seq"
field = "seq"
timestamp_field = "ts"
"""


def stored(vm: VictoriaMetrics) -> set[int]:
    vm.force_flush()
    return {int(v) for v in vm_values(vm.url, SELECTOR)}


def stored_locally(data: Path) -> set[int]:
    """The sequence numbers in the service's embedded store (the service is stopped)."""

    async def read() -> set[int]:
        async with EmbeddedStore(path=data / "timeseries.sqlite3") as store:
            points = await store.points("durability.seq", measurement="sample")
        return {int(float(p.value)) for p in points}

    return asyncio.run(read())


def published(publisher: SequencePublisher, count: int, what: str) -> None:
    wait_until(lambda: publisher.sent >= count, 30, what)


@pytest.mark.parametrize("protocol", ["3.1.1", "5"])
def test_sigkill_three_times_loses_nothing_the_broker_acknowledged(
    tmp_path: Path, mosquitto: Mosquitto, victoria_metrics: VictoriaMetrics, protocol: str
) -> None:
    health_port = free_port()
    config = tmp_path / "edge.toml"
    config.write_text(service_toml(mosquitto.port, victoria_metrics.url, health_port, protocol))
    service = ServiceProcess(config, tmp_path / "data", tmp_path / "service.log", health_port)
    publisher = SequencePublisher(mosquitto.port, TOPIC, rate=1000.0)
    service.start()
    try:
        service.wait_ready()  # the session and its subscription exist from here on
        publisher.start()
        for _ in range(3):
            seen = publisher.sent
            kill_at = seen + random.randint(1000, 2500)
            published(publisher, seen + 1000, "a second of publishing")
            wait_until(lambda: len(stored(victoria_metrics)) > 0, 30, "points in the server")
            published(publisher, kill_at, "mid-stream")
            service.kill()
            published(publisher, kill_at + 1000, "publishing to the session")
            service.start()
            service.wait_ready()
        publisher.stop()
        acked = publisher.acked()
        assert len(acked) == publisher.sent >= 9000
        try:
            wait_until(lambda: acked <= stored(victoria_metrics), 120, "every acked number")
        finally:
            missing = acked - stored(victoria_metrics)
        assert not missing, (
            f"{len(missing)} of {len(acked)} acknowledged messages lost,"
            f" e.g. {sorted(missing)[:10]}\n{service.log_tail()}"
        )
    finally:
        exit_code = service.stop()
    assert exit_code == 0, service.log_tail()


def test_sigkill_with_only_the_embedded_store_loses_nothing_the_broker_acknowledged(
    tmp_path: Path, mosquitto: Mosquitto
) -> None:
    health_port = free_port()
    config = tmp_path / "edge.toml"
    config.write_text(service_toml(mosquitto.port, None, health_port, "3.1.1"))
    data = tmp_path / "data"
    service = ServiceProcess(config, data, tmp_path / "service.log", health_port)
    publisher = SequencePublisher(mosquitto.port, TOPIC, rate=1000.0)
    state = RetainedState(mosquitto.port, "circman5/dur/line1/state")
    service.start()
    try:
        service.wait_ready()
        publisher.start()
        for _ in range(3):
            seen = publisher.sent
            kill_at = seen + random.randint(1000, 2500)
            published(publisher, kill_at, "mid-stream")
            service.kill()
            published(publisher, kill_at + 1000, "publishing to the session")
            service.start()
            service.wait_ready()
        publisher.stop()
        acked = publisher.acked()
        # the broker delivers in order: once the twin shows the last number, all arrived
        last = float(publisher.sent - 1)
        wait_until(lambda: state.value("durability", "seq") == last, 60, "the last message")
    finally:
        state.close()
        exit_code = service.stop()
    assert exit_code == 0, service.log_tail()
    missing = acked - stored_locally(data)
    assert len(acked) == publisher.sent >= 3000
    assert not missing, f"{len(missing)} of {len(acked)} lost, e.g. {sorted(missing)[:10]}"
