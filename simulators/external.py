"""Real third-party servers (mosquitto, VictoriaMetrics, InfluxDB 1.x) run as child processes.

Used by the test fixtures, the benchmarks and the demo. Each server gets a free loopback port and
its own temporary directory, and can be stopped, killed and restarted on the same port.
A missing binary raises :class:`ServerBinaryMissing` naming the Debian package to install.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Self


class ServerBinaryMissing(RuntimeError):
    """The server's binary is not installed."""

    def __init__(self, binary: str, package: str) -> None:
        super().__init__(
            f"'{binary}' not found: install the Debian package '{package}' "
            f"(apt-get install -y {package}); 'make test' does this for you"
        )
        self.binary = binary
        self.package = package


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def find_binary(name: str, package: str, extra_dirs: tuple[str, ...] = ("/usr/sbin",)) -> str:
    found = shutil.which(name)
    if found:
        return found
    for directory in extra_dirs:
        candidate = Path(directory) / name
        if candidate.exists():
            return str(candidate)
    raise ServerBinaryMissing(name, package)


def wait_until(
    condition: Callable[[], bool], timeout: float, what: str, interval: float = 0.05
) -> None:
    """Poll ``condition`` until it is true or ``timeout`` seconds pass (then TimeoutError)."""
    deadline = time.monotonic() + timeout
    while True:
        with contextlib.suppress(Exception):
            if condition():
                return
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:.1f}s waiting for {what}")
        time.sleep(interval)


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.2)
        return sock.connect_ex((host, port)) == 0


def http_status(url: str, timeout: float = 1.0) -> int:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return int(response.status)
    except urllib.error.HTTPError as err:
        return int(err.code)


