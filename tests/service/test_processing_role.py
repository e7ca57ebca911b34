"""``circman5 run --role processing``: worker processes on the PostgreSQL job queue compute
stored scenarios and write the runs back; a worker killed mid-job leaves it to the next."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from circman5.errors import ConfigError
from circman5.manufacturing.digital_twin.simulation.calibration import (
    calibrate,
    save_calibration,
)
from circman5.manufacturing.digital_twin.simulation.known_history import generate_history
from circman5.manufacturing.digital_twin.simulation.scenario_manager import ScenarioManager
from circman5.service.processing import ProcessingWorker
from circman5.settings import load_settings
from circman5.storage.jobs import Job, JobQueue
from circman5.storage.postgres import PostgresDatabase
from simulators.external import PostgreSQL, wait_until

ROOT = Path(__file__).resolve().parents[2]


class Workers:
    def __init__(self, config: Path, data: Path) -> None:
        self.config = config
        self.env = {**os.environ, "CIRCMAN5_DATA_DIR": str(data), "PYTHONPATH": str(ROOT)}
        self.processes: list[subprocess.Popen[bytes]] = []

    def start(self) -> subprocess.Popen[bytes]:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "circman5",
                "run",
                "--role",
                "processing",
                "--config",
                str(self.config),
            ],
            env=self.env,
            cwd=ROOT,
        )
        self.processes.append(process)
        return process

    def close(self) -> list[int]:
        codes = []
        for process in self.processes:
            if process.poll() is None:
                process.terminate()
            codes.append(process.wait(timeout=60))
        return codes


@pytest.fixture
def database(postgres_dsn: str) -> Iterator[PostgresDatabase]:
    with PostgresDatabase(postgres_dsn) as db:
        yield db


@pytest.fixture
def config(postgres_dsn: str, tmp_path: Path) -> Path:
    path = tmp_path / "processing.toml"
    path.write_text(f'[database]\nurl = "{postgres_dsn}"\njob_lease_s = 1.5\n')
    return path


def waiting_on(database: PostgresDatabase, table: str) -> bool:
    """Whether another session waits for a lock in a statement naming ``table``."""
    with database.transaction() as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
            "AND query ILIKE %s AND pid <> pg_backend_pid()",
            (f"%{table}%",),
        ).fetchone()
    return row is not None and int(row[0]) > 0


def _job(queue: JobQueue, job_id: int) -> Job:
    job = queue.get(job_id)
    assert job is not None
    return job


def test_a_worker_runs_a_stored_scenario_and_writes_the_run_back(
    database: PostgresDatabase, config: Path, tmp_path: Path, postgresql_server: PostgreSQL
) -> None:
    ScenarioManager(store=database.scenarios).create_scenario(
        "warm", {"production_line.target_temperature": 26.0}
    )
    queue = JobQueue(database)
    job_id = queue.submit("scenario.run", {"scenario": "warm", "steps": 40, "seed": 5})
    workers = Workers(config, tmp_path / "data")
    workers.start()
    try:
        wait_until(lambda: _job(queue, job_id).status == "done", 120, "the job to be done")
    finally:
        assert workers.close() == [0]  # SIGTERM: a clean stop
    result = _job(queue, job_id).result
    assert (result["scenario"], result["steps"], result["seed"]) == ("warm", 40, 5)
    stored = ScenarioManager(store=database.scenarios).get_simulation(result["simulation_id"])
    assert stored["results"]["kpis"] == result["kpis"]
    name = database.url.rsplit("/", 1)[1]
    assert postgresql_server.psql("SELECT count(*) FROM simulations", name) == "1"


def test_a_job_of_a_killed_worker_is_finished_by_the_next(
    database: PostgresDatabase, config: Path, tmp_path: Path
) -> None:
    ScenarioManager(store=database.scenarios).create_scenario("long", {})
    queue = JobQueue(database)
    job_id = queue.submit("scenario.run", {"scenario": "long", "steps": 20_000, "seed": 1})
    workers = Workers(config, tmp_path / "data")
    try:
        # the first worker is held mid-job by a lock on simulations (it computes the run, then
        # waits to store it), so however fast the machine, it is killed before it finishes
        with psycopg.connect(database.url) as holder:
            holder.execute("LOCK TABLE simulations IN EXCLUSIVE MODE")
            first = workers.start()
            wait_until(lambda: _job(queue, job_id).status == "running", 120, "the job to start")
            taken_by = _job(queue, job_id).worker
            wait_until(lambda: waiting_on(database, "simulations"), 120, "the run computed")
            first.kill()  # kill -9 mid-job
            first.wait(timeout=30)
            holder.rollback()
        workers.start()
        wait_until(lambda: _job(queue, job_id).status == "done", 300, "the retry to finish")
    finally:
        workers.close()
    job = _job(queue, job_id)
    assert job.attempts == 2
    assert job.worker != taken_by
    assert job.result["steps"] == 20_000
    runs = ScenarioManager(store=database.scenarios).list_simulations()
    assert [r["id"] for r in runs] == [job.result["simulation_id"]]


def test_the_processing_role_needs_postgresql(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"database\.url"):
        ProcessingWorker(load_settings(), "edge.toml")


def test_the_processing_role_needs_three_connections(tmp_path: Path) -> None:
    config = tmp_path / "processing.toml"
    config.write_text('[database]\nurl = "postgresql://w@db:5432/c"\nmax_connections = 2\n')
    with pytest.raises(ConfigError, match=r"database\.max_connections.*at least 3"):
        ProcessingWorker(load_settings(config), str(config))


def test_the_worker_simulates_with_the_databases_active_calibration(
    database: PostgresDatabase, config: Path, tmp_path: Path
) -> None:
    history = generate_history(
        {"temperature_regulation": 0.04, "ambient_temperature": 21.0},
        segments=6,
        segment_steps=120,
        seed=3,
    )
    saved = save_calibration(calibrate(history), store=database.calibrations)
    ScenarioManager(store=database.scenarios).create_scenario("calibrated", {})
    queue = JobQueue(database)
    job_id = queue.submit("scenario.run", {"scenario": "calibrated", "steps": 10, "seed": 2})
    workers = Workers(config, tmp_path / "data")
    workers.start()
    try:
        wait_until(lambda: _job(queue, job_id).status == "done", 120, "the job to be done")
    finally:
        assert workers.close() == [0]
    run = ScenarioManager(store=database.scenarios).get_simulation(
        _job(queue, job_id).result["simulation_id"]
    )
    assert run["results"]["parameter_set"] == saved.label
