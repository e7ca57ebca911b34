"""AI optimization and LCA through the API (the real integrations on the real twin)."""

from __future__ import annotations

from collections.abc import Callable

from fastapi.testclient import TestClient

from circman5.api.app import create_app
from circman5.api.context import ApiContext
from circman5.errors import FeatureUnavailable
from circman5.manufacturing.digital_twin.core.twin_core import DigitalTwin
from circman5.manufacturing.digital_twin.event_notification.event_manager import EventManager
from circman5.manufacturing.digital_twin.event_notification.event_types import EventCategory

Auth = Callable[[str], dict[str, str]]


def test_optimize_predict_apply_and_report(
    client: TestClient, auth: Auth, twin: DigitalTwin, events: EventManager
) -> None:
    engineer, manager = auth("engineer"), auth("manager")
    proposal = client.post("/api/optimize", json={}, headers=engineer)
    assert proposal.status_code == 200, proposal.text
    params = proposal.json()["optimized_params"]
    assert {"temperature", "cycle_time", "efficiency"} <= set(params)
    assert 20.0 <= params["cycle_time"] <= 60.0  # the configured constraint

    predicted = client.post("/api/predict", json={"parameters": params}, headers=engineer)
    assert predicted.status_code == 200
    assert 0.0 <= predicted.json()["efficiency"] <= 1.0

    # a running line at 26 °C: cooling to 23 °C is better in simulation, so it is applied
    twin.update(
        {"production_line": {"status": "running", "temperature": 26.0, "target_temperature": 26.0}}
    )
    applied = client.post(
        "/api/optimize/apply", json={"optimized_params": {"temperature": 23.0}}, headers=manager
    )
    assert applied.status_code == 200, applied.text
    assert applied.json() == {"applied": True, "setpoints_written": []}
    assert twin.get_current_state()["production_line"]["target_temperature"] == 23.0
    audit = events.get_events(category=EventCategory.USER)[0]
    assert audit.details["user_id"] == "manager"
    assert audit.details["action"] == "apply_optimization"
    assert audit.details["action_details"]["applied"] is True

    outside = client.post(
        "/api/optimize/apply", json={"optimized_params": {"cycle_time": 90.0}}, headers=manager
    )
    assert outside.status_code == 409
    assert "outside its constraint" in outside.json()["detail"]
    nothing = client.post(
        "/api/optimize/apply", json={"optimized_params": {"efficiency": 0.99}}, headers=manager
    )
    assert nothing.status_code == 422

    report = client.get("/api/optimize/report", headers=auth("viewer")).json()
    assert report["total_optimizations"] == 1
    assert report["applied"] == 1 and report["rejected"] == 1


def test_optimize_constraints_are_validated(client: TestClient, auth: Auth) -> None:
    engineer = auth("engineer")
    reversed_range = client.post(
        "/api/optimize", json={"constraints": {"cycle_time": [60.0, 20.0]}}, headers=engineer
    )
    assert reversed_range.status_code == 422
    assert "min 60.0 > max 20.0" in reversed_range.json()["detail"]
    not_a_range = client.post(
        "/api/optimize", json={"constraints": {"cycle_time": [1.0, 2.0, 3.0]}}, headers=engineer
    )
    assert not_a_range.status_code == 422


def test_lca_analysis_and_report(client: TestClient, auth: Auth, twin: DigitalTwin) -> None:
    twin.update(
        {
            "production_line": {"energy_consumption": 120.0},
            "materials": {
                "silicon_wafer": {"consumption": 50.0, "waste": 2.0, "recycled": 1.0},
                "solar_glass": {"consumption": 80.0, "waste": 3.0, "recycled": 2.0},
            },
        }
    )
    engineer = auth("engineer")
    response = client.post(
        "/api/lca/analysis", json={"batch_id": "B-001", "energy_kwh": 500.0}, headers=engineer
    )
    assert response.status_code == 200, response.text
    impact = response.json()
    assert impact["manufacturing_impact"] > 0
    assert impact["total_carbon_footprint"] == (
        impact["manufacturing_impact"] + impact["use_phase_impact"] + impact["end_of_life_impact"]
    )
    report = client.get("/api/lca/report?num_results=3", headers=auth("viewer")).json()
    assert report["total_analyses"] == 1
    assert report["batch_ids"] == ["B-001"]
    bad = client.post("/api/lca/analysis", json={"lifetime_years": -1}, headers=engineer)
    assert bad.status_code == 422
    region = client.post("/api/lca/analysis", json={"grid_region": "atlantis"}, headers=engineer)
    assert region.status_code == 422


def test_missing_integration_is_503(make_context: Callable[..., ApiContext], auth: Auth) -> None:
    def unavailable(_: object) -> object:
        raise FeatureUnavailable("LCAIntegration is not installed here")

    app = create_app(make_context(lca_factory=unavailable))
    with TestClient(app) as client:
        response = client.get("/api/lca/report", headers=auth("viewer"))
    assert response.status_code == 503
    assert "not installed" in response.json()["detail"]
