"""The edge service as deployed: ``circman5 run --config edge.toml`` as a real child process.

mosquitto and three ``circman5-sim`` processes (one per protocol, so one server's bursts do not
delay another's; their CPU is not counted) run first. Each ``circman5 run`` gets its own
temporary data directory (``CIRCMAN5_DATA_DIR``), free ports and the default log level. The
settings are shaped like the default demo (``config/demo.toml``): health port, **API enabled**,
events and state out over MQTT, series into the embedded store (no InfluxDB).

* **Start-up to ready**: from ``Popen`` to ``/ready`` answering 200 (polled every 10 ms), with
  the demo's tag map (three connectors, 23 tags) and with the 1,000-tag map below; best of
  ``STARTS`` starts. Target < 2 s. Baseline: ``python -c "import circman5.service.app"`` in a
  fresh interpreter (interpreter start plus the service's own imports), best of ``STARTS``.
  The package is byte-compiled first, as an installation is.
* **Steady state with 1,000 tags at 10 Hz**: 400 OPC UA synthetic variables changing at 10 Hz
  (one subscription, 100 ms sampling and publishing), 300 MQTT synthetic topics at 3,000 msgs/s
  in total (JSON ``{"value", "ts", "seq"}``; the connector's default MQTT 3.1.1, or
  ``BENCH_SERVICE_MQTT_PROTOCOL=5``), 300 Modbus holding registers (unit 4) polled every
  0.1 s: about 10,000 samples/s offered. Steady state starts when the twin's state history is
  full (``STATE_MANAGEMENT.default_history_length`` updates, 100 s at the default 1,000 states
  and 10 Hz ticks; until then resident memory grows by one state per tick). Then psutil measures
  the process's CPU time (user + system, % of one core) over ``WINDOW_S`` and samples its
  resident memory every 0.5 s (the peak is reported); ``circman5_samples_in_total`` from
  ``/metrics`` gives the samples/s actually ingested. Targets: < 25 % of one core, < 150 MB.
  Baseline: the same service with no connectors, idle.

Run: ``python -m benchmarks service`` (about three minutes; ``BENCH_SERVICE_WINDOW_S``,
``BENCH_SERVICE_STARTS`` shorten it).
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks.report import Row

STARTS = int(os.environ.get("BENCH_SERVICE_STARTS", "3"))
WINDOW_S = float(os.environ.get("BENCH_SERVICE_WINDOW_S", "20"))
MQTT_PROTOCOL = os.environ.get("BENCH_SERVICE_MQTT_PROTOCOL")  # None: the connector's default
IDLE_WARMUP_S = 3.0
IDLE_WINDOW_S = float(os.environ.get("BENCH_SERVICE_IDLE_WINDOW_S", "8"))
FILL_TIMEOUT_S = 240.0

OPCUA_TAGS = 400
MQTT_TOPICS = 300
MQTT_RATE = 3000.0  # msgs/s over all topics: 10 Hz each
MODBUS_REGISTERS = 300
RATE_HZ = 10.0
OFFERED = OPCUA_TAGS * RATE_HZ + MQTT_RATE + MODBUS_REGISTERS * RATE_HZ

STARTUP_TARGET_S = 2.0
CPU_TARGET_PCT = 25.0
RSS_TARGET_MB = 150.0

_SAMPLES_IN = re.compile(r'^circman5_samples_in_total\{connector="([^"]+)"\} (\S+)$', re.M)

Render = Callable[["Ports", int, int], str]


@dataclass(frozen=True)
class Ports:
    """Where the simulators and the broker listen."""

    opcua: int
    modbus: int
    mqtt: int


# -- the settings ---------------------------------------------------------------------------------


def _common(health_port: int, api_port: int, mqtt_port: int) -> str:
    return (
        'site = "bench"\nline = "line1"\n\n'
        f"[health]\nport = {health_port}\n\n"
        f"[api]\nport = {api_port}\n\n"
        f'[outputs.mqtt]\nhost = "127.0.0.1"\nport = {mqtt_port}\ntopic_prefix = "circman5"\n\n'
    )


def load_toml(ports: Ports, health_port: int, api_port: int) -> str:
    """The 1,000-tag map over the three protocols, as a service settings file."""
    out = [_common(health_port, api_port, ports.mqtt)]
    out.append(
        '[[connectors]]\ntype = "opcua"\nname = "plc"\n'
        f'url = "opc.tcp://127.0.0.1:{ports.opcua}/circman5/plc"\n'
        'namespace_uri = "urn:circman5:sim:plc"\n'
        "publishing_interval_ms = 100\nsampling_interval_ms = 100\n\n"
    )
    for i in range(OPCUA_TAGS):
        out.append(
            f'[[connectors.tags]]\naddress = "s=Line1.Synthetic.Tag{i:05d}"\n'
            f'path = "synthetic.opcua.tag{i:05d}"\n\n'
        )
    protocol = f'protocol = "{MQTT_PROTOCOL}"\n' if MQTT_PROTOCOL else ""
    out.append(
        f'[[connectors]]\ntype = "mqtt"\nname = "mes"\nhost = "127.0.0.1"\nport = {ports.mqtt}\n'
        f"{protocol}\n"
    )
    for i in range(MQTT_TOPICS):
        out.append(
            f'[[connectors.tags]]\naddress = "sim/synthetic/{i}"\n'
            f'path = "synthetic.mqtt.topic{i:05d}"\nfield = "value"\ntimestamp_field = "ts"\n\n'
        )
    out.append(
        '[[connectors]]\ntype = "modbus"\nname = "meters"\nhost = "127.0.0.1"\n'
        f"port = {ports.modbus}\nunit_id = 4\npoll_interval_s = {1 / RATE_HZ}\n\n"
    )
    for i in range(MODBUS_REGISTERS):
        out.append(
            f'[[connectors.tags]]\naddress = "hr:{i}"\npath = "synthetic.modbus.reg{i:05d}"\n'
            'data_type = "uint16"\n\n'
        )
    return "".join(out)


def idle_toml(ports: Ports, health_port: int, api_port: int) -> str:
    """The same service with no connectors."""
    return _common(health_port, api_port, ports.mqtt)


def demo_toml(ports: Ports, health_port: int, api_port: int) -> str:
    """``config/demo.toml`` on this run's ports."""
    from circman5.service.demo_config import DemoPorts, demo_settings_toml

    return demo_settings_toml(
        DemoPorts(
            opcua_port=ports.opcua,
            modbus_port=ports.modbus,
            mqtt_port=ports.mqtt,
            api_port=api_port,
            health_port=health_port,
        )
    )


