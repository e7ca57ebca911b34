"""The whole pipeline as a user runs it, beside a bare-library script, in the same run.

``N`` small JSON messages (``{"value": i}`` on ``bench/line1/tag<k>/value``, 100 topics) are
flooded through a real mosquitto, at QoS 0 and at QoS 1, into

* **the service**: ``circman5 run --config edge.toml`` as a child process: one MQTT connector on
  the topic tree (``bench/line1/+/value`` -> ``bench.{1}.value``, field ``value``; QoS 1 with the
  default ``acknowledge = "durable"``: PUBACK once the samples are in the outbox) -> the
  synchronization engine -> the twin -> every raw sample as line protocol through the durable
  outbox into InfluxDB's v2 write API, served by a real VictoriaMetrics;
* **the bare script** (:data:`_BARE`): the same libraries without durability: paho (network
  thread) -> orjson -> a dict -> a line-protocol line -> HTTP batches of 5,000 lines through
  influxdb-client's synchronous write API (a second thread) into its own VictoriaMetrics.

Each round starts a fresh mosquitto and VictoriaMetrics, starts the subject, proves the whole
path with a warm-up message (its point must reach the server), then a raw-socket publisher (in
this process, a few per cent of a core: pre-built packets) hands the broker every message at once.
Measured, per round:

* **stored msgs/s**: ``N`` / seconds from the first byte published to the moment the server
  holds all ``N`` points (VictoriaMetrics is polled every ``POLL_S`` after ``force_flush``;
  ``sum(count_over_time(sample_value{...}))``, the warm-up point left out);
* **CPU**: user + system seconds of the subject process (and its children) over the same span,
  per 1,000 messages;
* **peak RSS** of the subject, sampled at every poll;
* **loss**: ``N`` minus the points the server counts (a round ends ``STALL_S`` after the count
  last moved if it never reaches ``N``); more than ``N`` are repeats (the outbox delivers at
  least once: a request that timed out is sent again), printed per round; the sum of the stored
  values is checked against ``0 + 1 + ... + N-1`` as well.

Rounds alternate subject and bare script (``ROUNDS`` each, the best of each is reported; every
round is printed on stderr). Target: the service at >= 0.95x of the bare script's figure.

Other subjects: :data:`VARIANTS` lists the service's configurations; a :class:`Variant` adds
connector TOML (e.g. ``workers = 2``) to the MQTT connector and gets its own rows.

Per round it also prints the CPU seconds per 100,000 messages of every process of the pipeline
(the subject, each ingestion worker, mosquitto, VictoriaMetrics, the publisher's threads) and the
cores each kept busy: on a 2-core box the broker and the server share the cores with the subject.

Run: ``python -m benchmarks pipeline`` (about three minutes); ``BENCH_PIPELINE_MESSAGES`` (default
300,000), ``BENCH_PIPELINE_ROUNDS`` (2) and ``BENCH_PIPELINE_QOS`` (``0,1``) change it;
``BENCH_PIPELINE_VARIANTS`` picks variants by label (``one process,2 workers 3.1.1``);
``BENCH_PIPELINE_BEFORE=<src dir>`` runs each chosen variant again from another source tree (before
and after a change, same run); ``BENCH_PIPELINE_PROFILE=<dir>`` has py-spy sample the subject's
Python processes over each flood.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmarks.report import Row

MESSAGES = int(os.environ.get("BENCH_PIPELINE_MESSAGES", "300000"))
ROUNDS = int(os.environ.get("BENCH_PIPELINE_ROUNDS", "2"))
QOS_LEVELS = tuple(int(q) for q in os.environ.get("BENCH_PIPELINE_QOS", "0,1").split(","))
TOPICS = 100
RATIO = 0.95
POLL_S = 0.1
STALL_S = 30.0
READY_TIMEOUT_S = 60.0
BARE_BATCH = 5000

_ROOT = Path(__file__).resolve().parent.parent
_FILTER = "bench/line1/+/value"
_WARMUP_TOPIC = "bench/line1/warmup/value"
_WARMUP_PATH = "bench.warmup.value"
_COUNTED = f'sample_value{{path!="{_WARMUP_PATH}"}}'


@dataclass(frozen=True)
class Variant:
    """One configuration of the service: ``connector_toml`` is added to the MQTT connector's
    table (``key = value`` lines, e.g. ``"workers = 2\\n"``); ``ratio`` is its target against the
    bare script's figure."""

    label: str
    connector_toml: str = ""
    ratio: float = RATIO
    #: run the service from this source tree instead (``PYTHONPATH``): "before" in the same run
    source: str = ""


