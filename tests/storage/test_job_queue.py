"""The PostgreSQL job queue: shared by worker processes, each job done once, a kill -9'd
worker's job retried by the next, failures retried then given up."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from circman5.storage.jobs import Job, JobQueue, JobWorker
from circman5.storage.postgres import PostgresDatabase
from simulators.external import wait_until

ROOT = Path(__file__).resolve().parents[2]


class Workers:
    """Worker processes started by a test, stopped (or already killed) at its end."""

    def __init__(self, dsn: str, log: Path) -> None:
        self.dsn = dsn
        self.log = log
        self.processes: dict[str, subprocess.Popen[str]] = {}

    def start(self, worker_id: str, lease_s: float = 30.0) -> subprocess.Popen[str]:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tests.fixtures.job_worker",
                self.dsn,
                worker_id,
                str(lease_s),
                str(self.log),
            ],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            text=True,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
        )
        assert process.stdout is not None
        assert process.stdout.readline().strip() == "ready"
        self.processes[worker_id] = process
        return process

    def kill(self, worker_id: str) -> None:
        process = self.processes[worker_id]
        process.kill()  # SIGKILL: no chance to release anything
        process.wait(timeout=30)

    def runs(self) -> list[tuple[str, int, str]]:
        if not self.log.exists():
            return []
        return [
            (kind, int(n), worker)
            for kind, n, worker in (line.split() for line in self.log.read_text().splitlines())
        ]

    def stop_all(self) -> None:
        for process in self.processes.values():
            if process.poll() is None:
                process.terminate()
        for process in self.processes.values():
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
            if process.stdout is not None:
                process.stdout.close()


@pytest.fixture
def database(postgres_dsn: str) -> Iterator[PostgresDatabase]:
    with PostgresDatabase(postgres_dsn) as db:
        yield db


@pytest.fixture
def queue(database: PostgresDatabase) -> JobQueue:
    return JobQueue(database)


@pytest.fixture
def workers(postgres_dsn: str, tmp_path: Path) -> Iterator[Workers]:
    started = Workers(postgres_dsn, tmp_path / "runs.log")
    yield started
    started.stop_all()


def _job(queue: JobQueue, job_id: int) -> Job:
    job = queue.get(job_id)
    assert job is not None
    return job


def _wait_status(queue: JobQueue, job_ids: list[int], status: str, timeout: float = 60) -> None:
    wait_until(
        lambda: all(_job(queue, j).status == status for j in job_ids),
        timeout,
        f"jobs {job_ids} to be {status}",
    )


def test_two_workers_share_the_queue_and_do_every_job_once(
    queue: JobQueue, workers: Workers, tmp_path: Path
) -> None:
    workers.start("a")
    workers.start("b")
    release = tmp_path / "release"
    held = [queue.submit("hold", {"n": n, "release": str(release)}) for n in range(2)]
    # each worker runs one job at a time: both running means each took one
    _wait_status(queue, held, "running")
    assert {_job(queue, j).worker for j in held} == {"a", "b"}
    squares = [queue.submit("square", {"n": n}) for n in range(40)]
    release.touch()
    _wait_status(queue, held + squares, "done")
    for n, job_id in enumerate(squares):
        job = _job(queue, job_id)
        assert job.result["square"] == n * n
        assert job.attempts == 1
        assert job.result["worker"] == job.worker
    runs = workers.runs()
    assert sorted(n for kind, n, _ in runs if kind == "square") == list(range(40))  # once each
    assert sorted(n for kind, n, _ in runs if kind == "hold") == [0, 1]


def test_the_job_of_a_killed_worker_is_finished_by_the_next(
    queue: JobQueue, workers: Workers, tmp_path: Path
) -> None:
    workers.start("doomed", lease_s=1.0)
    release = tmp_path / "release"
    job_id = queue.submit("hold", {"n": 7, "release": str(release)})
    _wait_status(queue, [job_id], "running")
    assert _job(queue, job_id).worker == "doomed"
    # "running" is committed when the job is claimed, a moment before its handler starts
    wait_until(lambda: workers.runs() == [("hold", 7, "doomed")], 30, "the handler to start")
    workers.kill("doomed")  # mid-job, kill -9
    release.touch()
    workers.start("next", lease_s=1.0)
    _wait_status(queue, [job_id], "done")
    job = _job(queue, job_id)
    assert job.worker == "next"
    assert job.result == {"worker": "next"}
    assert job.attempts == 2
    assert workers.runs() == [("hold", 7, "doomed"), ("hold", 7, "next")]


def test_a_failing_handler_is_retried_then_failed(queue: JobQueue) -> None:
    calls: list[int] = []

    def broken(payload: dict[str, int]) -> None:
        calls.append(payload["n"])
        raise ValueError("bad input")

    worker = JobWorker(queue, {"broken": broken}, worker_id="w", lease_s=5)
    job_id = queue.submit("broken", {"n": 1}, max_attempts=2)
    assert worker.run_once()
    assert _job(queue, job_id).status == "queued"
    assert worker.run_once()
    job = _job(queue, job_id)
    assert (job.status, job.attempts) == ("failed", 2)
    assert job.error == "ValueError: bad input"
    assert not worker.run_once()  # nothing left to claim
    assert calls == [1, 1]
    assert worker.failed == 2


def test_a_worker_that_lost_its_lease_cannot_record_a_result(queue: JobQueue) -> None:
    job_id = queue.submit("square", {"n": 3})
    first = queue.claim("slow", lease_s=0.05, kinds=None)
    assert first is not None and first[0] == job_id
    # the lease runs out; another worker takes the job over
    wait_until(lambda: queue.claim("fast", 30, None) is not None, 30, "the lease to expire")
    assert not queue.complete(job_id, "slow", {"square": 9})
    assert not queue.heartbeat(job_id, "slow", 30)
    assert queue.complete(job_id, "fast", {"square": 9})
    job = _job(queue, job_id)
    assert (job.status, job.worker, job.attempts, job.result) == ("done", "fast", 2, {"square": 9})


def test_a_job_whose_last_attempt_expired_is_failed(queue: JobQueue) -> None:
    job_id = queue.submit("square", {"n": 2}, max_attempts=1)
    assert queue.claim("gone", lease_s=0.05) is not None
    wait_until(
        lambda: queue.claim("other", 30) is None and _job(queue, job_id).status == "failed",
        30,
        "the expired last attempt to be failed",
    )
    assert "lease expired" in (_job(queue, job_id).error or "")