class ServerProcess:
    """A child process with a readiness check; start/stop/kill/restart keep the same port."""

    name = "server"

    def __init__(self, workdir: Path, port: int | None = None, ready_timeout: float = 20.0) -> None:
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.port = port or free_port()
        self.ready_timeout = ready_timeout
        self.process: subprocess.Popen[bytes] | None = None
        self.killed_on_stop = 0
        self.log_path = self.workdir / f"{self.name}.log"

    # subclasses fill these in
    def command(self) -> list[str]:
        raise NotImplementedError

    def is_ready(self) -> bool:
        return port_open(self.port)

    def start(self) -> Self:
        if self.running:
            return self
        log = self.log_path.open("ab")
        # its own session: a Ctrl-C in the terminal (SIGINT to the foreground process group)
        # reaches only our process, which stops the server itself, after what depends on it
        self.process = subprocess.Popen(
            self.command(),
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=self.workdir,
            start_new_session=True,
        )
        log.close()
        try:
            wait_until(self._ready_or_dead, self.ready_timeout, f"{self.name} on port {self.port}")
        except TimeoutError:
            self.stop()
            raise
        if not self.running:
            raise RuntimeError(f"{self.name} exited at start; log:\n{self.log_tail()}")
        return self

    def _ready_or_dead(self) -> bool:
        return not self.running or self.is_ready()

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self, timeout: float = 30.0) -> None:
        """Graceful stop (SIGTERM, then SIGKILL after ``timeout``).

        A server that needed the SIGKILL may have lost what it had acknowledged but not yet
        written (VictoriaMetrics keeps recent rows in memory for seconds): ``killed_on_stop``
        counts those stops, so a test of zero loss can tell the server's loss from ours."""
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.killed_on_stop += 1
                self.process.kill()
                self.process.wait()
        self.process = None
        wait_until(lambda: not port_open(self.port), 10.0, f"{self.name} port {self.port} to close")

    def kill(self) -> None:
        """Crash the server (SIGKILL)."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        self.process = None

    def restart(self) -> Self:
        self.stop()
        return self.start()

    def log_tail(self, lines: int = 30) -> str:
        if not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class Mosquitto(ServerProcess):
    """mosquitto (Debian ``mosquitto``) on loopback, anonymous, with on-disk persistence."""

    name = "mosquitto"

    def __init__(self, workdir: Path, port: int | None = None, extra_config: str = "") -> None:
        super().__init__(workdir, port)
        self.extra_config = extra_config
        self.binary = find_binary("mosquitto", "mosquitto")

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"

    def command(self) -> list[str]:
        conf = self.workdir / "mosquitto.conf"
        persistence = self.workdir / "persistence"
        persistence.mkdir(exist_ok=True)
        # run as root, mosquitto drops to the 'mosquitto' user, who cannot write our private
        # directory: 'user root' keeps it as the user that started it (ignored when not root)
        run_as = "user root\n" if os.geteuid() == 0 else ""
        conf.write_text(
            run_as + f"listener {self.port} 127.0.0.1\n"
            "allow_anonymous true\n"
            "persistence true\n"
            f"persistence_location {persistence}/\n"
            "autosave_interval 1\n"
            "max_queued_messages 1000000\n"
            "max_inflight_messages 0\n"
            "log_type error\nlog_type warning\n"
            f"{self.extra_config}\n"
        )
        return [self.binary, "-c", str(conf)]


class VictoriaMetrics(ServerProcess):
    """VictoriaMetrics (Debian ``victoria-metrics``): InfluxDB line protocol on /api/v2/write."""

    name = "victoria-metrics"

    def __init__(self, workdir: Path, port: int | None = None) -> None:
        super().__init__(workdir, port)
        self.binary = find_binary("victoria-metrics", "victoria-metrics")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def command(self) -> list[str]:
        return [
            self.binary,
            f"-httpListenAddr=127.0.0.1:{self.port}",
            f"-storageDataPath={self.workdir / 'data'}",
            "-retentionPeriod=100y",
            "-search.latencyOffset=0s",
            "-search.disableCache",
            "-loggerLevel=ERROR",
        ]

    def is_ready(self) -> bool:
        return http_status(f"{self.url}/health") == 200

    def force_flush(self) -> None:
        """Make every accepted sample visible to queries."""
        urllib.request.urlopen(f"{self.url}/internal/force_flush", timeout=10).close()


class InfluxDB1(ServerProcess):
    """InfluxDB 1.x (Debian ``influxdb``) with its /write and /query endpoints."""

    name = "influxdb"

    def __init__(self, workdir: Path, port: int | None = None, auth: bool = False) -> None:
        super().__init__(workdir, port, ready_timeout=30.0)
        self.binary = find_binary("influxd", "influxdb")
        self.rpc_port = free_port()
        self.auth = auth

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def command(self) -> list[str]:
        conf = self.workdir / "influxdb.conf"
        conf.write_text(
            f'reporting-disabled = true\nbind-address = "127.0.0.1:{self.rpc_port}"\n'
            f'[meta]\n  dir = "{self.workdir / "meta"}"\n'
            f'[data]\n  dir = "{self.workdir / "data"}"\n  wal-dir = "{self.workdir / "wal"}"\n'
            "  query-log-enabled = false\n"
            f'[http]\n  bind-address = "127.0.0.1:{self.port}"\n'
            f"  auth-enabled = {'true' if self.auth else 'false'}\n  log-enabled = false\n"
            "[monitor]\n  store-enabled = false\n"
            "[continuous_queries]\n  enabled = false\n"
        )
        return [self.binary, "run", "-config", str(conf)]

    def is_ready(self) -> bool:
        return http_status(f"{self.url}/ping") == 204


def _postgres_binary(name: str) -> str:
    """A PostgreSQL server binary (``initdb``, ``postgres``): Debian keeps them out of PATH."""
    versions = sorted(
        Path("/usr/lib/postgresql").glob(f"*/bin/{name}"),
        key=lambda p: int(p.parts[-3]) if p.parts[-3].isdigit() else 0,
    )
    extra = tuple(str(p.parent) for p in reversed(versions))
    return find_binary(name, "postgresql", extra)


class PostgreSQL(ServerProcess):
    """A private PostgreSQL cluster (Debian ``postgresql``) on loopback with trust auth.

    ``initdb`` makes the cluster in a directory of its own (under the system temp dir, not the
    workdir: the server runs as the ``postgres`` user when we are root, since PostgreSQL refuses
    to run as root, and that user cannot enter pytest's private temp dirs). ``fsync`` is off: a
    crash of the test machine loses the cluster, which is thrown away anyway (unless
    ``durable``). The superuser is
    ``postgres``; ``create_database()`` makes a fresh database and returns its DSN.
    ``durable=True`` keeps PostgreSQL's defaults (fsync, full page writes: benchmarks).
    """

    name = "postgresql"

    def __init__(self, workdir: Path, port: int | None = None, durable: bool = False) -> None:
        super().__init__(workdir, port, ready_timeout=60.0)
        self.durable = durable
        self.initdb = _postgres_binary("initdb")
        self.binary = _postgres_binary("postgres")
        self._run_as: list[str] = []
        if os.geteuid() == 0:
            self._run_as = [
                find_binary("setpriv", "util-linux"),
                "--reuid=postgres",
                "--regid=postgres",
                "--init-groups",
                "--",
            ]
        self.cluster_dir: Path | None = None
        self._databases = 0

    @property
    def url(self) -> str:
        """The DSN of the ``postgres`` database as the superuser."""
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def dsn(self, database: str) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def _make_cluster(self) -> Path:
        import pwd
        import tempfile

        base = Path(tempfile.mkdtemp(prefix="circman5-pg-"))
        if self._run_as:
            user = pwd.getpwnam("postgres")
            os.chown(base, user.pw_uid, user.pw_gid)
        data = base / "data"
        result = subprocess.run(
            [
                *self._run_as,
                self.initdb,
                "-D",
                str(data),
                "-U",
                "postgres",
                "-A",
                "trust",
                "-E",
                "UTF8",
                "--locale=C",
                "--no-sync",
            ],
            capture_output=True,
            check=False,
        )
        if result.returncode != 0:
            raise RuntimeError(
                "initdb failed: " + (result.stderr or result.stdout).decode(errors="replace")
            )
        return base

    def command(self) -> list[str]:
        if self.cluster_dir is None:
            self.cluster_dir = self._make_cluster()
        return [
            *self._run_as,
            self.binary,
            "-D",
            str(self.cluster_dir / "data"),
            "-p",
            str(self.port),
            "-k",
            str(self.cluster_dir),
            "-c",
            "listen_addresses=127.0.0.1",
            "-c",
            "max_connections=200",
            "-c",
            "shared_buffers=128MB",
            *([] if self.durable else ["-c", "fsync=off", "-c", "full_page_writes=off"]),
        ]

    def is_ready(self) -> bool:
        if not port_open(self.port):
            return False
        ready = _postgres_binary("pg_isready")
        return (
            subprocess.run(
                [ready, "-q", "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres"],
                check=False,
            ).returncode
            == 0
        )

    def stop(self, timeout: float = 30.0) -> None:
        """Fast shutdown (SIGINT: disconnects the clients), SIGKILL after ``timeout``."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
        super().stop(timeout)

    def remove(self) -> None:
        """Stop the server and delete the cluster."""
        self.stop()
        if self.cluster_dir is not None:
            shutil.rmtree(self.cluster_dir, ignore_errors=True)
            self.cluster_dir = None

    def psql(self, sql: str, database: str = "postgres") -> str:
        """Run ``sql`` with ``psql`` (the Debian client, not our driver); its output."""
        psql = find_binary("psql", "postgresql-client")
        result = subprocess.run(
            [psql, "-X", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-c", sql, self.dsn(database)],
            capture_output=True,
            check=False,
        )
        if result.returncode != 0:
            raise RuntimeError(f"psql failed: {result.stderr.decode(errors='replace')}")
        return result.stdout.decode().strip()

    def create_database(self, prefix: str = "test") -> str:
        """A new empty database; returns its DSN."""
        self._databases += 1
        name = f"{prefix}_{os.getpid()}_{self._databases}"
        self.psql(f'CREATE DATABASE "{name}"')
        return self.dsn(name)
