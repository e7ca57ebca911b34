"""The twin learning the line through the API: calibration from the recorded history (the
embedded store, read as the service reads it), the simulation using it, and the manufacturing
model trained on the line's batches with its provenance visible."""

from __future__ import annotations

import asyncio
import datetime
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from circman5.api.app import create_app
from circman5.api.context import ApiContext
from circman5.manufacturing.digital_twin.simulation.calibration import use_calibration_store
from circman5.sinks.embedded_store import EmbeddedStore
from circman5.sinks.history import read_embedded_history
from tests.calibration.plant_history import PLANT_TAU_S, record_plant
from tests.fixtures.databases import TwinBackend

START = datetime.datetime.now(datetime.UTC).replace(microsecond=0) - datetime.timedelta(hours=3)


@pytest.fixture
def recorded_store(isolated_data_dir: Path) -> Path:
    """The simulators' plant recorded into the embedded store: 30 min, 5-module batches."""
    file = isolated_data_dir / "timeseries.sqlite3"

    async def record() -> None:
        async with EmbeddedStore(path=file) as store:
            samples = record_plant(START, segments=12, segment_s=150, batch_size=5)
            store.write_samples(samples)
            await store.flush()

    asyncio.run(record())
    return file


@pytest.fixture
def learning_client(
    make_context: Callable[..., ApiContext], recorded_store: Path
) -> Iterator[TestClient]:
    def reader(
        source: str, start_s: float | None, end_s: float | None, paths: Sequence[str]
    ) -> dict[str, Any]:
        assert source == "embedded"
        return dict(read_embedded_history(recorded_store, paths, start_s, end_s))

    with TestClient(create_app(make_context(history_reader=reader))) as client:
        yield client


@pytest.fixture
def calibrations_on(twin_backend: TwinBackend) -> Iterator[TwinBackend]:
    """The calibrations where the service keeps them: the data directory's files, or
    PostgreSQL with ``[database] url``."""
    if twin_backend.name == "postgresql":
        use_calibration_store(twin_backend.calibrations())
    yield twin_backend
    use_calibration_store(None)


def test_calibration_through_the_api(
    calibrations_on: TwinBackend,
    learning_client: TestClient,
    auth: Callable[[str], dict[str, str]],
    isolated_data_dir: Path,
) -> None:
    client = learning_client
    none = client.get("/api/calibration", headers=auth("viewer"))
    assert none.status_code == 200
    assert none.json() == {"active": None, "parameter_set": "built-in defaults"}
    body = {"source": "embedded", "min_r2": 0.8}
    assert client.post("/api/calibration", json=body, headers=auth("operator")).status_code == 403

    response = client.post("/api/calibration", json=body, headers=auth("engineer"))
    assert response.status_code == 200, response.text
    result = response.json()
    assert result["version"] == 1 and result["saved"] is True
    paths = {p["path"]: p for p in result["paths"]}
    temperature = paths["production_line.temperature"]
    assert temperature["status"] == "accepted"
    assert temperature["time_constant_s"] == pytest.approx(PLANT_TAU_S, rel=0.25)
    assert temperature["r2"] >= 0.8 and temperature["rmse"] > 0
    assert temperature["start"] and temperature["end"] and temperature["points"] > 1000
    assert paths["production_line.energy_consumption"]["status"] == "not explained"
    assert "production_line.temperature" in result["accepted_paths"]
    assert "production_line.temperature" in result["report"]

    active = client.get("/api/calibration", headers=auth("viewer")).json()
    assert active["parameter_set"] == "calibration 1"
    assert active["active"]["parameters"] == result["parameters"]

    simulated = client.post("/api/simulate", json={"steps": 3}, headers=auth("engineer"))
    assert simulated.status_code == 200
    assert simulated.json()["parameter_set"] == "calibration 1"
    monte_carlo = client.post(
        "/api/simulate/monte-carlo", json={"steps": 3, "iterations": 5}, headers=auth("engineer")
    )
    assert monte_carlo.json()["parameter_set"] == "calibration 1"
    in_files = (isolated_data_dir / "calibrations" / "calibration-000001.json").is_file()
    assert in_files == (calibrations_on.name == "sqlite")
    if calibrations_on.name == "postgresql":
        assert calibrations_on.calibrations().versions() == [1]


def test_bad_calibration_requests_are_refused(
    learning_client: TestClient, auth: Callable[[str], dict[str, str]]
) -> None:
    engineer = auth("engineer")
    both = {"source": "embedded", "last_s": 60, "start": "2026-01-01T00:00:00"}
    response = learning_client.post("/api/calibration", json=both, headers=engineer)
    assert response.status_code == 422
    assert "not both" in response.json()["detail"]
    unknown = learning_client.post("/api/calibration", json={"source": "x"}, headers=engineer)
    assert unknown.status_code == 422


def test_model_trains_on_the_line_history_and_says_so(
    learning_client: TestClient, auth: Callable[[str], dict[str, str]]
) -> None:
    client = learning_client
    trained = client.post("/api/model/train", json={"source": "embedded"}, headers=auth("engineer"))
    assert trained.status_code == 200, trained.text
    provenance = trained.json()["provenance"]
    assert provenance["source"] == "line data"
    assert provenance["batches"] >= 20
    assert provenance["window"]["start"] < provenance["window"]["end"]
    targets = trained.json()["targets"]
    assert set(provenance["cv_rmse"]) == set(targets) == set(provenance["cv_r2"])
    assert all(v >= 0 for v in provenance["cv_rmse"].values())
    assert provenance["trained_at"]

    info = client.get("/api/model/info", headers=auth("viewer")).json()
    assert info["provenance"] == provenance
    # the plant draws 120-140 kW: the default constraint (<= 100 kW) is infeasible on its data
    body = {"constraints": {"energy_used": [0.0, 200.0]}}
    optimized = client.post("/api/optimize", json=body, headers=auth("engineer"))
    assert optimized.status_code == 200, optimized.text
    assert optimized.json()["model"]["source"] == "line data"
    report = client.get("/api/optimize/report", headers=auth("viewer")).json()
    assert report["model"]["provenance"]["batches"] == provenance["batches"]


def test_too_little_history_falls_back_to_synthetic_and_says_so(
    learning_client: TestClient, auth: Callable[[str], dict[str, str]]
) -> None:
    response = learning_client.post(
        "/api/model/train", json={"source": "twin"}, headers=auth("engineer")
    )
    assert response.status_code == 200, response.text
    provenance = response.json()["provenance"]
    assert provenance["source"] == "synthetic"
    assert provenance["window"] is None
    assert "needed" in provenance["fallback_reason"]
    assert "not the line's data" in provenance["note"]