# -- the service as a child process ---------------------------------------------------------------


def _circman5_command() -> list[str]:
    script = Path(sys.executable).parent / "circman5"
    return [str(script)] if script.exists() else [sys.executable, "-m", "circman5"]


def _http_get(url: str, timeout: float = 2.0) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return int(response.status), response.read()
    except urllib.error.HTTPError as err:
        return int(err.code), err.read()


class Service:
    """One ``circman5 run --config FILE`` with its own data directory and ports."""

    def __init__(self, workdir: Path, ports: Ports, render: Render) -> None:
        from simulators.external import free_port

        self.workdir = workdir
        self.workdir.mkdir(parents=True)
        self.health_port = free_port()
        self.config = workdir / "edge.toml"
        self.config.write_text(render(ports, self.health_port, free_port()))
        self.log_path = workdir / "service.log"
        self.process: subprocess.Popen[bytes] | None = None
        self.started_at = 0.0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.health_port}"

    def start(self) -> None:
        env = dict(os.environ, CIRCMAN5_DATA_DIR=str(self.workdir / "data"))
        env.pop("CIRCMAN5_CONFIG_DIR", None)  # the embedded constants
        with self.log_path.open("ab") as log:
            self.started_at = time.perf_counter()
            self.process = subprocess.Popen(
                [*_circman5_command(), "run", "--config", str(self.config)],
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.workdir,
                env=env,
            )

    def wait_ready(self, timeout: float = 60.0) -> float:
        """Seconds from process start to ``/ready`` answering 200 (polled every 10 ms)."""
        assert self.process is not None
        deadline = self.started_at + timeout
        while time.perf_counter() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"circman5 run exited at start; log:\n{self.log_tail()}")
            try:
                if _http_get(f"{self.url}/ready", timeout=1.0)[0] == 200:
                    return time.perf_counter() - self.started_at
            except OSError:
                pass
            time.sleep(0.01)
        raise TimeoutError(f"circman5 run not ready after {timeout:.0f}s; log:\n{self.log_tail()}")

    def metrics(self) -> str:
        status, body = _http_get(f"{self.url}/metrics")
        if status != 200:
            raise RuntimeError(f"/metrics answered {status}")
        return body.decode()

    def samples_in(self) -> dict[str, float]:
        """``circman5_samples_in_total`` per connector."""
        return {name: float(value) for name, value in _SAMPLES_IN.findall(self.metrics())}

    def metric(self, name: str) -> float:
        """The sum of a metric over its labels."""
        pattern = rf"^{re.escape(name)}(?:\{{[^}}]*\}})? (\S+)$"
        return sum(float(v) for v in re.findall(pattern, self.metrics(), re.M))

    def stop(self) -> None:
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def log_tail(self, lines: int = 30) -> str:
        if not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])


