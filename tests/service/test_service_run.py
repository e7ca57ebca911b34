"""`circman5 run` as a real process against the simulators, mosquitto and VictoriaMetrics."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import threading
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from circman5.service.demo_config import DemoPorts, demo_settings_toml
from circman5.sinks.embedded_store import EmbeddedStore, StoredPoint
from simulators.external import Mosquitto, VictoriaMetrics, free_port, http_status, wait_until

PATH = "production_line.temperature"


class TopicLog:
    """``mosquitto_sub -v`` on a filter, collecting (topic, payload) in a thread."""

    def __init__(self, port: int, topic_filter: str) -> None:
        self.messages: list[tuple[str, str]] = []
        self.process = subprocess.Popen(
            ["mosquitto_sub", "-p", str(port), "-t", topic_filter, "-v", "-q", "1"],
            stdout=subprocess.PIPE,
            text=True,
            errors="replace",  # binary payloads (Sparkplug protobuf) are not UTF-8
        )
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            topic, _, payload = line.rstrip("\n").partition(" ")
            self.messages.append((topic, payload))

    def on(self, topic: str) -> list[str]:
        return [payload for t, payload in list(self.messages) if t == topic]

    def close(self) -> None:
        self.process.terminate()
        self.process.wait(5)


def _subscribed(port: int, log: TopicLog) -> bool:
    """A probe message on the log's filter came through: it is subscribed."""
    subprocess.run(
        ["mosquitto_pub", "-p", str(port), "-t", "spBv1.0/demo/probe", "-m", "x", "-q", "1"],
        check=True,
        timeout=5,
    )
    return bool(log.on("spBv1.0/demo/probe"))


@pytest.fixture
def topic_log(mosquitto: Mosquitto) -> Iterator[TopicLog]:
    log = TopicLog(mosquitto.port, "circman5/#")
    yield log
    log.close()


def vm_values(vm: VictoriaMetrics, path: str) -> list[float]:
    vm.force_flush()
    query = urllib.parse.quote(f'{{__name__="sample_value",path="{path}"}}')
    with urllib.request.urlopen(f"{vm.url}/api/v1/export?match[]={query}", timeout=10) as resp:
        lines = [json.loads(line) for line in resp.read().decode().splitlines() if line]
    return [v for line in lines for v in line["values"]]


def test_run_against_simulators_broker_and_victoria_metrics(
    tmp_path: Path,
    mosquitto: Mosquitto,
    victoria_metrics: VictoriaMetrics,
    sim_process_factory,  # type: ignore[no-untyped-def]
    topic_log: TopicLog,
) -> None:
    sim = sim_process_factory(extra_args=("--speed", "20"), broker=mosquitto)
    endpoints = sim.endpoints
    ports = DemoPorts(
        opcua_port=endpoints["opcua"]["port"],
        modbus_port=endpoints["modbus"]["tcp_port"],
        mqtt_port=mosquitto.port,
        api_port=free_port(),
        health_port=free_port(),
    )
    config = tmp_path / "edge.toml"
    config.write_text(
        demo_settings_toml(ports)
        + f"""
[outputs.influxdb]
url = "{victoria_metrics.url}"
org = "plant"
bucket = "line1"
token = "not-needed-by-victoria-metrics"

[outputs.embedded]
mode = "always"
"""
    )
    data = tmp_path / "data"
    env = dict(os.environ, CIRCMAN5_DATA_DIR=str(data))
    log_path = tmp_path / "service.log"
    sparkplug = TopicLog(mosquitto.port, "spBv1.0/demo/#")  # the demo's edge node (protobuf)
    wait_until(lambda: _subscribed(mosquitto.port, sparkplug), 10, "the Sparkplug listener")
    with log_path.open("w") as log:
        service = subprocess.Popen(
            [sys.executable, "-m", "circman5", "run", "--config", str(config)],
            env=env,
            stderr=log,
        )
    ready = f"http://127.0.0.1:{ports.health_port}/ready"
    try:
        wait_until(lambda: http_status(ready) == 200, 30, "/ready to turn true")
        # values reach the time-series server, events and state reach MQTT
        wait_until(lambda: len(vm_values(victoria_metrics, PATH)) >= 20, 30, "samples in VM")
        base = "circman5/demo/line1"
        wait_until(lambda: "online" in topic_log.on(f"{base}/status"), 10, "status online")
        wait_until(lambda: topic_log.on(f"{base}/state"), 10, "a state snapshot")
        wait_until(lambda: topic_log.on(f"{base}/events/system"), 10, "a system event")
        state = json.loads(topic_log.on(f"{base}/state")[-1])
        assert 15.0 < state["production_line"]["temperature"] < 35.0
        events = [json.loads(p) for p in topic_log.on(f"{base}/events/system")]
        assert any(e["message"] == "Digital twin initialized" for e in events)
        wait_until(lambda: sparkplug.on("spBv1.0/demo/NBIRTH/line1"), 10, "the Sparkplug birth")
        wait_until(lambda: sparkplug.on("spBv1.0/demo/NDATA/line1"), 10, "Sparkplug data")
    finally:
        service.send_signal(signal.SIGTERM)
        exit_code = service.wait(30)
        wait_until(lambda: sparkplug.on("spBv1.0/demo/NDEATH/line1"), 10, "the Sparkplug death")
        sparkplug.close()
    log_text = log_path.read_text()
    assert exit_code == 0, log_text[-3000:]
    assert "stopping:" in log_text and "0 kept on disk" in log_text, log_text[-3000:]
    assert "offline" in topic_log.on(f"{base}/status")
    # nothing lost: every temperature sample stored locally also reached VictoriaMetrics
    local = len(asyncio.run(_stored_samples(data / "timeseries.sqlite3", PATH)))
    assert local >= 20
    # VictoriaMetrics makes accepted samples searchable asynchronously: wait for all of them
    try:
        wait_until(lambda: len(vm_values(victoria_metrics, PATH)) >= local, 15, "every point")
    finally:
        remote = vm_values(victoria_metrics, PATH)
    assert len(remote) == local


async def _stored_samples(file: Path, path: str) -> list[StoredPoint]:
    """The raw samples of ``path`` the service left in its embedded store."""
    async with EmbeddedStore(path=file) as store:
        return await store.points(path, measurement="sample")
