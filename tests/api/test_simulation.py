"""Simulation, Monte Carlo and scenarios through the API."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from circman5.api.context import ApiContext
from circman5.manufacturing.digital_twin.core.twin_core import DigitalTwin
from circman5.manufacturing.digital_twin.event_notification.event_manager import (
    EventManager,
    event_manager,
)
from circman5.manufacturing.digital_twin.simulation.scenario_manager import ScenarioManager
from tests.fixtures.databases import TwinBackend

Auth = Callable[[str], dict[str, str]]


@pytest.fixture(autouse=True)
def events(twin_backend: TwinBackend) -> EventManager:
    """The event manager on each backend (SQLite file, PostgreSQL), before the twin starts:
    these tests run twice."""
    return twin_backend.use_for_events(event_manager)


@pytest.fixture
def context(
    make_context: Callable[..., ApiContext], twin_backend: TwinBackend, twin: DigitalTwin
) -> ApiContext:
    return make_context(scenarios=twin_backend.api_scenarios(twin))


def test_simulate_returns_steps_plus_one_states_and_leaves_the_twin(
    client: TestClient, auth: Auth, twin: DigitalTwin
) -> None:
    before = twin.get_current_state()
    response = client.post(
        "/api/simulate",
        json={"steps": 5, "parameters": {"production_line.temperature": 24.0}},
        headers=auth("engineer"),
    )
    assert response.status_code == 200
    body = response.json()
    assert body["steps"] == 5
    assert len(body["states"]) == 6
    assert body["states"][0]["production_line"]["temperature"] == 24.0
    assert twin.get_current_state() == before


def test_simulate_input_errors_are_422_with_the_reason(client: TestClient, auth: Auth) -> None:
    engineer = auth("engineer")
    unknown = client.post(
        "/api/simulate",
        json={"steps": 2, "parameters": {"production_line.warp": 1.0}},
        headers=engineer,
    )
    assert unknown.status_code == 422
    assert "production_line.warp" in unknown.json()["detail"]
    for body in (
        {"steps": 1001},
        {"steps": -1},
        {"steps": "many"},
        {"parameters": {"production_line.temperature": True}},
        {"parameters": {"not a path": 1.0}},
        {"parameters": {f"production_line.p{i}": 1.0 for i in range(51)}},
        {"unknown_field": 1},
    ):
        assert client.post("/api/simulate", json=body, headers=engineer).status_code == 422, body
    nan = b'{"steps": 2, "parameters": {"production_line.temperature": NaN}}'
    response = client.post(
        "/api/simulate",
        content=nan,
        headers={**engineer, "Content-Type": "application/json"},
    )
    assert response.status_code == 422


def test_monte_carlo_summary(client: TestClient, auth: Auth) -> None:
    response = client.post(
        "/api/simulate/monte-carlo",
        json={"steps": 20, "iterations": 200, "uncertainty": 0.2, "seed": 7},
        headers=auth("engineer"),
    )
    assert response.status_code == 200
    summary = response.json()
    assert summary["iterations"] == 200
    series = summary["paths"]["production_line.temperature"]
    assert len(series["mean"]) == 21
    assert all(lo <= hi for lo, hi in zip(series["p5"], series["p95"], strict=True))
    assert "production_line.temperature" in summary["breach"]
    same = client.post(
        "/api/simulate/monte-carlo",
        json={"steps": 20, "iterations": 200, "uncertainty": 0.2, "seed": 7},
        headers=auth("engineer"),
    ).json()
    assert same["paths"] == summary["paths"]  # the seed makes it reproducible


def test_monte_carlo_work_is_bounded(client: TestClient, auth: Auth) -> None:
    response = client.post(
        "/api/simulate/monte-carlo",
        json={"steps": 1000, "iterations": 5000},
        headers=auth("engineer"),
    )
    assert response.status_code == 422
    assert "steps * iterations" in str(response.json()["detail"])


def test_scenario_lifecycle_and_comparison(client: TestClient, auth: Auth) -> None:
    engineer, viewer = auth("engineer"), auth("viewer")
    for name, target in (("warm", 26.0), ("cool", 21.0)):
        created = client.post(
            "/api/scenarios",
            json={
                "name": name,
                "description": f"target {target}",
                "parameters": {"production_line.target_temperature": target},
            },
            headers=engineer,
        )
        assert created.status_code == 201, created.text
        assert created.json()["parameters"] == {"production_line.target_temperature": target}
    duplicate = client.post("/api/scenarios", json={"name": "warm"}, headers=engineer)
    assert duplicate.status_code == 409
    names = [s["name"] for s in client.get("/api/scenarios", headers=viewer).json()]
    assert names == ["warm", "cool"]
    assert client.get("/api/scenarios/warm", headers=viewer).json()["description"] == "target 26.0"
    assert client.get("/api/scenarios/hot", headers=viewer).status_code == 404

    run = client.post(
        "/api/scenarios/warm/run",
        json={"steps": 10, "seed": 3, "include_states": True},
        headers=engineer,
    )
    assert run.status_code == 200
    assert run.json()["steps"] == 10 and len(run.json()["states"]) == 11
    assert run.json()["kpis"]["final_temperature"] is not None

    compared = client.post(
        "/api/scenarios/compare",
        json={"scenarios": ["warm", "cool"], "steps": 30, "seed": 1},
        headers=engineer,
    )
    assert compared.status_code == 200
    body = compared.json()
    assert body["scenarios"] == ["warm", "cool"]
    warm, cool = body["kpis"]["warm"], body["kpis"]["cool"]
    assert warm["final_temperature"] > cool["final_temperature"]
    assert len(body["series"]["warm"]["temperature"]) == 31
    kpi_rows = {row["kpi"] for row in body["table"]}
    assert "total_energy" in kpi_rows

    missing = client.post(
        "/api/scenarios/compare", json={"scenarios": ["warm", "nope"]}, headers=engineer
    )
    assert missing.status_code == 404
    twice = client.post(
        "/api/scenarios/compare", json={"scenarios": ["warm", "warm"]}, headers=engineer
    )
    assert twice.status_code == 422
    bad_metric = client.post(
        "/api/scenarios/compare",
        json={"scenarios": ["warm"], "metrics": ["speed"]},
        headers=engineer,
    )
    assert bad_metric.status_code == 422

    assert client.delete("/api/scenarios/cool", headers=engineer).status_code == 204
    assert client.delete("/api/scenarios/cool", headers=engineer).status_code == 404
    assert client.post("/api/scenarios/cool/run", json={}, headers=engineer).status_code == 404


def test_scenario_with_bad_parameters_is_refused(client: TestClient, auth: Auth) -> None:
    response = client.post(
        "/api/scenarios",
        json={"name": "broken", "parameters": {"production_line.efficiency": 5.0}},
        headers=auth("engineer"),
    )
    assert response.status_code == 422
    assert "production_line.efficiency" in response.json()["detail"]


def test_commands_go_through_the_interface_manager(client: TestClient, auth: Auth) -> None:
    commands = client.get("/api/commands", headers=auth("viewer")).json()
    assert commands["run_simulation"] == "engineer"
    assert commands["acknowledge_alert"] == "operator"
    forbidden = client.post(
        "/api/commands",
        json={"command": "run_simulation", "params": {"steps": 3}},
        headers=auth("operator"),
    )
    assert forbidden.status_code == 403
    ran = client.post(
        "/api/commands",
        json={"command": "run_simulation", "params": {"steps": 3}},
        headers=auth("engineer"),
    )
    assert ran.status_code == 200
    assert len(ran.json()["states"]) == 4
    unknown = client.post("/api/commands", json={"command": "self_destruct"}, headers=auth("admin"))
    assert unknown.status_code == 400
    assert "run_simulation" in unknown.json()["detail"]
    bad = client.post(
        "/api/commands",
        json={"command": "run_simulation", "params": {"steps": "x"}},
        headers=auth("engineer"),
    )
    assert bad.status_code == 422
    view = client.post(
        "/api/commands",
        json={"command": "change_view", "params": {"view_name": "alerts"}},
        headers=auth("viewer"),
    )
    assert view.json() == {"success": True, "view": "alerts"}
    missing = client.post(
        "/api/commands",
        json={"command": "acknowledge_alert", "params": {"event_id": "nope"}},
        headers=auth("operator"),
    )
    assert missing.status_code == 409


def test_scenarios_from_the_api_are_in_the_configured_database(
    client: TestClient, auth: Auth, twin_backend: TwinBackend, isolated_data_dir: Path
) -> None:
    created = client.post(
        "/api/scenarios",
        json={"name": "stored", "parameters": {"production_line.target_temperature": 24.0}},
        headers=auth("engineer"),
    )
    assert created.status_code == 201, created.text
    # another process on the same database (a second API instance) sees it
    if twin_backend.name == "postgresql":
        other = twin_backend.scenarios()
    else:
        other = ScenarioManager(db_path=isolated_data_dir / "twin" / "scenarios.db")
    assert [s.name for s in other.list_scenarios()] == ["stored"]
    assert other.get_scenario("stored").id == created.json()["id"]