WORKERS_SPEEDUP = 1.6
"""Target of the ``2 workers`` variant against the one process (issue 17, on 2 cores)."""

VARIANTS: list[Variant] = [
    Variant("one process"),
    # ingestion worker processes on an MQTT 5 shared subscription (docs/operations.md)
    Variant("2 workers", 'protocol = "5"\nworkers = 2\n', ratio=WORKERS_SPEEDUP * RATIO),
    # the same on MQTT 3.1.1 (mosquitto offers shared subscriptions to 3.1.1 clients too)
    Variant(
        "2 workers 3.1.1",
        "workers = 2\nshared_subscriptions_on_3_1_1 = true\n",
        ratio=WORKERS_SPEEDUP * RATIO,
    ),
]
"""The service configurations measured (each beside the bare script, rounds alternating)."""


# -- the subjects ---------------------------------------------------------------------------------

_BARE = r"""
import queue, sys, threading, time
import orjson
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from influxdb_client.client.influxdb_client import InfluxDBClient
from influxdb_client.client.write_api import SYNCHRONOUS
from influxdb_client.domain.write_precision import WritePrecision

port, url, qos, batch_size = int(sys.argv[1]), sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
batches = queue.Queue()
lock = threading.Lock()
lines = []


def on_message(client, userdata, message):
    global lines
    document = orjson.loads(message.payload)
    level = message.topic.split("/")[2]
    point = {"path": f"bench.{level}.value", "value": float(document["value"]),
             "time": time.time_ns()}
    line = (f"sample,line=line1,path={point['path']},quality=good,site=bench,source=mes "
            f"value={point['value']!r} {point['time']}\n")
    with lock:
        lines.append(line)
        if len(lines) >= batch_size:
            batches.put(lines)
            lines = []


def on_subscribe(client, userdata, mid, reason_codes, properties):
    print("ready", flush=True)


client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="bench-bare")
client.on_message = on_message
client.on_subscribe = on_subscribe
client.on_connect = lambda c, u, f, rc, p: c.subscribe("bench/line1/+/value", qos=qos)
client.connect("127.0.0.1", port)
influx = InfluxDBClient(url=url, token="", org="circman5", timeout=10_000, retries=False)
write_api = influx.write_api(write_options=SYNCHRONOUS)
client.loop_start()
while True:
    try:
        batch = batches.get(timeout=0.1)
    except queue.Empty:
        with lock:
            batch, lines = lines, []
        if not batch:
            continue
    body = "".join(batch).encode()
    while True:  # a slow or failed request is sent again, as any script would
        try:
            write_api.write("circman5", "circman5", body, WritePrecision.NS)
            break
        except Exception as err:
            print("write failed, again:", err, file=sys.stderr, flush=True)
            time.sleep(0.5)
"""


def service_toml(
    mqtt_port: int, vm_url: str, health_port: int, api_port: int, qos: int, connector_toml: str
) -> str:
    """The service's settings: one MQTT connector on the topic tree, InfluxDB v2 output."""
    return (
        'site = "bench"\nline = "line1"\n\n'
        f"[health]\nport = {health_port}\n\n"
        f"[api]\nport = {api_port}\n\n"
        f'[outputs.influxdb]\nurl = "{vm_url}"\n\n'
        f'[[connectors]]\ntype = "mqtt"\nname = "mes"\nhost = "127.0.0.1"\nport = {mqtt_port}\n'
        f"qos = {qos}\n{connector_toml}\n"
        f'[[connectors.tags]]\naddress = "{_FILTER}"\npath = "bench.{{1}}.value"\n'
        'field = "value"\n'
    )


