"""A site of several lines: one ``circman5 run`` per line on one broker and one VictoriaMetrics.

``LINES`` (4) simulated lines, each a ``circman5-sim`` child with ``TAGS`` (250) synthetic OPC UA
variables changing at ``RATE_HZ`` (10 Hz): 2,500 values/s per line offered, 10,000 for the
site. Each line's edge instance (site ``bench``, line ``lineN``; API and health port as
deployed) subscribes to its simulator (100 ms sampling and publishing), writes every sample to
VictoriaMetrics (InfluxDB line protocol, through its outbox) and its events, state and status to
mosquitto. A sixth process, the site's API (``[site_view]``, no connectors), follows every line
from the broker's retained topics. Each line maps tag ``i`` to ``synthetic.lineN.tagI``, so a
sample or state of one line found under another line's tags or topics is visible.

After ``WARMUP_S`` psutil measures, over ``WINDOW_S``, each instance's CPU time (user + system, %
of one core) and peak resident memory, and ``circman5_samples_in_total`` the samples/s it took
in. Then the crossing check: every ``sample_value`` series in VictoriaMetrics whose ``line`` tag
differs from the line in its path, and every state published on ``circman5/bench/lineN/state``
that carries another line's values, counts its samples as crossed (target: 0). The site API's
``GET /api/site`` must list every line online.

Baseline (same run): one line alone (one simulator, one instance, the same broker and
VictoriaMetrics), measured the same way: what a line costs when it does not share the box.

Targets: per instance ≤ 25 % of a core (the single-service target of ``bench_service`` for
10,000 samples/s) and ≤ 150 MB; the site ingests ≥ 90 % of what is offered; 0 crossed samples.
The twin's state history is not yet full at this window (it grows by one state per tick for
100 s), so memory is a lower bound of the steady state ``bench_service`` measures.

Run: ``python -m benchmarks site`` (about 2 minutes; ``BENCH_SITE_WINDOW_S``,
``BENCH_SITE_LINES``, ``BENCH_SITE_TAGS`` change it).
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks.bench_service import Ports, Service, _cpu_seconds
from benchmarks.report import Row

LINES = int(os.environ.get("BENCH_SITE_LINES", "4"))
TAGS = int(os.environ.get("BENCH_SITE_TAGS", "250"))
RATE_HZ = 10.0
WARMUP_S = float(os.environ.get("BENCH_SITE_WARMUP_S", "10"))
WINDOW_S = float(os.environ.get("BENCH_SITE_WINDOW_S", "20"))
SITE = "bench"

CPU_TARGET_PCT = 25.0
RSS_TARGET_MB = 150.0
INGEST_TARGET = 0.9  # of the offered samples/s


@dataclass(frozen=True)
class Infra:
    mqtt_port: int
    vm_url: str
    vm: Any


def line_toml(line: str, opcua_port: int, infra: Infra, health_port: int, api_port: int) -> str:
    out = [
        f'site = "{SITE}"\nline = "{line}"\n\n',
        f"[health]\nport = {health_port}\n\n[api]\nport = {api_port}\n\n",
        f'[outputs.influxdb]\nurl = "{infra.vm_url}"\norg = "plant"\nbucket = "site"\n'
        'token = "not-needed-by-victoria-metrics"\n\n',
        f'[outputs.mqtt]\nhost = "127.0.0.1"\nport = {infra.mqtt_port}\n\n',
        '[[connectors]]\ntype = "opcua"\nname = "plc"\n'
        f'url = "opc.tcp://127.0.0.1:{opcua_port}/circman5/plc"\n'
        'namespace_uri = "urn:circman5:sim:plc"\n'
        "publishing_interval_ms = 100\nsampling_interval_ms = 100\n\n",
    ]
    for i in range(TAGS):
        out.append(
            f'[[connectors.tags]]\naddress = "s=Line1.Synthetic.Tag{i:05d}"\n'
            f'path = "synthetic.{line}.tag{i:05d}"\n\n'
        )
    return "".join(out)


def site_api_toml(infra: Infra, health_port: int, api_port: int) -> str:
    return (
        f'site = "{SITE}"\nline = "site-api"\n\n'
        f"[health]\nport = {health_port}\n\n[api]\nport = {api_port}\n"
        'jwt_secret = "bench-site-secret-of-at-least-32-characters"\n\n'
        f"[site_view]\nenabled = true\nport = {infra.mqtt_port}\n"
        f'key_values = ["synthetic.line1.tag00000"]\n'
    )


class TopicWatch:
    """Every state message under ``circman5/{SITE}/#`` (paho on its thread), checked on arrival:
    counts the values of other lines found in a line's state."""

    def __init__(self, port: int) -> None:
        import paho.mqtt.client as mqtt
        from paho.mqtt.enums import CallbackAPIVersion

        self.states = 0
        self.crossed_values = 0
        self.foreign_topics: set[str] = set()
        self._lock = threading.Lock()
        client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="bench-site-watch")
        client.on_connect = lambda c, *a: c.subscribe(f"circman5/{SITE}/#", 1)
        client.on_message = self._on_message
        client.connect("127.0.0.1", port)
        client.loop_start()
        self._client = client

    def _on_message(self, client: Any, userdata: Any, message: Any) -> None:
        parts = message.topic.split("/")
        if len(parts) < 4 or parts[-1] != "state" or not message.payload:
            return
        line = parts[2]
        state = json.loads(message.payload)
        synthetic = state.get("synthetic", {}) if isinstance(state, dict) else {}
        foreign = sum(
            len(values) if isinstance(values, dict) else 1
            for key, values in synthetic.items()
            if key != line
        )
        with self._lock:
            self.states += 1
            self.crossed_values += foreign

    def close(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()


@contextmanager
def infrastructure(workdir: Path) -> Iterator[Infra]:
    from simulators.external import Mosquitto, VictoriaMetrics

    with ExitStack() as stack:
        broker = stack.enter_context(Mosquitto(workdir / "mosquitto"))
        vm = stack.enter_context(VictoriaMetrics(workdir / "vm"))
        yield Infra(broker.port, vm.url, vm)


@contextmanager
def line_simulators(workdir: Path, count: int) -> Iterator[list[Any]]:
    from simulators.process import SimulatorProcess

    args = ["--no-mqtt", "--no-modbus", "--no-rtu", "--log-level", "ERROR"]
    args += ["--opcua-synthetic", str(TAGS), "--opcua-synthetic-rate", str(RATE_HZ)]
    with ExitStack() as stack:
        sims = [
            stack.enter_context(
                SimulatorProcess(workdir / f"sim-{n}", extra_args=args, ready_timeout=120.0)
            )
            for n in range(count)
        ]
        time.sleep(1.0)  # the synthetic loops under way
        yield sims


@dataclass(frozen=True)
class Usage:
    cpu_pct: float
    rss_peak_mb: float
    samples_per_s: float


def measure(
    services: dict[str, Service], window_s: float, others: list[int] | None = None
) -> tuple[dict[str, Usage], float]:
    """CPU, peak RSS and samples/s of every service over the same ``window_s``, and the CPU of
    the ``others`` pids (the simulators) together, % of a core."""
    import psutil

    other_procs = [psutil.Process(pid) for pid in others or []]
    others_start = sum(map(_cpu_seconds, other_procs))
    procs = {}
    for name, service in services.items():
        assert service.process is not None
        procs[name] = psutil.Process(service.process.pid)
    samples_start = {name: sum(s.samples_in().values()) for name, s in services.items()}
    cpu_start = {name: _cpu_seconds(p) for name, p in procs.items()}
    rss = {name: p.memory_info().rss for name, p in procs.items()}
    wall_start = time.perf_counter()
    end = wall_start + window_s
    while time.perf_counter() < end:
        time.sleep(min(0.5, max(0.0, end - time.perf_counter())))
        for name, p in procs.items():
            rss[name] = max(rss[name], p.memory_info().rss)
    elapsed = time.perf_counter() - wall_start
    others_pct = 100.0 * (sum(map(_cpu_seconds, other_procs)) - others_start) / elapsed
    usage = {
        name: Usage(
            cpu_pct=100.0 * (_cpu_seconds(procs[name]) - cpu_start[name]) / elapsed,
            rss_peak_mb=rss[name] / 2**20,
            samples_per_s=(sum(services[name].samples_in().values()) - samples_start[name])
            / elapsed,
        )
        for name in services
    }
    return usage, others_pct


def crossed_series(infra: Infra) -> tuple[int, int]:
    """(samples crossed, samples checked) over every ``sample_value`` series in VM."""
    infra.vm.force_flush()
    query = urllib.parse.quote('{__name__="sample_value"}')
    url = f"{infra.vm_url}/api/v1/export?match[]={query}"
    crossed = checked = 0
    with urllib.request.urlopen(url, timeout=120) as response:
        for raw in response:
            if not raw.strip():
                continue
            series = json.loads(raw)
            labels, count = series["metric"], len(series["values"])
            checked += count
            path_line = labels.get("path", "").split(".")[1:2]
            if labels.get("site") != SITE or path_line != [labels.get("line")]:
                crossed += count
    return crossed, checked


def site_lines(api: Service, api_port: int, username: str, password: str) -> dict[str, bool]:
    base = f"http://127.0.0.1:{api_port}"
    login = urllib.request.Request(
        f"{base}/api/auth/login",
        data=json.dumps({"username": username, "password": password}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(login, timeout=10) as response:
        token = json.loads(response.read())["access_token"]
    request = urllib.request.Request(
        f"{base}/api/site", headers={"Authorization": f"Bearer {token}"}
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        body = json.loads(response.read())
    return {line["line"]: line["online"] for site in body["sites"] for line in site["lines"]}


def _pids(processes: list[Any]) -> list[int]:
    return [p.process.pid for p in processes if p.process is not None]


def _line_service(workdir: Path, line: str, sim: Any, infra: Infra) -> Service:
    def render(_ports: Ports, health_port: int, api_port: int) -> str:
        return line_toml(line, sim.port, infra, health_port, api_port)

    return Service(workdir / line, Ports(sim.port, 0, infra.mqtt_port), render)


def run_all(workdir: Path) -> list[Row]:
    from circman5.api.users import UserStore
    from simulators.external import free_port

    with infrastructure(workdir) as infra:
        # baseline: one line alone on the box
        with line_simulators(workdir / "alone", 1) as (sim,):
            alone = _line_service(workdir / "alone", "line1", sim, infra)
            try:
                alone.start()
                alone.wait_ready(120)
                time.sleep(WARMUP_S)
                measured, sim_alone_pct = measure({"line1": alone}, WINDOW_S, _pids([sim]))
                baseline = measured["line1"]
            finally:
                alone.stop()

        watch = TopicWatch(infra.mqtt_port)
        with line_simulators(workdir / "site", LINES) as sims:
            services = {
                f"line{n + 1}": _line_service(workdir / "site", f"line{n + 1}", sim, infra)
                for n, sim in enumerate(sims)
            }
            api_port = free_port()
            api_dir = workdir / "site" / "site-api"

            def render_api(_ports: Ports, health_port: int, _api_port: int) -> str:
                return site_api_toml(infra, health_port, api_port)

            api = Service(api_dir, Ports(0, 0, infra.mqtt_port), render_api)
            UserStore(api_dir / "data" / "api" / "users.json").add(
                "bench", "bench-password", "viewer"
            )
            everyone = {**services, "site-api": api}
            try:
                for service in everyone.values():
                    service.start()
                for service in everyone.values():
                    service.wait_ready(120)
                time.sleep(WARMUP_S)
                usage, sims_pct = measure(everyone, WINDOW_S, _pids(sims))
                online = site_lines(api, api_port, "bench", "bench-password")
            finally:
                for service in everyone.values():
                    service.stop()
        watch.close()
        crossed, checked = crossed_series(infra)

    lines = [usage[name] for name in services]
    offered = LINES * TAGS * RATE_HZ
    ingested = sum(u.samples_per_s for u in lines)
    print(
        f"site: {LINES} lines x {TAGS} tags x {RATE_HZ:.0f} Hz; {checked:,} samples in "
        f"VictoriaMetrics checked, {crossed} crossed; {watch.states} state messages checked, "
        f"{watch.crossed_values} foreign values; site page: {online}; {os.cpu_count()} CPU(s)",
        file=sys.stderr,
    )
    if sorted(online) != sorted(services) or not all(online.values()):
        print(f"site page does not show every line online: {online}", file=sys.stderr)
    rows = []
    for name, u in zip(services, lines, strict=True):
        rows.append(
            Row(
                f"{name}: CPU ({TAGS} tags x {RATE_HZ:.0f} Hz)",
                u.cpu_pct,
                "% of a core",
                CPU_TARGET_PCT,
                higher_is_better=False,
                baseline=baseline.cpu_pct,
                baseline_label="% one line alone",
            )
        )
        rows.append(
            Row(
                f"{name}: resident memory (peak)",
                u.rss_peak_mb,
                "MB",
                RSS_TARGET_MB,
                higher_is_better=False,
                baseline=baseline.rss_peak_mb,
                baseline_label="MB one line alone",
            )
        )
    site_api = usage["site-api"]
    rows += [
        Row("site API: CPU (follows every line)", site_api.cpu_pct, "% of a core", None),
        Row("site API: resident memory (peak)", site_api.rss_peak_mb, "MB", None),
        Row(
            f"the {LINES} simulators' CPU (the load generators, not counted)",
            sims_pct,
            "% of a core",
            None,
            baseline=sim_alone_pct,
            baseline_label="% one simulator alone",
        ),
        Row(
            f"site ingested (offered {offered:,.0f}/s)",
            ingested,
            "samples/s",
            INGEST_TARGET * offered,
            baseline=baseline.samples_per_s * LINES,
            baseline_label=f"samples/s one line alone x {LINES}",
        ),
        Row(
            "samples crossed into another line (VM + state topics)",
            float(crossed + watch.crossed_values),
            "samples",
            0.0,
            higher_is_better=False,
        ),
        Row(
            "lines online on the site page",
            float(sum(online.values())),
            "lines",
            float(LINES),
        ),
    ]
    return rows


def main() -> list[Row]:
    tmp = tempfile.mkdtemp(prefix="circman5-bench-site-")
    try:
        return run_all(Path(tmp))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
