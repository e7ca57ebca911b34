"""OPC UA ingestion workers: one server's tags in one process vs split over ``workers = 2``.

VictoriaMetrics and one OPC UA server with ``TAGS`` variables changing ``RATE_HZ`` times a second
run first. The server is node-opcua (``tests/opcua_node/load_server.mjs``, another stack than
ours; ``make node-deps`` installs it): one timer sets every value, and it has no cap on the
notifications per publish response (node-opcua's default is 1,000), so the client's pace sets
the figure as far as the server keeps up. ``BENCH_OPCUA_WORKERS_SERVER=
simulator`` uses our plant simulator (asyncua) instead, whose Python server costs about ten times
the client's CPU per data change and sets the figure by itself on this box.

Each round starts ``circman5 run`` (its own data directory) with one OPC UA connector that discovers
the tags (``*/Tag*`` below the load folder; 100 ms publishing; sampling interval 0, every change as
it happens, on node-opcua, twice the change rate on the simulator), every sample into
VictoriaMetrics through the InfluxDB v2 write API and the outbox, with ``workers = 1`` or ``2``.
Once every tag has been stored, the figure is the samples stored per second over ``WINDOW_S``,
**counted in VictoriaMetrics**, with the CPU over the same window (% of one core) of the service, of
each worker and of the OPC UA server, and the peak resident memory (``VmHWM``) of the service and of
a worker. Rounds alternate (one process, 2 workers, ...); the best of each is reported with the load
average. Offered: ``TAGS x RATE_HZ`` changes per second.

Target: 2 workers ≥ 1.6x one process (as the MQTT workers). Baseline: one process, same run.

Run: ``python -m benchmarks opcua_workers`` (``BENCH_OPCUA_WORKERS_TAGS``,
``BENCH_OPCUA_WORKERS_RATE_HZ``, ``BENCH_OPCUA_WORKERS_WINDOW_S``,
``BENCH_OPCUA_WORKERS_ROUNDS``, ``BENCH_OPCUA_WORKERS_SERVER``).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

from benchmarks.bench_service import Ports, Service
from benchmarks.bench_workers import _cpu_s, _load, _proc_status, vm_count, vm_scalar
from benchmarks.report import Row
from tests.fixtures.worker_service import worker_pids, worker_service_toml

TAGS = int(os.environ.get("BENCH_OPCUA_WORKERS_TAGS", "10000"))
RATE_HZ = float(os.environ.get("BENCH_OPCUA_WORKERS_RATE_HZ", "2"))
WINDOW_S = float(os.environ.get("BENCH_OPCUA_WORKERS_WINDOW_S", "20"))
ROUNDS = int(os.environ.get("BENCH_OPCUA_WORKERS_ROUNDS", "2"))
SERVER = os.environ.get("BENCH_OPCUA_WORKERS_SERVER", "node-opcua")
SPEEDUP_TARGET = 1.6
NODE_SERVER = Path(__file__).resolve().parent.parent / "tests" / "opcua_node"


@dataclass(frozen=True)
class LoadServer:
    """Where the OPC UA server listens, its process, and how its tags are found."""

    url: str
    pid: int
    namespace_uri: str
    root: str
    sampling_interval_ms: float  # 0: every change as it happens (where the server offers it)


@contextmanager
def node_opcua_server(workdir: Path) -> Iterator[LoadServer]:
    from simulators.external import free_port

    node = shutil.which("node") or shutil.which("nodejs")
    if node is None or not (NODE_SERVER / "node_modules" / "node-opcua-server").is_dir():
        raise RuntimeError(
            "the node-opcua load server needs Node.js and its packages: apt-get install nodejs "
            "npm, then make node-deps (or BENCH_OPCUA_WORKERS_SERVER=simulator)"
        )
    port = free_port()
    options = {"port": port, "tags": TAGS, "rate_hz": RATE_HZ}
    log_path = workdir / "node-opcua.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [node, str(NODE_SERVER / "load_server.mjs"), json.dumps(options)],
            cwd=NODE_SERVER,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 180
        while f"READY {port}" not in log_path.read_text(errors="replace"):
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"node-opcua load server: {log_path.read_text()[-2000:]}")
            time.sleep(0.2)
        yield LoadServer(
            f"opc.tcp://127.0.0.1:{port}", process.pid, "urn:circman5:bench:load", "s=Load", 0.0
        )
    finally:
        process.terminate()
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@contextmanager
def simulator_server(workdir: Path) -> Iterator[LoadServer]:
    from simulators.process import SimulatorProcess

    (workdir / "plc").mkdir()
    plc = SimulatorProcess(
        workdir / "plc",
        extra_args=(
            "--no-modbus",
            "--opcua-synthetic",
            str(TAGS),
            "--opcua-synthetic-rate",
            str(RATE_HZ),
        ),
        ready_timeout=180.0,
    )
    with plc:
        assert plc.process is not None
        yield LoadServer(
            f"opc.tcp://127.0.0.1:{plc.port}/circman5/plc",
            plc.process.pid,
            "urn:circman5:sim:plc",
            "s=Line1.Synthetic",
            max(10.0, 500.0 / RATE_HZ),  # asyncua samples: twice per change, none missed
        )


def service_toml(server: LoadServer, vm_url: str, health_port: int, workers: int, tag: str) -> str:
    # site = tag: each round counts its own points
    return worker_service_toml(
        site=tag, health_port=health_port, vm_url=vm_url, connector=_connector(server, workers)
    )


def _connector(server: LoadServer, workers: int) -> str:
    return f"""