def _circman5_command() -> list[str]:
    script = Path(sys.executable).parent / "circman5"
    return [str(script)] if script.exists() else [sys.executable, "-m", "circman5"]


@contextmanager
def _subject(
    workdir: Path, command: list[str], env: dict[str, str]
) -> Iterator[subprocess.Popen[bytes]]:
    workdir.mkdir(parents=True, exist_ok=True)
    log = (workdir / "subject.log").open("wb")
    process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, cwd=workdir, env=env)
    try:
        yield process
    finally:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        log.close()


def _log_tail(workdir: Path, lines: int = 30) -> str:
    path = workdir / "subject.log"
    if not path.exists():
        return ""
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


# -- the publisher --------------------------------------------------------------------------------


def _varint(number: int) -> bytes:
    out = bytearray()
    while True:
        digit, number = number % 128, number // 128
        out.append(digit | 0x80 if number else digit)
        if not number:
            return bytes(out)


def _publish_packet(topic: bytes, payload: bytes, qos: int, packet_id: int) -> bytes:
    header = len(topic).to_bytes(2, "big") + topic
    if qos:
        header += packet_id.to_bytes(2, "big")
    body = header + payload
    return bytes([0x30 | (qos << 1)]) + _varint(len(body)) + body


def _connect_packet(client_id: bytes) -> bytes:
    # MQTT 3.1.1, clean session, keep-alive 0 (off)
    body = b"\x00\x04MQTT\x04\x02\x00\x00" + len(client_id).to_bytes(2, "big") + client_id
    return b"\x10" + _varint(len(body)) + body


def build_flood(count: int, qos: int) -> list[bytes]:
    """The messages as PUBLISH packets, joined into chunks of about 64 KiB."""
    topics = [b"bench/line1/tag%d/value" % k for k in range(TOPICS)]
    chunks: list[bytes] = []
    parts: list[bytes] = []
    size = 0
    for i in range(count):
        packet = _publish_packet(topics[i % TOPICS], b'{"value": %d}' % i, qos, i % 65535 + 1)
        parts.append(packet)
        size += len(packet)
        if size >= 65536:
            chunks.append(b"".join(parts))
            parts, size = [], 0
    if parts:
        chunks.append(b"".join(parts))
    return chunks


class RawPublisher:
    """An MQTT 3.1.1 publisher on a plain socket: sends pre-built packets, reads the PUBACKs."""

    def __init__(self, port: int, qos: int, count: int, client_id: str) -> None:
        self.qos = qos
        self.count = count
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=30)
        self.sock.sendall(_connect_packet(client_id.encode()))
        connack = self._read_exactly(4)
        if connack[0] != 0x20 or connack[3] != 0:
            raise RuntimeError(f"mosquitto refused the publisher: {connack!r}")
        self._reader: threading.Thread | None = None
        # CPU seconds of the sending and of the acknowledgement-reading thread
        self.send_cpu_s = 0.0
        self.ack_cpu_s = 0.0

    def _read_exactly(self, size: int) -> bytes:
        data = b""
        while len(data) < size:
            chunk = self.sock.recv(size - len(data))
            if not chunk:
                raise RuntimeError("mosquitto closed the publisher's connection")
            data += chunk
        return data

    def _read_acks(self) -> None:
        start = time.thread_time()
        remaining = 4 * self.count  # one PUBACK is 4 bytes
        while remaining > 0:
            chunk = self.sock.recv(min(remaining, 1 << 20))
            if not chunk:
                break
            remaining -= len(chunk)
        self.ack_cpu_s = time.thread_time() - start

    @property
    def cpu_s(self) -> float:
        """CPU seconds the publisher's threads used (read after :meth:`send` returned)."""
        return self.send_cpu_s + self.ack_cpu_s

    def send(self, chunks: list[bytes]) -> None:
        """Every chunk, then (QoS 1: once every PUBACK is in) DISCONNECT."""
        start = time.thread_time()
        if self.qos:
            self._reader = threading.Thread(target=self._read_acks, daemon=True)
            self._reader.start()
        for chunk in chunks:
            self.sock.sendall(chunk)
        self.send_cpu_s = time.thread_time() - start
        if self._reader is not None:
            self._reader.join(120)
        self.sock.sendall(b"\xe0\x00")
        self.sock.close()


