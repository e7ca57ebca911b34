"""Fuzzing the OpenAPI schema with schemathesis: no request may crash the API (no 500).

Every operation gets a bounded number of generated requests (schemathesis strategies from the
app's own OpenAPI document, run by hypothesis), sent as the admin, who passes every role check,
so the handlers themselves are exercised. A 5xx other than 500 is allowed only as a deliberate
answer (503 "no writable setpoints configured" and the like) with a JSON ``detail``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings

from circman5.api.app import create_app
from circman5.api.context import ApiContext
from tests.api.test_access import PUBLIC, ROUTES

MAX_EXAMPLES = 8
HEAVY = {  # seconds per call (the first trains the AI model)
    ("POST", "/api/optimize"),
    ("POST", "/api/predict"),
    ("POST", "/api/model/train"),
    ("GET", "/api/model/info"),
    ("POST", "/api/calibration"),
}
#: A training on a loaded 2-core machine takes well over schemathesis' default 10 s: the
#: fuzzing looks for crashes, not for speed (that is the benchmarks' job).
HEAVY_TIMEOUT_S = 300.0

TEMPLATES = {
    "/api/events/some-event/acknowledge": "/api/events/{event_id}/acknowledge",
    "/api/scenarios/s": "/api/scenarios/{name}",
    "/api/scenarios/s/run": "/api/scenarios/{name}/run",
    "/api/users/viewer": "/api/users/{username}",
    "/api/users/nobody": "/api/users/{username}",
    "/api/site/plant/line1/state": "/api/site/{site}/{line}/state",
    "/api/jobs/1": "/api/jobs/{job_id}",
    "/api/simulations/x": "/api/simulations/{simulation_id}",
}
OPERATIONS = sorted(
    {
        (method, TEMPLATES.get(path.split("?")[0], path.split("?")[0]))
        for method, path, _, _ in ROUTES
    }
    | PUBLIC
)


def no_crash(response: Any) -> None:
    status = response.status_code
    assert status != 500, f"500 from {response.request.method} {response.request.url}"
    if status >= 500:
        body = response.json()
        assert isinstance(body.get("detail"), str) and body["detail"], body


# Negative cases need some input to break: the health check has none.
CASES = [
    (method, path, mode)
    for method, path in OPERATIONS
    for mode in ("positive", "negative")
    if not (mode == "negative" and path == "/api/health")
]


@pytest.mark.parametrize(("method", "path", "mode"), CASES, ids=lambda v: str(v))
def test_no_request_crashes_the_api(
    method: str,
    path: str,
    mode: str,
    make_context: Callable[..., ApiContext],
    token_of: Callable[[str], str],
) -> None:
    app = create_app(make_context())
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    operation = schema[path][method]
    headers = {"Authorization": f"Bearer {token_of('admin')}"}
    statuses: list[int] = []

    generation = schemathesis.GenerationMode(mode)

    @given(case=operation.as_strategy(generation_mode=generation))
    @settings(
        max_examples=2 if (method, path) in HEAVY else MAX_EXAMPLES,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        derandomize=True,
        database=None,
    )
    def fuzz(case: Any) -> None:
        if (method, path) in HEAVY:
            response = case.call(headers=headers, timeout=HEAVY_TIMEOUT_S)
        else:
            response = case.call(headers=headers)
        no_crash(response)
        # Valid requests of the admin pass every check (logins may fail); invalid ones may
        # carry a broken Authorization header.
        if mode == "positive" and path != "/api/auth/login":
            assert response.status_code not in (401, 403), response.text
        statuses.append(response.status_code)

    fuzz()
    assert statuses, "no request was generated"
