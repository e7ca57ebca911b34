"""Ingestion workers past one core: ``circman5 run`` with one process vs ``workers = 2``.

mosquitto and VictoriaMetrics run first. Each round starts ``circman5 run`` (its own data
directory; one MQTT 5 connector on a JSON topic tree ``bench/line1/m0..m99`` with a ``value``
field, every sample into VictoriaMetrics through the InfluxDB v2 write API and the outbox), then
one bare paho publisher process floods ``MESSAGES`` messages as fast as it can. The figure is
stored messages per second from the first publish to the last point stored, **counted in
VictoriaMetrics** (polled every 0.25 s); loss is what the server does not have 15 s after the
count stopped growing. Rounds alternate (one process, 2 workers, ...); the best round of each is
reported, with the CPU (service and workers, % of one core) and peak resident memory per process
(``VmHWM``). The machine's load average is printed with the table: the figures are only
comparable within one run.

Target: 2 workers ≥ 1.6x the one-process figure (QoS 0 and QoS 1). Baseline: one process, same
run.

Run: ``python -m benchmarks workers`` (``BENCH_WORKERS_MESSAGES``, ``BENCH_WORKERS_ROUNDS``,
``BENCH_WORKERS_QOS`` = ``0,1``).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

from benchmarks.bench_service import Ports, Service
from benchmarks.report import Row
from tests.fixtures.worker_service import flood_service_toml as service_toml
from tests.fixtures.worker_service import worker_pids

MESSAGES = int(os.environ.get("BENCH_WORKERS_MESSAGES", "200000"))
ROUNDS = int(os.environ.get("BENCH_WORKERS_ROUNDS", "2"))
QOS_LEVELS = [int(q) for q in os.environ.get("BENCH_WORKERS_QOS", "0,1").split(",")]
TOPICS = 100
SPEEDUP_TARGET = 1.6

PUBLISHER = r"""
import sys, time
import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion
port, count, qos, topics = (int(a) for a in sys.argv[1:5])
client = paho.Client(CallbackAPIVersion.VERSION2, client_id="bench-flood", protocol=paho.MQTTv5)
client.max_inflight_messages_set(1000)
client.max_queued_messages_set(0)
client.connect("127.0.0.1", port)
client.loop_start()
names = [f"bench/line1/m{i}" for i in range(topics)]
print(time.time(), flush=True)
last = None
for i in range(count):
    last = client.publish(names[i % topics], b'{"value": %d}' % i, qos=qos)
    if qos and i % 2000 == 1999:
        last.wait_for_publish(120)