def publish_one(port: int, topic: str, payload: bytes) -> None:
    publisher = RawPublisher(port, 0, 1, "bench-warmup")
    publisher.send([_publish_packet(topic.encode(), payload, 0, 1)])


# -- VictoriaMetrics ------------------------------------------------------------------------------


def _query(vm: Any, expression: str) -> float:
    vm.force_flush()
    url = f"{vm.url}/api/v1/query?" + urllib.parse.urlencode(
        {"query": expression, "time": f"{time.time() + 60:.3f}"}
    )
    with urllib.request.urlopen(url, timeout=30) as response:
        result = json.loads(response.read())["data"]["result"]
    return float(result[0]["value"][1]) if result else 0.0


def stored_count(vm: Any, selector: str = _COUNTED) -> int:
    return int(_query(vm, f"sum(count_over_time({selector}[2h]))"))


def stored_sum(vm: Any) -> float:
    return _query(vm, f"sum(sum_over_time({_COUNTED}[2h]))")


# -- one round ------------------------------------------------------------------------------------


@dataclass
class Result:
    subject: str
    qos: int
    rate: float
    cpu_ms_per_1000: float
    rss_peak_mb: float
    lost: int
    repeated: int
    exact: bool
    notes: list[str] = field(default_factory=list)
    #: CPU seconds per 100,000 messages of every process of the pipeline (the subject, each of
    #: its worker processes, mosquitto, VictoriaMetrics, the publisher)
    cpu_per_100k: dict[str, float] = field(default_factory=dict)
    #: cores each of them kept busy over the flood (CPU seconds / wall seconds)
    cores: dict[str, float] = field(default_factory=dict)
    #: threads of each waiting for a CPU while runnable, on average over the flood (run-queue
    #: seconds / wall seconds): the share the machine's other work took from them
    waiting: dict[str, float] = field(default_factory=dict)


def _cpu_seconds(process: Any) -> float:
    import psutil

    total = 0.0
    for proc in [process, *process.children(recursive=True)]:
        try:
            times = proc.cpu_times()
        except psutil.NoSuchProcess:
            continue
        total += times.user + times.system
    return total


def _pipeline_processes(process: Any, broker: Any, vm: Any) -> dict[str, Any]:
    """Every process of the pipeline by label: the subject (the service or the bare script),
    its children (the ingestion workers), mosquitto and VictoriaMetrics."""
    import psutil

    found: dict[str, Any] = {"subject": process}
    for index, child in enumerate(sorted(process.children(recursive=True), key=lambda c: c.pid)):
        found[f"worker {index}"] = child
    for label, server in (("mosquitto", broker), ("VictoriaMetrics", vm)):
        if server is not None and server.process is not None:
            found[label] = psutil.Process(server.process.pid)
    return found


def _own_cpu(processes: dict[str, Any]) -> dict[str, float]:
    """CPU seconds (user + system) of each process alone (not its children)."""
    import psutil

    seconds: dict[str, float] = {}
    for label, proc in processes.items():
        try:
            times = proc.cpu_times()
        except psutil.NoSuchProcess:
            continue
        seconds[label] = times.user + times.system
    return seconds