@contextmanager
def running(workdir: Path, ports: Ports, render: Render) -> Iterator[Service]:
    service = Service(workdir, ports, render)
    try:
        service.start()
        yield service
    finally:
        service.stop()


# -- the simulators -------------------------------------------------------------------------------


def _sim_args(protocol: str) -> list[str]:
    """One protocol's servers with its synthetic load (``--no-mqtt`` comes from the caller)."""
    only = {
        "opcua": ["--no-modbus", "--opcua-synthetic", str(OPCUA_TAGS)],
        "mqtt": ["--no-opcua", "--no-modbus", "--mqtt-synthetic", str(MQTT_TOPICS)],
        "modbus": ["--no-opcua", "--modbus-synthetic", str(MODBUS_REGISTERS)],
    }[protocol]
    rates = ["--opcua-synthetic-rate", str(RATE_HZ), "--mqtt-synthetic-rate", str(MQTT_RATE)]
    rates += ["--modbus-synthetic-rate", str(RATE_HZ)]
    return ["--no-rtu", "--log-level", "ERROR", *only, *rates]


@contextmanager
def simulators(workdir: Path) -> Iterator[tuple[Ports, list[int]]]:
    """mosquitto and one simulator process per protocol; yields the ports and their pids."""
    from simulators.external import Mosquitto
    from simulators.process import SimulatorProcess

    with ExitStack() as stack:
        broker = stack.enter_context(Mosquitto(workdir / "mosquitto"))
        sims = {}
        for protocol in ("opcua", "mqtt", "modbus"):
            sim = SimulatorProcess(
                workdir / f"sim-{protocol}",
                mqtt_port=broker.port if protocol == "mqtt" else None,
                extra_args=_sim_args(protocol),
                ready_timeout=120.0,
            )
            sims[protocol] = stack.enter_context(sim)
        ports = Ports(opcua=sims["opcua"].port, modbus=sims["modbus"].modbus_port, mqtt=broker.port)
        pids = [p.process.pid for p in (broker, *sims.values()) if p.process is not None]
        time.sleep(1.0)  # the synthetic loops under way
        yield ports, pids


# -- measurements ---------------------------------------------------------------------------------


def _import_time() -> float:
    """A fresh interpreter importing the service (``python -c "import circman5.service.app"``)."""
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", "import circman5.service.app"], check=True)
    return time.perf_counter() - start


def _history_length() -> int:
    """The twin's state history length (the embedded default constants, as the service uses)."""
    from circman5.adapters.services.constants_service import ConstantsService

    section = ConstantsService().get_digital_twin_config()["STATE_MANAGEMENT"]
    return int(section["default_history_length"])


def _cpu_seconds(process: Any) -> float:
    """User + system CPU seconds of ``process`` and its live children."""
    import psutil

    total = 0.0
    for proc in [process, *process.children(recursive=True)]:
        try:
            times = proc.cpu_times()
        except psutil.NoSuchProcess:
            continue
        total += times.user + times.system
    return total


@dataclass(frozen=True)
class Usage:
    cpu_pct: float
    rss_peak_mb: float
    samples_per_s: dict[str, float]
    others_cpu_pct: float


def measure_usage(service: Service, window_s: float, others: list[int]) -> Usage:
    """CPU (% of one core), peak RSS and ingested samples/s of ``service`` over ``window_s``.

    ``others``: pids (simulators, broker) whose CPU over the same window is reported apart.
    """
    import psutil

    assert service.process is not None
    process = psutil.Process(service.process.pid)
    other_procs = [psutil.Process(pid) for pid in others]
    samples_start = service.samples_in()
    others_start = sum(map(_cpu_seconds, other_procs))
    cpu_start, wall_start = _cpu_seconds(process), time.perf_counter()
    rss_peak = process.memory_info().rss
    end = wall_start + window_s
    while time.perf_counter() < end:
        time.sleep(min(0.5, max(0.0, end - time.perf_counter())))
        rss_peak = max(rss_peak, process.memory_info().rss)
    cpu_end, wall_end = _cpu_seconds(process), time.perf_counter()
    others_end = sum(map(_cpu_seconds, other_procs))
    samples_end = service.samples_in()
    elapsed = wall_end - wall_start
    return Usage(
        cpu_pct=100.0 * (cpu_end - cpu_start) / elapsed,
        rss_peak_mb=rss_peak / 2**20,
        samples_per_s={
            name: (count - samples_start.get(name, 0.0)) / elapsed
            for name, count in samples_end.items()
        },
        others_cpu_pct=100.0 * (others_end - others_start) / elapsed,
    )


