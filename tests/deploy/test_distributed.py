"""The distributed deployment end to end, every part a real process: one mosquitto, one
VictoriaMetrics, one PostgreSQL; two lines (two simulators, two ``circman5 run --role edge``);
one ``--role api``; processing workers (``--role processing``).

A scenario submitted through the API for line 2 starts from line 2's state (its MQTT state
topic), is taken by a worker, which is killed with ``kill -9`` mid-job; the next worker started
finishes it, and the run is visible from the API. The API shows both lines' live status and
values from their MQTT topics, and line 2's alarm, which its edge instance wrote to PostgreSQL.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from circman5.api.users import UserStore
from circman5.storage.jobs import Job, JobQueue
from circman5.storage.postgres import PostgresDatabase
from simulators.external import Mosquitto, VictoriaMetrics, free_port, wait_until
from tests.service.service_process import ServiceProcess
from tests.service.test_processing_role import Workers, waiting_on
from tests.service.test_site_lines import (
    STUCK,
    TEMPERATURE,
    _line_config,
    start_line_simulator,
)

SECRET = "distributed-test-secret-of-forty-chars!!"
#: A run of a few seconds' CPU: the first worker is held mid-job by a lock (below), not by
#: the run's length, so a fast machine cannot finish it before the kill.
STEPS = 20_000
#: A killed worker's job is claimable again after this: short, so the retry starts soon.
LEASE_S = 3.0


@pytest.fixture
def database(postgres_dsn: str) -> Iterator[PostgresDatabase]:
    with PostgresDatabase(postgres_dsn) as db:
        yield db


class Api:
    def __init__(self, url: str, username: str, password: str) -> None:
        self.url = url
        login = httpx.post(
            f"{url}/api/auth/login", json={"username": username, "password": password}, timeout=30
        )
        assert login.status_code == 200, login.text
        self.headers = {"Authorization": f"Bearer {login.json()['access_token']}"}

    def get(self, path: str) -> Any:
        response = httpx.get(f"{self.url}{path}", headers=self.headers, timeout=30)
        assert response.status_code == 200, (path, response.text)
        return response.json()

    def post(self, path: str, body: dict[str, Any]) -> httpx.Response:
        return httpx.post(f"{self.url}{path}", json=body, headers=self.headers, timeout=30)


def _job(queue: JobQueue, job_id: int) -> Job:
    job = queue.get(job_id)
    assert job is not None
    return job


def test_two_lines_a_processing_worker_killed_mid_job_and_the_api_on_postgresql(
    tmp_path: Path,
    mosquitto: Mosquitto,
    victoria_metrics: VictoriaMetrics,
    postgres_dsn: str,
    database: PostgresDatabase,
    sim_process_factory,  # type: ignore[no-untyped-def]
) -> None:
    db_section = f'\n[database]\nurl = "{postgres_dsn}"\njob_lease_s = {LEASE_S}\n'
    processes: list[ServiceProcess] = []
    for line in ("line1", "line2"):
        # the edge role serves no API: its api_port is never bound
        ports = start_line_simulator(sim_process_factory, mosquitto, line, free_port())
        config = tmp_path / f"{line}.toml"
        config.write_text(_line_config(line, ports, victoria_metrics, site_view=False) + db_section)
        processes.append(
            ServiceProcess(
                config,
                tmp_path / f"data-{line}",
                tmp_path / f"{line}.log",
                ports.health_port,
                "edge",
            )
        )
    api_port, api_health = free_port(), free_port()
    api_config = tmp_path / "api.toml"
    api_config.write_text(
        f'site = "plant"\nline = "hmi"\n[health]\nport = {api_health}\n'
        f'[api]\nport = {api_port}\njwt_secret = "{SECRET}"\n'
        f'[site_view]\nport = {mosquitto.port}\nkey_values = ["{TEMPERATURE}"]\n' + db_section
    )
    processes.append(
        ServiceProcess(api_config, tmp_path / "data-api", tmp_path / "api.log", api_health, "api")
    )
    UserStore(records=database.users).add("planner", "planner-password", "engineer")
    worker_config = tmp_path / "processing.toml"
    worker_config.write_text(db_section)
    workers = Workers(worker_config, tmp_path / "data-workers")
    queue = JobQueue(database)
    try:
        for process in processes:
            process.start()
        # generous: five Python processes start at once on a loaded 2-core machine
        for process in processes:
            process.wait_ready(180)
        api = Api(f"http://127.0.0.1:{api_port}", "planner", "planner-password")

        # both lines live on the API's site page, from their MQTT topics
        view: dict[str, Any] = {}

        def lines() -> dict[str, Any]:
            body = api.get("/api/site")
            view.clear()
            view.update({ln["line"]: ln for ln in body["sites"][0]["lines"]})
            return view

        wait_until(
            lambda: (
                set(lines()) == {"line1", "line2"}
                and all(ln["online"] for ln in view.values())
                and all(view[ln]["values"].get(TEMPERATURE) == v for ln, v in STUCK.items())
                and view["line2"]["alarms"]
            ),
            120,
            "both lines online with their own temperatures, line 2 with its alarm",
        )
        assert view["line1"]["alarms"] == []
        # line 2's alarm went from its edge instance into PostgreSQL; the API reads it there
        wait_until(
            lambda: any(
                e.get("details", {}).get("parameter") == TEMPERATURE
                for e in api.get("/api/events?category=threshold")
            ),
            120,
            "line 2's threshold event in the API's events (from PostgreSQL)",
        )

        created = api.post("/api/scenarios", {"name": "hotter", "parameters": {}})
        assert created.status_code == 201, created.text
        submitted = api.post(
            "/api/jobs",
            {
                "kind": "scenario.run",
                "payload": {
                    "scenario": "hotter",
                    "steps": STEPS,
                    "seed": 11,
                    "site": "plant",
                    "line": "line2",
                },
            },
        )
        assert submitted.status_code == 202, submitted.text
        job_id = submitted.json()["job_id"]
        # the run starts from line 2's state: its stuck temperature, not line 1's
        payload = _job(queue, job_id).payload
        assert payload["initial_state"]["production_line"]["temperature"] == STUCK["line2"]

        # Hold the first worker mid-job: a transaction of this test locks the simulations table,
        # so the worker computes the run and then waits to store it (PostgreSQL's own locking,
        # no hook in the worker); it is killed while it waits.
        with psycopg.connect(postgres_dsn) as holder:
            holder.execute("LOCK TABLE simulations IN EXCLUSIVE MODE")
            first = workers.start()
            wait_until(
                lambda: _job(queue, job_id).status == "running", 180, "the first worker to take it"
            )
            taken_by = _job(queue, job_id).worker
            assert taken_by is not None and taken_by.endswith(f":{first.pid}")
            assert api.get(f"/api/jobs/{job_id}")["status"] == "running"
            wait_until(lambda: waiting_on(database, "simulations"), 180, "the run computed")
            first.kill()  # kill -9 mid-job: no result, no release of the job
            first.wait(timeout=30)
            holder.rollback()
        assert _job(queue, job_id).status == "running"  # still held by the dead worker's lease
        second = workers.start()
        # generous: the lease runs out, then the whole run is computed again
        wait_until(lambda: api.get(f"/api/jobs/{job_id}")["status"] == "done", 600, "the retry")
        # the run is visible from the API: the job's result and the stored simulation
        result = api.get(f"/api/jobs/{job_id}")["result"]
        assert (result["site"], result["line"], result["steps"]) == ("plant", "line2", STEPS)
        run = api.get(f"/api/simulations/{result['simulation_id']}")
        assert run["results"]["kpis"] == result["kpis"]
        assert run["results"]["scenario"] == "hotter" and run["steps"] == STEPS
        assert [r["id"] for r in api.get("/api/simulations")] == [result["simulation_id"]]
    finally:
        worker_codes = workers.close()
        logs = {p.log.name: p.log_tail() for p in processes}
        codes = [process.stop() for process in processes]
    assert codes == [0, 0, 0], logs
    assert worker_codes[1:] == [0]  # the second stopped cleanly (the first was killed)
    done = _job(queue, job_id)
    assert done.attempts == 2
    assert done.worker is not None and done.worker.endswith(f":{second.pid}")