[[connectors]]
type = "opcua"
name = "load"
url = "{server.url}"
namespace_uri = "{server.namespace_uri}"
publishing_interval_ms = 100
sampling_interval_ms = {server.sampling_interval_ms}
request_timeout_s = 30  # browsing and subscribing thousands of nodes on a busy server
watchdog_timeout_s = 15
keepalive_count = 50  # a busy box delays publish responses: no session lost to silence
lifetime_count = 500
workers = {workers}

[[connectors.discover]]
root = "{server.root}"
pattern = "*/Tag*"
path = "load.{{1}}.{{name}}"
max_nodes = {TAGS}
"""


def vm_series(url: str, run: str) -> int:
    """How many tags of round ``run`` have at least one point stored."""
    return vm_scalar(url, f'count(count_over_time(sample_value{{site="{run}"}}[1d]))')


@dataclass(frozen=True)
class Round:
    rate: float
    cpu_service_pct: float
    cpu_workers_pct: list[float]
    cpu_server_pct: float
    rss_service_mb: float
    rss_worker_mb: float


def one_round(workdir: Path, server: LoadServer, vm_url: str, workers: int, n: int) -> Round:
    tag = f"ow{workers}r{n}"

    def render(ports: Ports, health_port: int, api_port: int) -> str:
        return service_toml(server, vm_url, health_port, workers, tag)

    service = Service(workdir / tag, Ports(0, 0, 0), render)
    service.start()
    try:
        service.wait_ready(180)
        assert service.process is not None
        pid = service.process.pid
        workers_of_run = worker_pids(pid) if workers > 1 else []
        deadline = time.time() + 180
        while vm_series(vm_url, tag) < TAGS:  # every tag subscribed and stored
            if time.time() > deadline:
                raise TimeoutError(f"{tag}: not every tag stored within 180 s")
            time.sleep(0.5)
        time.sleep(2.0)  # past the initial values' burst
        pids = [pid, *worker_pids, server.pid]
        cpu_before = [_cpu_s(p) for p in pids]
        stored_before, began = vm_count(vm_url, tag), time.time()
        time.sleep(WINDOW_S)
        stored_after, ended = vm_count(vm_url, tag), time.time()
        cpu = [
            100 * (_cpu_s(p) - b) / (ended - began) for p, b in zip(pids, cpu_before, strict=True)
        ]
        rss_service = _proc_status(pid, "VmHWM")
        rss_worker = max((_proc_status(p, "VmHWM") for p in workers_of_run), default=0.0)
    finally:
        service.stop()
    return Round(
        (stored_after - stored_before) / (ended - began),
        cpu[0],
        cpu[1:-1],
        cpu[-1],
        rss_service,
        rss_worker,
    )


def _cpu_per_thousand(result: Round) -> float:
    """Milliseconds of CPU (service and workers) per 1,000 samples stored."""
    ours = result.cpu_service_pct + sum(result.cpu_workers_pct)
    return 10 * ours / max(result.rate, 1e-9) * 1000


def run_all(workdir: Path) -> list[Row]:
    from simulators.external import VictoriaMetrics

    rows: list[Row] = []
    with ExitStack() as stack:
        (workdir / "vm").mkdir()
        vm = stack.enter_context(VictoriaMetrics(workdir / "vm").start())
        opened = simulator_server if SERVER == "simulator" else node_opcua_server
        server = stack.enter_context(opened(workdir))
        results: dict[int, list[Round]] = {1: [], 2: []}
        loads = [_load()]
        for n in range(ROUNDS):
            for workers in (1, 2):
                result = one_round(workdir, server, vm.url, workers, n)
                results[workers].append(result)
                loads.append(_load())
                print(
                    f"round {n + 1} workers={workers}: {result.rate:,.0f} samples/s, CPU service "
                    f"{result.cpu_service_pct:.0f} % workers "
                    f"{[round(c) for c in result.cpu_workers_pct]} % server "
                    f"{result.cpu_server_pct:.0f} %, RSS service {result.rss_service_mb:.0f} MB "
                    f"worker {result.rss_worker_mb:.0f} MB, load {loads[-1]}",
                    flush=True,
                )
        one = max(results[1], key=lambda r: r.rate)
        two = max(results[2], key=lambda r: r.rate)
        offered = TAGS * RATE_HZ
        rows += [
            Row(f"offered ({SERVER}, {TAGS:,} tags x {RATE_HZ:g} Hz)", offered, "changes/s", None),
            Row("one process, stored samples/s", one.rate, "samples/s", None),
            Row(
                "2 workers, stored samples/s",
                two.rate,
                "samples/s",
                SPEEDUP_TARGET * one.rate,
                baseline=one.rate,
                baseline_label="one process",
            ),
            Row(
                "CPU, service (2 workers)",
                two.cpu_service_pct,
                "% of a core",
                None,
                False,
                one.cpu_service_pct,
                "one process",
            ),
            *(
                Row(f"CPU, worker {k}", c, "% of a core", None, False)
                for k, c in enumerate(two.cpu_workers_pct, start=1)
            ),
            Row(
                "CPU per 1,000 samples, service + workers",
                _cpu_per_thousand(two),
                "ms",
                None,
                False,
                _cpu_per_thousand(one),
                "one process",
            ),
            Row(
                "CPU, OPC UA server (2 workers)",
                two.cpu_server_pct,
                "% of a core",
                None,
                False,
                one.cpu_server_pct,
                "one process",
            ),
            Row(
                "peak RSS per worker",
                two.rss_worker_mb,
                "MB",
                None,
                False,
                one.rss_service_mb,
                "one process",
            ),
            Row("peak RSS, service with 2 workers", two.rss_service_mb, "MB", None, False),
        ]
        print(f"load average (1/5/15 min): {', '.join(loads)}", flush=True)
    return rows


def main() -> list[Row]:
    with tempfile.TemporaryDirectory(prefix="bench-opcua-workers-") as tmp:
        return run_all(Path(tmp))
