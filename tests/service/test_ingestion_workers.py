"""Ingestion workers (``workers = 2``): `circman5 run` as a process, real mosquitto (shared
subscriptions on MQTT 5, and on MQTT 3.1.1 as mosquitto offers them) and VictoriaMetrics;
every number counted in the server.

* a steady QoS 1 stream: each message stored exactly once, both workers took a share, the twin
  shows the last value;
* one worker SIGKILLed mid-stream: it is restarted (metric, log) and every message the broker
  acknowledged to the publisher is in the server.
"""

from __future__ import annotations

import os
import re
import signal
from pathlib import Path

import pytest

from simulators.external import Mosquitto, VictoriaMetrics, free_port, wait_until
from tests.fixtures.worker_service import sequence_service_toml, worker_pids
from tests.service.service_process import RetainedState, SequencePublisher, ServiceProcess
from tests.sinks.helpers import delivery_gaps, vm_values

TOPIC = "workers/seq"
SELECTOR = '{__name__="sample_value",path="workers.seq"}'


MQTT_5 = 'protocol = "5"'
MQTT_3_1_1_SHARED = "shared_subscriptions_on_3_1_1 = true"  # mosquitto offers $share to 3.1.1


def service_toml(mqtt_port: int, vm_url: str, health_port: int, protocol: str = MQTT_5) -> str:
    return sequence_service_toml(mqtt_port, vm_url, health_port, protocol, TOPIC)


def start_service(
    tmp_path: Path, mosquitto: Mosquitto, vm: VictoriaMetrics, protocol: str = MQTT_5
) -> ServiceProcess:
    health_port = free_port()
    config = tmp_path / "edge.toml"
    config.write_text(service_toml(mosquitto.port, vm.url, health_port, protocol))
    service = ServiceProcess(config, tmp_path / "data", tmp_path / "service.log", health_port)
    service.start()
    return service


def stored(vm: VictoriaMetrics) -> list[float]:
    vm.force_flush()
    return vm_values(vm.url, SELECTOR)


def worker_metric(service: ServiceProcess, name: str, worker: int) -> float:
    """``circman5_ingestion_worker_<name>{connector="seq",worker="<worker>"}``."""
    pattern = (
        rf'^circman5_ingestion_worker_{name}(?:_total)?{{connector="seq",worker="{worker}"}} (\S+)$'
    )
    found = re.search(pattern, service.metrics(), re.MULTILINE)
    assert found is not None, f"no {name} metric for worker {worker}"
    return float(found.group(1))


@pytest.mark.parametrize("protocol", [MQTT_5, MQTT_3_1_1_SHARED])
def test_two_workers_store_every_message_once_and_the_twin_has_the_latest(
    tmp_path: Path, mosquitto: Mosquitto, victoria_metrics: VictoriaMetrics, protocol: str
) -> None:
    service = start_service(tmp_path, mosquitto, victoria_metrics, protocol)
    state = RetainedState(mosquitto.port, "circman5/wrk/line1/state")
    publisher = SequencePublisher(mosquitto.port, TOPIC, rate=2000.0)
    try:
        service.wait_ready()
        publisher.start()
        wait_until(lambda: publisher.sent >= 8000, 60, "8000 messages published")
        publisher.stop()
        count = publisher.sent
        assert publisher.acked() == set(range(count))
        last = float(count - 1)
        wait_until(lambda: len(stored(victoria_metrics)) >= count, 120, "every message stored")
        wait_until(lambda: state.value("workers", "seq") == last, 60, "the twin at the last value")
        shares = [worker_metric(service, "samples", k) for k in (1, 2)]
        outboxes = sorted(p.name for p in (tmp_path / "data" / "outbox").iterdir())
    finally:
        state.close()
        exit_code = service.stop()
    assert exit_code == 0, service.log_tail()
    gaps = delivery_gaps(stored(victoria_metrics), count)
    assert not gaps, gaps
    assert sum(shares) == count, shares
    assert min(shares) > 0, f"one worker took every message: {shares}"
    assert {"influxdb-seq-worker-1.sqlite3", "influxdb-seq-worker-2.sqlite3"} <= set(outboxes)


def test_a_worker_killed_mid_stream_is_restarted_and_loses_nothing_acknowledged(
    tmp_path: Path, mosquitto: Mosquitto, victoria_metrics: VictoriaMetrics
) -> None:
    service = start_service(tmp_path, mosquitto, victoria_metrics)
    publisher = SequencePublisher(mosquitto.port, TOPIC, rate=1500.0)
    try:
        service.wait_ready()
        assert service.process is not None
        before = worker_pids(service.process.pid)
        assert len(before) == 2, before
        publisher.start()
        wait_until(lambda: publisher.sent >= 3000, 60, "a stream under way")
        wait_until(lambda: len(stored(victoria_metrics)) > 0, 60, "points in the server")
        victim = min(before)
        os.kill(victim, signal.SIGKILL)
        wait_until(
            lambda: (
                worker_metric(service, "restarts", 1) + worker_metric(service, "restarts", 2) >= 1
            ),
            60,
            "the killed worker reported",
        )
        wait_until(lambda: len(worker_pids(service.process.pid)) == 2, 60, "a new worker")
        after = worker_pids(service.process.pid)
        service.wait_ready()
        kept = publisher.sent
        wait_until(lambda: publisher.sent >= kept + 2000, 60, "publishing on after the restart")
        publisher.stop()
        acked = publisher.acked()
        assert len(acked) == publisher.sent
        wait_until(
            lambda: acked <= {int(v) for v in stored(victoria_metrics)},
            120,
            "every acknowledged message stored",
        )
    finally:
        exit_code = service.stop()
    assert exit_code == 0, service.log_tail()
    assert victim not in after and len(after) == 2
    missing = acked - {int(v) for v in stored(victoria_metrics)}
    assert not missing, f"{len(missing)} of {len(acked)} lost, e.g. {sorted(missing)[:10]}"
    log = service.log_tail(200_000)
    assert "exited with code -9" in log, log[-3000:]