@contextmanager
def _profiled(subject: str, processes: dict[str, Any]) -> Iterator[None]:
    """``BENCH_PIPELINE_PROFILE=<dir>``: py-spy samples every Python process of the subject over
    the flood (``<dir>/<subject>-<process>.txt``, raw collapsed stacks with thread names)."""
    where = os.environ.get("BENCH_PIPELINE_PROFILE", "")
    spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    if not where:
        yield
        return
    Path(where).mkdir(parents=True, exist_ok=True)
    samplers = []
    for label, proc in processes.items():
        if label not in ("mosquitto", "VictoriaMetrics"):
            name = f"{subject}-{label}".replace(" ", "_")
            output = Path(where) / f"{name}.txt"
            command = [spy, "record", "-p", str(proc.pid), "-o", str(output), "-f", "raw"]
            command += ["--nonblocking", "--threads", "-r", "250"]
            samplers.append(subprocess.Popen(command, stdout=subprocess.DEVNULL))
    time.sleep(1.0)  # py-spy attaches
    try:
        yield
    finally:
        for sampler in samplers:
            sampler.send_signal(2)
        for sampler in samplers:
            sampler.wait(30)


def _run_delay(processes: dict[str, Any]) -> dict[str, float]:
    """Seconds each process's threads have waited for a CPU while runnable (Linux
    ``/proc/<pid>/task/<tid>/schedstat``, second field): time the machine's other work took."""
    waited: dict[str, float] = {}
    for label, proc in processes.items():
        total = 0
        for stat in Path(f"/proc/{proc.pid}/task").glob("*/schedstat"):
            with contextlib.suppress(OSError, ValueError, IndexError):
                total += int(stat.read_text().split()[1])
        waited[label] = total / 1e9
    return waited


def _warm_up(broker_port: int, vm: Any, process: subprocess.Popen[bytes], workdir: Path) -> None:
    """A warm-up message until its point is in the server: subscription, decode and output
    are all working before the clock starts."""
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the subject exited at start; log:\n{_log_tail(workdir)}")
        publish_one(broker_port, _WARMUP_TOPIC, b'{"value": 0.5}')
        time.sleep(0.5)
        if stored_count(vm, f'sample_value{{path="{_WARMUP_PATH}"}}'):
            return
    raise TimeoutError(f"warm-up point not stored in {READY_TIMEOUT_S:.0f}s:\n{_log_tail(workdir)}")