def wait_history_full(service: Service, history: int) -> list[tuple[float, float]]:
    """Until the twin applied ``history`` updates (+1 s); returns (seconds, RSS MB) on the way."""
    import psutil

    assert service.process is not None
    process = psutil.Process(service.process.pid)
    start = time.perf_counter()
    trace: list[tuple[float, float]] = []
    target = history + RATE_HZ
    while service.metric("circman5_twin_updates_total") < target:
        elapsed = time.perf_counter() - start
        if elapsed > FILL_TIMEOUT_S:
            raise TimeoutError(f"the twin did not apply {target:.0f} updates in {elapsed:.0f}s")
        trace.append((elapsed, process.memory_info().rss / 2**20))
        time.sleep(1.0)
    return trace


def _compile_bytecode() -> None:
    """Byte-compile the package first, as installing it does: with ``PYTHONDONTWRITEBYTECODE``
    set (as on some build machines) every start would otherwise compile the service's modules
    again, and the start-up figures would measure the compiler."""
    import compileall

    import circman5

    compileall.compile_dir(Path(circman5.__file__).parent, quiet=1)


def run_all(workdir: Path) -> list[Row]:
    history = _history_length()
    _compile_bytecode()
    with simulators(workdir) as (ports, sim_pids):
        imports = min(_import_time() for _ in range(STARTS))
        startup: dict[str, list[float]] = {"demo": [], "load": []}
        for round_ in range(STARTS):
            for name, render in (("demo", demo_toml), ("load", load_toml)):
                if name == "load" and round_ == STARTS - 1:
                    continue  # the last start of the 1,000-tag map is the steady-state run
                with running(workdir / f"start-{name}-{round_}", ports, render) as service:
                    startup[name].append(service.wait_ready())

        with running(workdir / "idle", ports, idle_toml) as service:
            service.wait_ready()
            time.sleep(IDLE_WARMUP_S)
            idle = measure_usage(service, IDLE_WINDOW_S, [])

        with running(workdir / "load", ports, load_toml) as service:
            startup["load"].append(service.wait_ready())
            fill = wait_history_full(service, history)
            load = measure_usage(service, WINDOW_S, sim_pids)
            dropped = service.metric("circman5_samples_dropped_total")
            rejected = service.metric("circman5_twin_updates_rejected_total")

    early = next((rss for t, rss in fill if t >= 20.0), fill[-1][1] if fill else 0.0)
    print(
        f"service: RSS {early:.0f} MB 20 s after ready, {load.rss_peak_mb:.0f} MB with the "
        f"twin's history full ({history} states, after {fill[-1][0] if fill else 0:.0f} s); "
        f"simulators + mosquitto {load.others_cpu_pct:.0f} % CPU (not counted); "
        f"samples dropped {dropped:.0f}, twin updates rejected {rejected:.0f}; "
        f"{os.cpu_count()} CPU(s)",
        file=sys.stderr,
    )
    rows = [
        Row(
            "start-up to /ready, demo tag map (23 tags)",
            min(startup["demo"]),
            "s",
            STARTUP_TARGET_S,
            higher_is_better=False,
            baseline=imports,
            baseline_label="s import circman5.service.app",
        ),
        Row(
            "start-up to /ready, 1,000-tag map",
            min(startup["load"]),
            "s",
            STARTUP_TARGET_S,
            higher_is_better=False,
            baseline=imports,
            baseline_label="s import circman5.service.app",
        ),
        Row(
            "CPU, 1,000 tags at 10 Hz (3 protocols)",
            load.cpu_pct,
            "% of a core",
            CPU_TARGET_PCT,
            higher_is_better=False,
            baseline=idle.cpu_pct,
            baseline_label="% idle, no connectors",
        ),
        Row(
            "resident memory (peak), 1,000 tags at 10 Hz",
            load.rss_peak_mb,
            "MB",
            RSS_TARGET_MB,
            higher_is_better=False,
            baseline=idle.rss_peak_mb,
            baseline_label="MB idle, no connectors",
        ),
        Row(
            f"samples ingested (offered ~{OFFERED:,.0f}/s)",
            sum(load.samples_per_s.values()),
            "samples/s",
            None,
        ),
    ]
    for name, label in (
        ("plc", f"OPC UA, {OPCUA_TAGS} tags"),
        ("mes", f"MQTT, {MQTT_TOPICS} topics"),
        ("meters", f"Modbus, {MODBUS_REGISTERS} registers"),
    ):
        rows.append(
            Row(f"  of which {label}", load.samples_per_s.get(name, 0.0), "samples/s", None)
        )
    return rows


def main() -> list[Row]:
    tmp = tempfile.mkdtemp(prefix="circman5-bench-service-")
    try:
        return run_all(Path(tmp))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
