"""BatchFootprint: a finished batch becomes a footprint KPI and an event.

Hand computation for BATCH (spec factors): silicon_wafer 5 kg, solar_glass 20 kg, 30 kWh.
* manufacturing 5*120 + 20*25 + 30*0.5 = 600 + 500 + 15 = 1115
* recycling rates silicon 0.4/0.5 = 0.8, glass 1.0/1.0 = 1
* end of life 5*10*0.2 + 20*5*0 = 10, transport 0.025 t * 100 km * 0.025 = 0.0625 -> 10.0625
* credit 5*0.8*(-80) + 20*1*(-20) = -320 - 400 = -720
* total 1125.0625, net 405.0625, per module (10) 112.50625
"""

from __future__ import annotations

from typing import Any

import pytest

from circman5.manufacturing.digital_twin.event_notification.event_types import (
    ErrorEvent,
    Event,
    EventCategory,
    EventSeverity,
)
from circman5.manufacturing.lifecycle.batch_footprint import BatchFootprint

BATCH: dict[str, Any] = {
    "batch_id": "B-7",
    "modules_produced": 10,
    "line_id": "line-1",
    "timestamp": "2025-02-24T14:30:22Z",
    "materials": {
        "silicon_wafer": {"consumption": 5.0, "waste": 0.5, "recycled": 0.4},
        "solar_glass": {"consumption": 20.0, "waste": 1.0, "recycled": 1.0},
    },
    "energy_kwh": 30.0,
}


class Recorder:
    def __init__(self) -> None:
        self.kpis: list[tuple[str, dict[str, float], dict[str, str], int]] = []
        self.events: list[Event] = []

    def write_kpi(
        self, measurement: str, fields: dict[str, float], tags: dict[str, str], timestamp_ns: int
    ) -> None:
        self.kpis.append((measurement, fields, tags, timestamp_ns))


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


@pytest.fixture
def footprint(recorder: Recorder) -> BatchFootprint:
    return BatchFootprint(recorder.write_kpi, recorder.events.append)


def test_batch_end_writes_the_kpi_and_publishes_an_event(
    footprint: BatchFootprint, recorder: Recorder
) -> None:
    result = footprint.on_batch_end(BATCH)
    assert result is not None
    [(measurement, fields, tags, timestamp_ns)] = recorder.kpis
    assert measurement == "batch_footprint"
    assert fields["manufacturing"] == pytest.approx(1115.0)
    assert fields["end_of_life"] == pytest.approx(10.0625)
    assert fields["recycling_benefit"] == pytest.approx(-720.0)
    assert fields["total"] == pytest.approx(1125.0625)
    assert fields["net"] == pytest.approx(405.0625)
    assert fields["per_module"] == pytest.approx(112.50625)
    assert fields["material_kg"] == 25.0 and fields["waste_kg"] == 1.5
    assert fields["unknown_materials"] == 0.0
    assert all(isinstance(v, float) for v in fields.values())
    assert tags == {"batch_id": "B-7", "line_id": "line-1"}
    assert timestamp_ns == 1740407422 * 10**9
    [event] = recorder.events
    assert event.category is EventCategory.PROCESS and event.severity is EventSeverity.INFO
    assert event.source == "lca" and "B-7" in event.message
    assert event.details["footprint_kg_co2e"]["total"] == pytest.approx(1125.0625)
    assert footprint.processed == 1


def test_unknown_material_gives_a_warning_event(
    footprint: BatchFootprint, recorder: Recorder
) -> None:
    batch = {**BATCH, "materials": {**BATCH["materials"], "junction_box": {"consumption": 1.0}}}
    footprint.on_batch_end(batch)
    [(_, fields, _, _)] = recorder.kpis
    assert fields["unknown_materials"] == 1.0
    assert fields["manufacturing"] == pytest.approx(1115.0)
    [event] = recorder.events
    assert event.severity is EventSeverity.WARNING
    assert event.details["unknown_materials"] == ["junction_box"]


@pytest.mark.parametrize(
    "change",
    [
        {"batch_id": ""},
        {"energy_kwh": -1.0},
        {"modules_produced": "ten"},
        {"materials": {"solar_glass": {"consumption": -2.0}}},
        {"timestamp": "yesterday"},
    ],
)
def test_bad_batches_are_dropped_with_an_error_event(
    footprint: BatchFootprint, recorder: Recorder, change: dict[str, Any]
) -> None:
    assert footprint.on_batch_end({**BATCH, **change}) is None
    assert recorder.kpis == []
    [event] = recorder.events
    assert isinstance(event, ErrorEvent) and event.source == "lca"
    assert footprint.rejected == 1 and footprint.processed == 0


def test_defaults_when_optional_fields_are_missing(
    footprint: BatchFootprint, recorder: Recorder
) -> None:
    footprint.on_batch_end({"batch_id": "B-8", "energy_consumption": 10.0})
    [(_, fields, tags, timestamp_ns)] = recorder.kpis
    assert fields["total"] == pytest.approx(5.0)  # 10 kWh * 0.5, no materials
    assert fields["per_module"] == 0.0
    assert tags == {"batch_id": "B-8"}
    assert timestamp_ns > 1740407422 * 10**9
