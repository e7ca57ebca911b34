"""State, history, state at a time, thresholds, alarms, events and acknowledging them."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient

from circman5.api.context import ApiContext
from circman5.manufacturing.digital_twin.core.twin_core import DigitalTwin
from circman5.manufacturing.digital_twin.event_notification.event_manager import (
    EventManager,
    event_manager,
)
from circman5.manufacturing.digital_twin.event_notification.event_types import (
    EventCategory,
    EventSeverity,
)
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


def test_state_is_the_twins_current_state(
    client: TestClient, auth: Auth, twin: DigitalTwin
) -> None:
    twin.update({"production_line": {"temperature": 23.25, "production_rate": 7.0}})
    response = client.get("/api/state", headers=auth("viewer"))
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.headers["cache-control"] == "no-store"
    assert response.json() == twin.get_current_state()
    assert response.json()["production_line"]["temperature"] == 23.25


def test_history_is_oldest_first_and_bounded(
    client: TestClient, auth: Auth, twin: DigitalTwin
) -> None:
    for value in (20.0, 21.0, 22.0, 23.0):
        twin.update({"production_line": {"temperature": value}})
    body = client.get("/api/state/history?limit=3", headers=auth("viewer")).json()
    temperatures = [s["production_line"]["temperature"] for s in body["states"]]
    assert body["count"] == 3
    assert temperatures == [20.0, 21.0, 22.0]  # the current state (23.0) is not history
    assert client.get("/api/state/history?limit=0", headers=auth("viewer")).status_code == 422
    assert client.get("/api/state/history?limit=1001", headers=auth("viewer")).status_code == 422


def test_state_at_a_time(client: TestClient, auth: Auth, twin: DigitalTwin) -> None:
    start = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)
    for minute, value in enumerate((20.0, 21.0, 22.0)):
        stamp = (start + timedelta(minutes=minute)).isoformat()
        twin.update({"timestamp": stamp, "production_line": {"temperature": value}})
    viewer = auth("viewer")
    at = (start + timedelta(minutes=1, seconds=30)).isoformat()
    response = client.get("/api/state/at", params={"timestamp": at}, headers=viewer)
    assert response.status_code == 200
    assert response.json()["production_line"]["temperature"] == 21.0
    epoch = (start + timedelta(minutes=2, seconds=1)).timestamp()
    response = client.get("/api/state/at", params={"timestamp": str(epoch)}, headers=viewer)
    assert response.json()["production_line"]["temperature"] == 22.0
    early = client.get("/api/state/at", params={"timestamp": "1999-01-01T00:00:00"}, headers=viewer)
    assert early.status_code == 404
    bad = client.get("/api/state/at", params={"timestamp": "yesterday"}, headers=viewer)
    assert bad.status_code == 422
    assert "yesterday" in bad.json()["detail"]


def test_thresholds_and_active_alarms(client: TestClient, auth: Auth, twin: DigitalTwin) -> None:
    viewer = auth("viewer")
    rules = {r["path"]: r for r in client.get("/api/thresholds", headers=viewer).json()}
    temperature = rules["production_line.temperature"]
    assert temperature["high"] == twin.thresholds["production_line.temperature"].high
    assert client.get("/api/alarms", headers=viewer).json() == []
    too_hot = temperature["high"] + 3.0
    twin.update({"production_line": {"temperature": too_hot}})
    alarms = client.get("/api/alarms", headers=viewer).json()
    assert alarms == [
        {
            "path": "production_line.temperature",
            "limit": "high",
            "value": too_hot,
            "threshold": temperature["high"],
            "severity": temperature["severity"],
        }
    ]


def _breach(twin: DigitalTwin, events: EventManager) -> str:
    high = twin.thresholds["production_line.temperature"].high
    assert high is not None
    twin.update({"production_line": {"temperature": high + 5.0}})
    found = events.get_events(category=EventCategory.THRESHOLD, severity=EventSeverity.WARNING)
    assert found, "the breach published no threshold event"
    return found[0].event_id


def test_events_query_by_category_severity_and_limit(
    client: TestClient, auth: Auth, twin: DigitalTwin, events: EventManager
) -> None:
    event_id = _breach(twin, events)
    viewer = auth("viewer")
    threshold = client.get("/api/events?category=threshold", headers=viewer).json()
    assert event_id in [e["event_id"] for e in threshold]
    assert all(e["category"] == "threshold" for e in threshold)
    system = client.get("/api/events?category=system&severity=info&limit=1", headers=viewer).json()
    assert len(system) == 1 and system[0]["category"] == "system"
    assert client.get("/api/events?category=nonsense", headers=viewer).status_code == 422
    assert client.get("/api/events?limit=5000", headers=viewer).status_code == 422
    alerts = client.get("/api/events/alerts?acknowledged=false", headers=viewer).json()
    assert [a["event_id"] for a in alerts] == [event_id]


def test_operator_acknowledges_an_alarm_and_it_is_recorded(
    client: TestClient, auth: Auth, twin: DigitalTwin, events: EventManager
) -> None:
    event_id = _breach(twin, events)
    response = client.post(f"/api/events/{event_id}/acknowledge", headers=auth("operator"))
    assert response.status_code == 200
    assert response.json() == {"event_id": event_id, "acknowledged": True}
    viewer = auth("viewer")
    open_alerts = client.get("/api/events/alerts?acknowledged=false", headers=viewer).json()
    assert event_id not in [a["event_id"] for a in open_alerts]
    acked = client.get("/api/events?category=threshold&acknowledged=true", headers=viewer).json()
    assert event_id in [e["event_id"] for e in acked]
    audit = events.get_events(category=EventCategory.USER)
    assert audit[0].details["user_id"] == "operator"
    assert audit[0].details["action"] == "acknowledge_alert"
    assert audit[0].details["action_details"] == {"event_id": event_id}


def test_acknowledging_an_unknown_event_is_404(client: TestClient, auth: Auth) -> None:
    response = client.post("/api/events/no-such-event/acknowledge", headers=auth("operator"))
    assert response.status_code == 404
    bad = client.post("/api/events/bad%20id!/acknowledge", headers=auth("operator"))
    assert bad.status_code == 422


def test_health_needs_no_token(client: TestClient) -> None:
    response = client.get("/api/health")
    assert response.status_code == 200
    assert response.json()["status"] == "ok"


def test_hmi_pages_are_served_with_security_headers(client: TestClient) -> None:
    assert client.get("/", follow_redirects=False).headers["location"] == "/hmi/"
    page = client.get("/hmi/")
    assert page.status_code == 200
    assert "<title>CIRCMAN5.0 Edge Twin HMI</title>" in page.text
    assert "script-src 'self'" in page.headers["content-security-policy"]
    assert page.headers["x-frame-options"] == "DENY"
    assert page.headers["x-content-type-options"] == "nosniff"
    for asset in ("app.js", "chart.js", "style.css"):
        assert client.get(f"/hmi/{asset}").status_code == 200
    assert client.get("/hmi/%2e%2e/%2e%2e/pyproject.toml").status_code == 404


def test_openapi_documents_the_api(client: TestClient) -> None:
    schema = client.get("/openapi.json").json()
    assert "/api/auth/login" in schema["paths"]
    assert "bearer" in schema["components"]["securitySchemes"]
    login = schema["paths"]["/api/auth/login"]["post"]
    assert "429" in login["responses"]
