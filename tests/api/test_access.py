"""Every route: 401 without a (valid) token, 403 for each role below the one it needs."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jwt
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from circman5.api.roles import ROLES, Role, check_permission, roles_below
from tests.api.conftest import JWT_SECRET

# (method, path, JSON body, the role the route needs)
ROUTES: list[tuple[str, str, dict[str, Any] | None, Role]] = [
    ("GET", "/api/auth/me", None, "viewer"),
    ("GET", "/api/state", None, "viewer"),
    ("GET", "/api/state/history", None, "viewer"),
    ("GET", "/api/state/at?timestamp=2020-01-01T00:00:00", None, "viewer"),
    ("GET", "/api/thresholds", None, "viewer"),
    ("GET", "/api/alarms", None, "viewer"),
    ("GET", "/api/events", None, "viewer"),
    ("GET", "/api/events/alerts", None, "viewer"),
    ("POST", "/api/events/some-event/acknowledge", None, "operator"),
    ("POST", "/api/simulate", {"steps": 1}, "engineer"),
    ("POST", "/api/simulate/monte-carlo", {"steps": 1, "iterations": 2}, "engineer"),
    ("GET", "/api/scenarios", None, "viewer"),
    ("POST", "/api/scenarios", {"name": "s"}, "engineer"),
    ("GET", "/api/scenarios/s", None, "viewer"),
    ("DELETE", "/api/scenarios/s", None, "engineer"),
    ("POST", "/api/scenarios/s/run", {}, "engineer"),
    ("POST", "/api/scenarios/compare", {"scenarios": ["s"]}, "engineer"),
    # cheap bodies for the heavy routes: refused after the role check (422), nothing runs
    ("POST", "/api/optimize", {"constraints": {"cycle_time": [60.0, 20.0]}}, "engineer"),
    ("POST", "/api/optimize/apply", {"optimized_params": {"cycle_time": 30.0}}, "manager"),
    ("GET", "/api/optimize/report", None, "viewer"),
    ("POST", "/api/predict", {"parameters": {"cycle_time": "slow"}}, "engineer"),
    ("POST", "/api/lca/analysis", {}, "engineer"),
    ("POST", "/api/calibration", {"source": "influxdb"}, "engineer"),
    ("GET", "/api/calibration", None, "viewer"),
    ("POST", "/api/model/train", {"source": "influxdb"}, "engineer"),
    ("GET", "/api/model/info", None, "viewer"),
    ("GET", "/api/forecast", None, "viewer"),
    ("GET", "/api/site", None, "viewer"),
    ("GET", "/api/site/plant/line1/state", None, "viewer"),
    ("POST", "/api/jobs", {"kind": "scenario.run", "payload": {"scenario": "s"}}, "engineer"),
    ("GET", "/api/jobs", None, "viewer"),
    ("GET", "/api/jobs/1", None, "viewer"),
    ("GET", "/api/simulations", None, "viewer"),
    ("GET", "/api/simulations/x", None, "viewer"),
    ("GET", "/api/lca/report", None, "viewer"),
    ("GET", "/api/setpoints", None, "viewer"),
    ("POST", "/api/setpoints", {"path": "production_line.x", "value": 1.0}, "engineer"),
    ("GET", "/api/commands", None, "viewer"),
    ("POST", "/api/commands", {"command": "get_active_alarms"}, "viewer"),
    ("GET", "/api/connectors", None, "viewer"),
    ("GET", "/api/diagnostics", None, "engineer"),
    ("GET", "/api/users", None, "admin"),
    (
        "POST",
        "/api/users",
        {"username": "u1", "password": "pass-word-1", "role": "viewer"},
        "admin",
    ),
    ("PATCH", "/api/users/viewer", {"role": "viewer"}, "admin"),
    ("DELETE", "/api/users/nobody", None, "admin"),
]

PUBLIC = {("POST", "/api/auth/login"), ("GET", "/api/health")}


def _call(
    client: TestClient, method: str, path: str, body: Any, headers: dict[str, str] | None
) -> Any:
    return client.request(method, path, json=body, headers=headers or {})


def test_the_table_covers_every_route(app: FastAPI) -> None:
    listed = {(m, p.split("?")[0]) for m, p, _, _ in ROUTES}
    templates = {
        "/api/events/some-event/acknowledge": "/api/events/{event_id}/acknowledge",
        "/api/scenarios/s": "/api/scenarios/{name}",
        "/api/scenarios/s/run": "/api/scenarios/{name}/run",
        "/api/users/viewer": "/api/users/{username}",
        "/api/users/nobody": "/api/users/{username}",
        "/api/site/plant/line1/state": "/api/site/{site}/{line}/state",
        "/api/jobs/1": "/api/jobs/{job_id}",
        "/api/simulations/x": "/api/simulations/{simulation_id}",
    }
    listed = {(m, templates.get(p, p)) for m, p in listed}
    routes = {
        (method.upper(), path)
        for path, operations in app.openapi()["paths"].items()
        for method in operations
    }
    assert routes - PUBLIC == listed


@pytest.mark.parametrize(("method", "path", "body", "role"), ROUTES, ids=lambda v: str(v))
def test_401_without_a_token(
    client: TestClient, method: str, path: str, body: Any, role: Role
) -> None:
    response = _call(client, method, path, body, None)
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == "Bearer"
    assert "not authenticated" in response.json()["detail"]


@pytest.mark.parametrize(("method", "path", "body", "role"), ROUTES[:3])
def test_401_with_a_bad_token(
    client: TestClient, method: str, path: str, body: Any, role: Role
) -> None:
    forged = jwt.encode({"sub": "admin", "role": "admin", "exp": 2**40}, "x" * 40)
    for token in ("garbage", forged):
        response = _call(client, method, path, body, {"Authorization": f"Bearer {token}"})
        assert response.status_code == 401


def test_expired_token_is_refused(client: TestClient) -> None:
    expired = jwt.encode(
        {"sub": "admin", "role": "admin", "iat": 1, "exp": 2, "iss": "circman5"}, JWT_SECRET
    )
    response = client.get("/api/state", headers={"Authorization": f"Bearer {expired}"})
    assert response.status_code == 401
    assert "expired" in response.json()["detail"]


def test_token_with_a_role_the_user_no_longer_has_is_refused(
    client: TestClient, users: Any, auth: Callable[[str], dict[str, str]]
) -> None:
    headers = auth("engineer")
    assert client.get("/api/state", headers=headers).status_code == 200
    users.update("engineer", role="viewer")
    response = client.get("/api/state", headers=headers)
    assert response.status_code == 401
    assert "no longer valid" in response.json()["detail"]


FORBIDDEN = [
    (method, path, body, role, below)
    for method, path, body, role in ROUTES
    for below in roles_below(role)
]


@pytest.mark.parametrize(
    ("method", "path", "body", "role", "below"), FORBIDDEN, ids=lambda v: str(v)
)
def test_403_for_each_role_below(
    client: TestClient,
    auth: Callable[[str], dict[str, str]],
    method: str,
    path: str,
    body: Any,
    role: Role,
    below: Role,
) -> None:
    response = _call(client, method, path, body, auth(below))
    assert response.status_code == 403
    assert f"requires role '{role}'" in response.json()["detail"]


@pytest.mark.parametrize(("method", "path", "body", "role"), ROUTES, ids=lambda v: str(v))
def test_the_required_role_gets_past_the_check(
    client: TestClient,
    auth: Callable[[str], dict[str, str]],
    method: str,
    path: str,
    body: Any,
    role: Role,
) -> None:
    response = _call(client, method, path, body, auth(role))
    assert response.status_code not in (401, 403), response.text
    assert response.status_code < 500 or response.status_code == 503, response.text


def test_check_permission_follows_the_hierarchy() -> None:
    levels = {"admin": 100, "manager": 80, "engineer": 60, "operator": 40, "viewer": 20}
    for user in ROLES:
        for required in ROLES:
            assert check_permission(user, required) == (levels[user] >= levels[required])
    assert not check_permission("nobody", "viewer")
    assert not check_permission("admin", "no-such-role")
