"""``/api/jobs``: the API queues simulations in PostgreSQL, a real processing worker process
(``circman5 run --role processing``) computes them, and the API shows the results, the scenario
run also under ``/api/simulations``. Without a database the routes say what is missing."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings

from circman5.api.app import create_app
from circman5.api.context import ApiContext
from circman5.api.schemas import JOB_KINDS
from circman5.api.users import UserStore
from circman5.manufacturing.digital_twin.simulation.scenario_manager import ScenarioManager
from circman5.service.processing import JOB_KINDS as WORKER_KINDS
from circman5.storage.jobs import JobQueue
from circman5.storage.postgres import PostgresDatabase
from simulators.external import wait_until
from tests.api.test_fuzz import MAX_EXAMPLES, no_crash
from tests.service.test_processing_role import Workers


@pytest.fixture
def database(postgres_dsn: str) -> Iterator[PostgresDatabase]:
    with PostgresDatabase(postgres_dsn) as db:
        yield db


@pytest.fixture
def queued_client(
    make_context: Callable[..., ApiContext], database: PostgresDatabase
) -> Iterator[TestClient]:
    context = make_context(
        jobs=JobQueue(database), scenarios=ScenarioManager(store=database.scenarios)
    )
    with TestClient(create_app(context)) as client:
        yield client


def _job(client: TestClient, headers: dict[str, str], job_id: int) -> dict[str, Any]:
    response = client.get(f"/api/jobs/{job_id}", headers=headers)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def test_every_kind_the_api_queues_is_one_a_worker_runs() -> None:
    assert set(JOB_KINDS) == set(WORKER_KINDS)


def test_without_a_database_the_queue_routes_name_the_setting(
    client: TestClient, auth: Callable[[str], dict[str, str]]
) -> None:
    body = {"kind": "scenario.run", "payload": {"scenario": "any"}}
    for response in (
        client.post("/api/jobs", json=body, headers=auth("engineer")),
        client.get("/api/jobs", headers=auth("viewer")),
        client.get("/api/jobs/1", headers=auth("viewer")),
    ):
        assert response.status_code == 503
        assert "[database] url" in response.json()["detail"]


def test_a_worker_computes_what_the_api_queued_and_the_api_shows_it(
    queued_client: TestClient,
    auth: Callable[[str], dict[str, str]],
    database: PostgresDatabase,
    postgres_dsn: str,
    tmp_path: Path,
) -> None:
    engineer = auth("engineer")
    viewer = auth("viewer")
    created = queued_client.post(
        "/api/scenarios",
        json={"name": "warm", "parameters": {"production_line.target_temperature": 26.0}},
        headers=engineer,
    )
    assert created.status_code == 201, created.text
    submitted = queued_client.post(
        "/api/jobs",
        json={"kind": "scenario.run", "payload": {"scenario": "warm", "steps": 30, "seed": 7}},
        headers=engineer,
    )
    assert submitted.status_code == 202, submitted.text
    scenario_job = submitted.json()["job_id"]
    assert submitted.json() == {"job_id": scenario_job, "kind": "scenario.run", "status": "queued"}
    carlo = queued_client.post(
        "/api/jobs",
        json={
            "kind": "simulation.monte_carlo",
            "payload": {"steps": 5, "iterations": 20, "seed": 3},
        },
        headers=engineer,
    )
    assert carlo.status_code == 202, carlo.text
    carlo_job = carlo.json()["job_id"]
    # nothing runs them yet: both wait in the queue
    assert _job(queued_client, viewer, scenario_job)["status"] == "queued"

    config = tmp_path / "processing.toml"
    config.write_text(f'[database]\nurl = "{postgres_dsn}"\n')
    workers = Workers(config, tmp_path / "worker-data")
    workers.start()
    try:
        # generous: a loaded 2-core machine starts the worker's interpreter slowly
        wait_until(
            lambda: all(
                _job(queued_client, viewer, j)["status"] == "done"
                for j in (scenario_job, carlo_job)
            ),
            180,
            "both jobs done by the worker",
        )
    finally:
        assert workers.close() == [0]

    job = _job(queued_client, viewer, scenario_job)
    assert job["kind"] == "scenario.run" and job["attempts"] == 1
    assert job["payload"] == {"scenario": "warm", "steps": 30, "seed": 7}
    result = job["result"]
    assert (result["scenario"], result["steps"], result["seed"]) == ("warm", 30, 7)
    run = queued_client.get(f"/api/simulations/{result['simulation_id']}", headers=viewer)
    assert run.status_code == 200, run.text
    assert run.json()["results"]["kpis"] == result["kpis"]
    assert run.json()["parameters"] == {"production_line.target_temperature": 26.0}
    listed = queued_client.get("/api/simulations", headers=viewer).json()
    assert [r["id"] for r in listed] == [result["simulation_id"]]

    summary = _job(queued_client, viewer, carlo_job)["result"]
    assert (summary["steps"], summary["iterations"]) == (5, 20)
    assert len(summary["paths"]["production_line.temperature"]["p50"]) == 6

    recent = queued_client.get("/api/jobs", headers=viewer).json()
    assert [j["id"] for j in recent] == [carlo_job, scenario_job]
    only = queued_client.get("/api/jobs?kind=scenario.run", headers=viewer).json()
    assert [j["id"] for j in only] == [scenario_job]


def test_bad_jobs_are_refused_at_the_door_and_nothing_is_queued(
    queued_client: TestClient,
    auth: Callable[[str], dict[str, str]],
    database: PostgresDatabase,
) -> None:
    engineer = auth("engineer")
    unknown = queued_client.post(
        "/api/jobs",
        json={"kind": "scenario.run", "payload": {"scenario": "nope"}},
        headers=engineer,
    )
    assert unknown.status_code == 404
    assert "nope" in unknown.json()["detail"]
    for body in (
        {"kind": "optimize.everything", "payload": {}},
        {"kind": "scenario.run", "payload": {"scenario": "x", "steps": -1}},
        {"kind": "scenario.run", "payload": {"scenario": "x", "site": "plant"}},
        {"kind": "simulation.monte_carlo", "payload": {"steps": 10_000, "iterations": 5000}},
    ):
        response = queued_client.post("/api/jobs", json=body, headers=engineer)
        assert response.status_code == 422, (body, response.text)
    assert queued_client.get("/api/jobs/12345", headers=auth("viewer")).status_code == 404
    wrong_kind = queued_client.get("/api/jobs?kind=nope", headers=auth("viewer"))
    assert wrong_kind.status_code == 422
    assert JobQueue(database).recent() == []


def test_a_line_start_needs_the_site_view_and_the_users_site(
    make_context: Callable[..., ApiContext],
    users: UserStore,
    database: PostgresDatabase,
    auth: Callable[[str], dict[str, str]],
    token_of: Callable[[str], str],
) -> None:
    manager = ScenarioManager(store=database.scenarios)
    manager.create_scenario("base", {})
    users.add("north", "north-password", "engineer", sites=["north"])
    context = make_context(jobs=JobQueue(database), scenarios=manager)
    body = {
        "kind": "scenario.run",
        "payload": {"scenario": "base", "site": "south", "line": "line2"},
    }
    with TestClient(create_app(context)) as client:
        no_view = client.post("/api/jobs", json=body, headers=auth("engineer"))
        assert no_view.status_code == 503
        assert "[site_view]" in no_view.json()["detail"]
        token, _ = context.tokens.issue("north", "engineer")
        other_site = client.post(
            "/api/jobs", json=body, headers={"Authorization": f"Bearer {token}"}
        )
        assert other_site.status_code == 403
    assert JobQueue(database).recent() == []


@pytest.mark.parametrize("mode", ["positive", "negative"])
@pytest.mark.parametrize(
    ("method", "path"), [("POST", "/api/jobs"), ("GET", "/api/jobs"), ("GET", "/api/jobs/{job_id}")]
)
def test_generated_requests_never_crash_the_jobs_routes_on_a_real_queue(
    method: str,
    path: str,
    mode: str,
    make_context: Callable[..., ApiContext],
    database: PostgresDatabase,
    token_of: Callable[[str], str],
) -> None:
    """The fuzzing of tests/api/test_fuzz.py, with a PostgreSQL queue behind the routes (there
    they answer 503 before any handler code runs)."""
    manager = ScenarioManager(store=database.scenarios)
    manager.create_scenario("s", {})
    app = create_app(make_context(jobs=JobQueue(database), scenarios=manager))
    operation = schemathesis.openapi.from_asgi("/openapi.json", app)[path][method]
    headers = {"Authorization": f"Bearer {token_of('admin')}"}
    statuses: list[int] = []

    @given(case=operation.as_strategy(generation_mode=schemathesis.GenerationMode(mode)))
    @settings(
        max_examples=MAX_EXAMPLES,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        derandomize=True,
        database=None,
    )
    def fuzz(case: Any) -> None:
        response = case.call(headers=headers)
        no_crash(response)
        statuses.append(response.status_code)

    fuzz()
    assert statuses, "no request was generated"
