"""GET /api/forecast: per monitored path, the forecast over the horizon with its band."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from fastapi.testclient import TestClient

from circman5.manufacturing.digital_twin.core.twin_core import DigitalTwin

Auth = Callable[[str], dict[str, str]]
PATH = "production_line.temperature"


def test_forecast_per_monitored_path(client: TestClient, auth: Auth, twin: DigitalTwin) -> None:
    assert client.get("/api/forecast").status_code == 401
    start = datetime.now(UTC) + timedelta(seconds=1)
    for second in range(20):  # rising 0.2 degrees a second towards the 27.0 limit
        stamp = (start + timedelta(seconds=second)).isoformat()
        twin.update({"timestamp": stamp, "production_line": {"temperature": 22.0 + 0.2 * second}})
    body = client.get("/api/forecast", headers=auth("viewer")).json()
    assert body["enabled"] is True and body["model_paths"] == [] and body["horizon_s"] == 30.0
    rows = {row["path"]: row for row in body["paths"]}
    assert set(rows) == set(twin.thresholds)
    row = rows[PATH]
    assert row["forecaster"] == "statistical:damped_holt"
    assert (row["limit_low"], row["limit_high"]) == (18.0, 27.0)
    assert row["times_s"][0] == 0.0 and row["times_s"][-1] == 30.0
    assert len(row["mean"]) == len(row["low"]) == len(row["high"]) == len(row["times_s"])
    assert row["mean"][0] < 27.0 < row["mean"][-1]  # rising through the limit
    assert all(
        lo <= m <= hi for lo, m, hi in zip(row["low"], row["mean"], row["high"], strict=True)
    )
    assert row["probability"] == row["probability_exceed"] > 0.5
    assert row["seconds_to_exceed"] > 0
    assert row["last_value"] == 22.0 + 0.2 * 19