def flood(
    subject: str,
    qos: int,
    broker_port: int,
    vm: Any,
    process: subprocess.Popen[bytes],
    workdir: Path,
    count: int = MESSAGES,
    broker: Any = None,
) -> Result:
    """Flood ``count`` messages; time, CPU, RSS and loss as the module docstring says."""
    import psutil

    _warm_up(broker_port, vm, process, workdir)
    chunks = build_flood(count, qos)
    proc = psutil.Process(process.pid)
    publisher = RawPublisher(broker_port, qos, count, f"bench-flood-{subject}")
    processes = _pipeline_processes(proc, broker, vm)
    own_start = _own_cpu(processes)
    waited_start = _run_delay(processes)
    profiling = _profiled(subject, processes)
    profiling.__enter__()
    cpu_start = _cpu_seconds(proc)
    rss_peak = proc.memory_info().rss
    first = time.perf_counter()
    sender = threading.Thread(target=publisher.send, args=(chunks,), daemon=True)
    sender.start()
    stored, last_change, last = 0, first, first
    while stored < count:
        time.sleep(POLL_S)
        now = time.perf_counter()
        rss_peak = max(rss_peak, proc.memory_info().rss)
        seen = stored_count(vm)
        if seen != stored:
            stored, last_change = seen, now
        last = now
        if process.poll() is not None:
            raise RuntimeError(f"{subject} exited during the flood:\n{_log_tail(workdir)}")
        if now - last_change > STALL_S:
            last = last_change
            break
    cpu = _cpu_seconds(proc) - cpu_start
    own_end = _own_cpu(processes)
    waited_end = _run_delay(processes)
    profiling.__exit__(None, None, None)
    sender.join(60)
    wall = max(last - first, 1e-9)
    spent = {label: own_end[label] - own_start[label] for label in own_end if label in own_start}
    spent["publisher"] = publisher.cpu_s
    expected_sum = count * (count - 1) / 2
    total = stored_sum(vm)
    result = Result(
        subject=subject,
        qos=qos,
        rate=min(stored, count) / (last - first),
        cpu_ms_per_1000=1000.0 * cpu / max(stored, 1) * 1000.0,
        rss_peak_mb=rss_peak / 2**20,
        lost=max(0, count - stored),
        repeated=max(0, stored - count),
        exact=stored == count and abs(total - expected_sum) < 0.5,
        cpu_per_100k={k: v / max(stored, 1) * 100_000 for k, v in spent.items()},
        cores={k: v / wall for k, v in spent.items()},
        waiting={k: (waited_end[k] - waited_start.get(k, 0.0)) / wall for k in waited_end},
    )
    print(
        f"  {subject:>24} QoS {qos}: {result.rate:>9,.0f} msgs/s, "
        f"{result.cpu_ms_per_1000:6.1f} ms CPU/1000 msgs, RSS {result.rss_peak_mb:5.0f} MB, "
        f"lost {result.lost}, repeated {result.repeated} (at-least-once), "
        f"{'each point once' if result.exact else 'NOT each point once'}",
        file=sys.stderr,
    )
    print(
        "    CPU s per 100k msgs (cores busy): "
        + ", ".join(
            f"{k} {result.cpu_per_100k[k]:.2f} ({result.cores[k]:.2f})" for k in result.cores
        ),
        file=sys.stderr,
    )
    print(
        "    threads waiting for a CPU (average over the flood): "
        + ", ".join(f"{k} {v:.2f}" for k, v in result.waiting.items()),
        file=sys.stderr,
    )
    return result


@contextmanager
def servers(workdir: Path) -> Iterator[tuple[Any, Any]]:
    from simulators.external import Mosquitto, VictoriaMetrics

    with ExitStack() as stack:
        broker = stack.enter_context(Mosquitto(workdir / "mosquitto"))
        vm = stack.enter_context(VictoriaMetrics(workdir / "vm"))
        yield broker, vm


def run_service(workdir: Path, qos: int, variant: Variant, count: int = MESSAGES) -> Result:
    """One round of ``circman5 run`` (configured by ``variant``)."""
    from simulators.external import free_port

    with servers(workdir) as (broker, vm):
        config = workdir / "edge.toml"
        config.write_text(
            service_toml(broker.port, vm.url, free_port(), free_port(), qos, variant.connector_toml)
        )
        env = dict(os.environ, CIRCMAN5_DATA_DIR=str(workdir / "data"))
        env.pop("CIRCMAN5_CONFIG_DIR", None)
        if variant.source:
            env["PYTHONPATH"] = os.pathsep.join(filter(None, [variant.source, str(_ROOT)]))
        command = [*_circman5_command(), "run", "--config", str(config)]
        with _subject(workdir, command, env) as process:
            return flood(variant.label, qos, broker.port, vm, process, workdir, count, broker)


def run_bare(workdir: Path, qos: int, count: int = MESSAGES) -> Result:
    """One round of the bare-library script."""
    with servers(workdir) as (broker, vm):
        command = [sys.executable, "-c", _BARE, str(broker.port), vm.url, str(qos)]
        command.append(str(BARE_BATCH))
        with _subject(workdir, command, dict(os.environ)) as process:
            return flood("bare script", qos, broker.port, vm, process, workdir, count, broker)


# -- the table ------------------------------------------------------------------------------------


def _best(results: list[Result]) -> Result:
    return max(results, key=lambda r: r.rate)


