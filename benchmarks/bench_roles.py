"""A scenario run off the API box: ``POST /api/jobs`` to a processing worker, against the same
run on the API itself, in the same run.

Everything real: a private PostgreSQL cluster (Debian ``postgresql``), mosquitto (the api role's
site view), one ``circman5 run --role api`` and one ``circman5 run --role processing`` process
(idle, it waits for the submission's ``NOTIFY``). The client (this process) logs in as an engineer.

* Figure: submit to result of a ``scenario.run`` job of ``STEPS`` steps (``POST /api/jobs``,
  then ``GET /api/jobs/{id}`` every 10 ms until ``done``), median of ``N_RUNS`` after a warm-up.
  Target: <= 1,000 ms (the worker's poll interval plus the run and the round trips).
* Baseline (same run): the same scenario run on the API itself (``POST
  /api/scenarios/{name}/run``), which the job spares the API box.
* Throughput: ``N_BURST`` jobs submitted at once, drained by the one worker (jobs/s, no
  target), with the same jobs run one after another on the API as the baseline.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from benchmarks.report import Row
from circman5.api.users import UserStore
from circman5.storage.postgres import PostgresDatabase
from simulators.external import Mosquitto, PostgreSQL, free_port, http_status, wait_until

STEPS = 500
N_RUNS = 20
N_BURST = 40
TARGET_MS = 1000.0
SECRET = "bench-roles-secret-of-forty-characters!!"
ROOT = Path(__file__).resolve().parents[1]


def _start(role: str, config: Path, data: Path, log: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "CIRCMAN5_DATA_DIR": str(data), "PYTHONPATH": str(ROOT)}
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "circman5", "run", "--role", role, "--config", str(config)],
            env=env,
            cwd=ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
        )


def _stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(60)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(30)


class _Client:
    def __init__(self, url: str) -> None:
        self.http = httpx.Client(base_url=url, timeout=120)
        login = self.http.post(
            "/api/auth/login", json={"username": "bench", "password": "bench-password"}
        )
        login.raise_for_status()
        self.http.headers["Authorization"] = f"Bearer {login.json()['access_token']}"

    def submit(self) -> int:
        body = {"kind": "scenario.run", "payload": {"scenario": "bench", "steps": STEPS}}
        response = self.http.post("/api/jobs", json=body)
        response.raise_for_status()
        return int(response.json()["job_id"])

    def status(self, job_id: int) -> str:
        response = self.http.get(f"/api/jobs/{job_id}")
        response.raise_for_status()
        return str(response.json()["status"])

    def job_ms(self) -> float:
        started = time.perf_counter()
        job_id = self.submit()
        while (status := self.status(job_id)) != "done":
            if status == "failed":
                raise RuntimeError(f"job {job_id} failed")
            time.sleep(0.01)
        return (time.perf_counter() - started) * 1000

    def on_api_ms(self) -> float:
        started = time.perf_counter()
        response = self.http.post("/api/scenarios/bench/run", json={"steps": STEPS})
        response.raise_for_status()
        return (time.perf_counter() - started) * 1000

    def burst_rate(self) -> float:
        started = time.perf_counter()
        ids = [self.submit() for _ in range(N_BURST)]
        pending = set(ids)
        while pending:
            pending = {j for j in pending if self.status(j) != "done"}
            time.sleep(0.01)
        return N_BURST / (time.perf_counter() - started)


def _figures(tmp: Path) -> dict[str, Any]:
    postgres = PostgreSQL(tmp / "postgresql").start()
    broker = Mosquitto(tmp / "mosquitto").start()
    processes: list[subprocess.Popen[bytes]] = []
    try:
        dsn = postgres.create_database("roles")
        with PostgresDatabase(dsn) as database:
            UserStore(records=database.users).add("bench", "bench-password", "engineer")
        api_port = free_port()
        api_config = tmp / "api.toml"
        api_config.write_text(
            f'[health]\nport = {free_port()}\n[api]\nport = {api_port}\njwt_secret = "{SECRET}"\n'
            f'[database]\nurl = "{dsn}"\n[site_view]\nport = {broker.port}\n'
        )
        worker_config = tmp / "processing.toml"
        worker_config.write_text(f'[database]\nurl = "{dsn}"\n')
        processes.append(_start("api", api_config, tmp / "api-data", tmp / "api.log"))
        processes.append(_start("processing", worker_config, tmp / "w-data", tmp / "worker.log"))
        url = f"http://127.0.0.1:{api_port}"
        wait_until(lambda: http_status(f"{url}/api/health") == 200, 120, "the api role")
        client = _Client(url)
        created = client.http.post("/api/scenarios", json={"name": "bench", "parameters": {}})
        created.raise_for_status()
        client.job_ms()  # warm-up: the worker's first job loads the simulation
        client.on_api_ms()
        figures = {
            "job_ms": statistics.median(client.job_ms() for _ in range(N_RUNS)),
            "api_ms": statistics.median(client.on_api_ms() for _ in range(N_RUNS)),
            "burst": client.burst_rate(),
        }
        started = time.perf_counter()
        for _ in range(N_BURST):
            client.on_api_ms()
        figures["api_rate"] = N_BURST / (time.perf_counter() - started)
        client.http.close()
        return figures
    finally:
        for process in processes:
            _stop(process)
        broker.stop()
        postgres.remove()


def main() -> list[Row]:
    with tempfile.TemporaryDirectory(prefix="circman5-bench-roles-") as tmp:
        figures = _figures(Path(tmp))
    return [
        Row(
            f"scenario run ({STEPS} steps) as a job: submit to result, 1 processing worker",
            figures["job_ms"],
            "ms",
            TARGET_MS,
            higher_is_better=False,
            baseline=figures["api_ms"],
            baseline_label="the same run on the API itself",
        ),
        Row(
            f"{N_BURST} scenario jobs drained by 1 processing worker",
            figures["burst"],
            "jobs/s",
            None,
            baseline=figures["api_rate"],
            baseline_label="one after another on the API",
        ),
    ]