last.wait_for_publish(120)
client.disconnect()
client.loop_stop()
"""


def vm_count(url: str, run: str) -> int:
    """How many points of round ``run`` are stored."""
    return vm_scalar(url, f'sum(count_over_time(sample_value{{site="{run}"}}[1d]))')


def vm_scalar(url: str, query: str) -> int:
    """The one value of a MetricsQL ``query`` after a flush (0 for an empty result)."""
    urllib.request.urlopen(f"{url}/internal/force_flush", timeout=30).close()
    with urllib.request.urlopen(
        f"{url}/api/v1/query?" + urllib.parse.urlencode({"query": query}), timeout=30
    ) as response:
        result = json.loads(response.read())["data"]["result"]
    return int(float(result[0]["value"][1])) if result else 0


def _proc_status(pid: int, key: str) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return float(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def _cpu_s(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _waiting(service: Service) -> bool:
    """Points wait in an outbox (a delivery backing off): not lost yet."""
    try:
        return service.metric("circman5_outbox_depth_points") > 0
    except (OSError, RuntimeError):
        return False


@dataclass(frozen=True)
class Round:
    rate: float
    stored: int
    cpu_pct: float
    rss_service_mb: float
    rss_worker_mb: float


def _publish(mqtt_port: int, qos: int) -> subprocess.Popen[str]:
    publisher = subprocess.Popen(
        [sys.executable, "-c", PUBLISHER, str(mqtt_port), str(MESSAGES), str(qos), str(TOPICS)],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert publisher.stdout is not None
    publisher.stdout.readline()  # connected, publishing
    return publisher


def one_round(workdir: Path, mqtt_port: int, vm_url: str, workers: int, qos: int, n: int) -> Round:
    """QoS 1: the messages wait in the broker (persistent sessions) and the service drains the
    backlog, so the publisher's speed is out of the picture; QoS 0 (not queued for an offline
    session): a live flood, the publisher racing the service."""
    tag = f"w{workers}q{qos}r{n}"

    def render(ports: Ports, health_port: int, api_port: int) -> str:
        return service_toml(mqtt_port, vm_url, health_port, workers, qos, tag)

    service = Service(workdir / tag, Ports(0, 0, mqtt_port), render)
    publisher: subprocess.Popen[str] | None = None
    if qos:
        service.start()  # create the sessions and their (shared) subscriptions
        service.wait_ready(120)
        service.stop()
        _publish(mqtt_port, qos).wait(600)
    service.start()
    launched = time.time()
    try:
        service.wait_ready(120)
        assert service.process is not None
        pid = service.process.pid
        workers_of_run = worker_pids(pid) if workers > 1 else []
        started = time.time()
        if not qos:
            publisher = _publish(mqtt_port, qos)
        stored, last_change, first = 0, time.time(), None
        while stored < MESSAGES and (
            time.time() - last_change < 15
            or (_waiting(service) and time.time() - last_change < 120)
        ):
            time.sleep(0.25)
            now_stored = vm_count(vm_url, tag)
            if now_stored != stored:
                if first is None:
                    first = (time.time(), now_stored)
                stored, last_change = now_stored, time.time()
        if publisher is not None:
            publisher.wait(120)
        cpu = sum(_cpu_s(p) for p in [pid, *workers_of_run])  # since their start
        rss_service = _proc_status(pid, "VmHWM")
        rss_worker = max((_proc_status(p, "VmHWM") for p in workers_of_run), default=0.0)
    finally:
        service.stop()
    # from the first points stored to the last (the start-up and the first poll left out)
    begin, already = first if first is not None else (started, 0)
    elapsed = max(last_change - begin, 1e-3)
    return Round(
        (stored - already) / elapsed,
        stored,
        100 * cpu / (last_change - launched),
        rss_service,
        rss_worker,
    )


def _load() -> str:
    return "/".join(f"{x:.1f}" for x in os.getloadavg())


def run_all(workdir: Path) -> list[Row]:
    from simulators.external import Mosquitto, VictoriaMetrics

    rows: list[Row] = []
    with ExitStack() as stack:
        (workdir / "mosquitto").mkdir()
        (workdir / "vm").mkdir()
        broker = stack.enter_context(Mosquitto(workdir / "mosquitto").start())
        vm = stack.enter_context(VictoriaMetrics(workdir / "vm").start())
        for qos in QOS_LEVELS:
            results: dict[int, list[Round]] = {1: [], 2: []}
            loads = [_load()]
            for n in range(ROUNDS):
                for workers in (1, 2):
                    result = one_round(workdir, broker.port, vm.url, workers, qos, n)
                    results[workers].append(result)
                    loads.append(_load())
                    print(
                        f"QoS {qos} round {n + 1} workers={workers}: {result.rate:,.0f} msg/s,"
                        f" stored {result.stored:,}/{MESSAGES:,}, CPU {result.cpu_pct:.0f} %,"
                        f" RSS service {result.rss_service_mb:.0f} MB"
                        f" worker {result.rss_worker_mb:.0f} MB, load {loads[-1]}",
                        flush=True,
                    )
            # the best complete round of each (a round that lost messages is not a rate)
            one = max(results[1], key=lambda r: (r.stored == MESSAGES, r.rate))
            two = max(results[2], key=lambda r: (r.stored == MESSAGES, r.rate))
            rows += [
                Row(f"QoS {qos}: one process, stored msg/s", one.rate, "msg/s", None),
                Row(
                    f"QoS {qos}: 2 workers, stored msg/s",
                    two.rate,
                    "msg/s",
                    SPEEDUP_TARGET * one.rate,
                    baseline=one.rate,
                    baseline_label="one process",
                ),
                Row(f"QoS {qos}: lost, one process", MESSAGES - one.stored, "msgs", None, False),
                Row(f"QoS {qos}: lost, 2 workers", MESSAGES - two.stored, "msgs", None, False),
                Row(
                    f"QoS {qos}: CPU, 2 workers (all processes)",
                    two.cpu_pct,
                    "% of a core",
                    None,
                    False,
                    one.cpu_pct,
                    "one process",
                ),
                Row(
                    f"QoS {qos}: peak RSS per worker",
                    two.rss_worker_mb,
                    "MB",
                    None,
                    False,
                    one.rss_service_mb,
                    "one process",
                ),
                Row(
                    f"QoS {qos}: peak RSS, service with 2 workers",
                    two.rss_service_mb,
                    "MB",
                    None,
                    False,
                ),
            ]
            print(f"load average (1/5/15 min) during QoS {qos}: {', '.join(loads)}", flush=True)
    return rows


def main() -> list[Row]:
    with tempfile.TemporaryDirectory(prefix="bench-workers-") as tmp:
        return run_all(Path(tmp))