def rows_for(qos: int, variant: Variant, service: list[Result], bare: list[Result]) -> list[Row]:
    best, base = _best(service), _best(bare)
    prefix = f"QoS {qos}, {variant.label}"
    return [
        Row(
            f"{prefix}: stored msgs/s (first publish -> last point stored)",
            best.rate,
            "msgs/s",
            variant.ratio * base.rate,
            baseline=base.rate,
            baseline_label="bare script",
        ),
        Row(
            "  CPU per 1,000 messages (user + sys)",
            min(r.cpu_ms_per_1000 for r in service),
            "ms",
            None,
            higher_is_better=False,
            baseline=min(r.cpu_ms_per_1000 for r in bare),
            baseline_label="bare script",
        ),
        Row(
            "  peak RSS",
            max(r.rss_peak_mb for r in service),
            "MB",
            None,
            higher_is_better=False,
            baseline=max(r.rss_peak_mb for r in bare),
            baseline_label="bare script",
        ),
        Row(
            f"  points lost of {MESSAGES:,} (counted in the server, worst round)",
            max(r.lost for r in service),
            "points",
            0,
            higher_is_better=False,
            baseline=max(r.lost for r in bare),
            baseline_label="bare script",
        ),
        *(
            Row(
                f"  CPU s per 100k msgs: {label} (best round)",
                seconds,
                "s",
                None,
                higher_is_better=False,
                baseline=base.cpu_per_100k.get(label),
                baseline_label="bare script",
            )
            for label, seconds in best.cpu_per_100k.items()
        ),
    ]


def chosen_variants() -> list[Variant]:
    """:data:`VARIANTS`, or those named in ``BENCH_PIPELINE_VARIANTS`` (labels, comma-separated);
    ``BENCH_PIPELINE_BEFORE=<src dir>`` adds each again run from that source tree (e.g. ``git
    archive main src | tar -x -C /tmp/before``, then ``/tmp/before/src``): before and after in
    the same run."""
    names = os.environ.get("BENCH_PIPELINE_VARIANTS", "")
    chosen = [v for v in VARIANTS if not names or v.label in names.split(",")]
    before = os.environ.get("BENCH_PIPELINE_BEFORE", "")
    if before:
        chosen += [
            Variant(f"{v.label} (before)", v.connector_toml, v.ratio, source=before) for v in chosen
        ]
    return chosen


def run_all(workdir: Path, variants: list[Variant] | None = None) -> list[Row]:
    variants = chosen_variants() if variants is None else variants
    print(
        f"pipeline: {MESSAGES:,} messages per round, {ROUNDS} round(s) each, "
        f"{os.cpu_count()} CPU(s)",
        file=sys.stderr,
    )
    rows: list[Row] = []
    for qos in QOS_LEVELS:
        bare: list[Result] = []
        service: dict[str, list[Result]] = {v.label: [] for v in variants}
        for round_ in range(ROUNDS):
            bare.append(run_bare(workdir / f"bare-q{qos}-{round_}", qos))
            for index, variant in enumerate(variants):
                where = workdir / f"service{index}-q{qos}-{round_}"
                service[variant.label].append(run_service(where, qos, variant))
        for variant in variants:
            rows += rows_for(qos, variant, service[variant.label], bare)
        for label, single in (
            ("2 workers", "one process"),
            ("2 workers 3.1.1", "one process"),
            ("2 workers (before)", "one process (before)"),
            ("2 workers 3.1.1 (before)", "one process (before)"),
            ("one process", "one process (before)"),
        ):
            if not (service.get(single) and service.get(label)):
                continue
            one, two = _best(service[single]), _best(service[label])
            target = WORKERS_SPEEDUP * one.rate if "workers" in label else None
            rows.append(
                Row(
                    f"QoS {qos}, {label} against {single}: stored msgs/s",
                    two.rate,
                    "msgs/s",
                    target,
                    baseline=one.rate,
                    baseline_label=single,
                )
            )
    return rows


Runner = Callable[[Path], list[Row]]


def main() -> list[Row]:
    tmp = tempfile.mkdtemp(prefix="circman5-bench-pipeline-")
    try:
        return run_all(Path(tmp))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
