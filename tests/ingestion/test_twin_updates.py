"""One update from the engine to the twin, its checks and its listeners: the TwinUpdate."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from circman5.adapters.config.thresholds import ThresholdRule
from circman5.manufacturing.digital_twin.core.synchronization import SynchronizationEngine
from circman5.manufacturing.digital_twin.core.twin_core import DigitalTwin
from circman5.manufacturing.digital_twin.event_notification.event_manager import event_manager
from circman5.manufacturing.digital_twin.event_notification.event_types import (
    Event,
    ThresholdEvent,
)
from circman5.samples import Quality
from circman5.state_paths import flatten
from circman5.twin_update import TwinUpdate
from tests.ingestion.conftest import Clock, RecordingReporter, sample


def engine_for(twin: DigitalTwin, **kwargs: Any) -> SynchronizationEngine:
    return SynchronizationEngine(twin, clock=Clock(), **kwargs)


async def test_listeners_get_the_update_the_twin_applied(twin: DigitalTwin) -> None:
    seen: list[TwinUpdate] = []
    engine = engine_for(twin)
    engine.add_update_listener(seen.append)
    engine.ingest(
        [
            sample("production_line.temperature", 23.5),
            sample("environment.humidity", 41.0),
            sample("materials.silicon_wafer.inventory", 12.0, Quality.BAD),
        ]
    )
    await engine.tick()
    assert len(seen) == 1
    update = seen[0]
    # the flat view: the values by dotted path, the quality changes apart
    assert dict(update.flat) == {"production_line.temperature": 23.5, "environment.humidity": 41.0}
    assert dict(update.qualities) == {
        "production_line.temperature": "good",
        "environment.humidity": "good",
        "materials.silicon_wafer.inventory": "bad",
    }
    # the twin stored exactly this update's timestamp
    state = twin.get_current_state()
    assert update.timestamp == state["timestamp"]
    assert update.epoch == datetime.fromisoformat(state["timestamp"]).timestamp()  # exactly
    # the nested view is the spec's shape, the one the state took
    assert update["production_line"] == {"temperature": 23.5}
    assert update.nested["quality"]["materials.silicon_wafer.inventory"] == "bad"
    assert state["production_line"]["temperature"] == 23.5
    assert state["quality"] == update.nested["quality"]
    assert update.section("environment") == {"humidity": 41.0}
    assert update.section("nothing") is None
    # leaves(): what the old consumers flattened out of the nested dict themselves
    expected = flatten(update.nested)
    del expected["timestamp"]
    assert update.leaves() == expected


async def test_an_update_cannot_be_changed_by_a_listener(twin: DigitalTwin) -> None:
    seen: list[TwinUpdate] = []
    engine = engine_for(twin)
    engine.add_update_listener(seen.append)
    engine.ingest([sample("production_line.temperature", 23.5)])
    await engine.tick()
    update = seen[0]
    with pytest.raises(TypeError):
        update.flat["production_line.temperature"] = 99.0  # type: ignore[index]
    with pytest.raises(TypeError):
        update.qualities["production_line.temperature"] = "bad"  # type: ignore[index]
    with pytest.raises(AttributeError):
        update.extra = 1  # type: ignore[attr-defined]
    assert twin.get_current_state()["production_line"]["temperature"] == 23.5


async def test_thresholds_and_forecast_see_the_flat_paths(twin: DigitalTwin) -> None:
    events: list[Event] = []
    event_manager.subscribe(events.append)
    twin.thresholds["environment.humidity"] = ThresholdRule(
        path="environment.humidity", low=20.0, high=60.0
    )
    engine = engine_for(twin)
    engine.ingest([sample("environment.humidity", 75.0)])
    await engine.tick()
    event_manager.flush()
    breaches = [e for e in events if isinstance(e, ThresholdEvent)]
    assert [e.details["parameter_path"] for e in breaches] == ["environment.humidity"]
    assert breaches[0].details["state_timestamp"] == twin.get_current_state()["timestamp"]
    assert twin.active_alarms == {"environment.humidity": "high"}


def test_the_spec_nested_dict_still_updates_the_twin(twin: DigitalTwin) -> None:
    stamp = datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC)
    assert twin.update({"timestamp": stamp, "production_line": {"temperature": 24.0}})
    state = twin.get_current_state()
    assert state["production_line"]["temperature"] == 24.0
    assert state["timestamp"] == stamp.isoformat()
    # an unreadable timestamp is rejected as before, not replaced by the time of day
    assert twin.update({"timestamp": 17, "production_line": {"temperature": 25.0}}) is False
    assert twin.get_current_state()["production_line"]["temperature"] == 24.0


def test_the_nested_view_is_the_spec_dict() -> None:
    data = {
        "timestamp": "2030-01-02T03:04:05+00:00",
        "production_line": {"temperature": 23.0, "status": "running"},
        "system_status": "running",
    }
    update = TwinUpdate(
        {
            "production_line.temperature": 23.0,
            "production_line.status": "running",
            "system_status": "running",
        },
        timestamp="2030-01-02T03:04:05+00:00",
    )
    assert dict(update.flat) == {
        "production_line.temperature": 23.0,
        "production_line.status": "running",
        "system_status": "running",
    }
    assert update.timestamp == "2030-01-02T03:04:05+00:00"
    assert update == data and dict(update) == data
    assert not TwinUpdate({}) and TwinUpdate({}, {"a.b": "stale"})


async def test_a_path_that_is_also_a_section_is_refused_in_any_tick(twin: DigitalTwin) -> None:
    reporter = RecordingReporter()
    engine = engine_for(twin, reporter=reporter)
    engine.ingest([sample("extra.a", 1.0)])
    await engine.tick()
    engine.ingest([sample("extra.a.b", 2.0), sample("extra.c", 3.0)])
    await engine.tick()
    engine.ingest([sample("extra.a.b", 4.0)])
    await engine.tick()
    state = twin.get_current_state()
    assert state["extra"] == {"a": 1.0, "c": 3.0}
    conflicts = reporter.of("PathConflict")
    assert len(conflicts) == 1 and "extra.a.b" in conflicts[0].message


async def test_the_batch_tracker_reads_the_engine_updates(twin: DigitalTwin) -> None:
    from circman5.service.batches import BatchTracker
    from circman5.settings import BatchTrackingSettings

    ended: list[dict[str, Any]] = []
    now = [0.0]
    tracker = BatchTracker(
        BatchTrackingSettings(settle_s=1.0), lambda batch: ended.append(dict(batch)), lambda: now[0]
    )
    engine = engine_for(twin)
    engine.add_update_listener(tracker.on_update)
    # the material message first, then the batch end (each in its own tick), as the MES may
    engine.ingest(
        [
            sample("materials.silicon_wafer.batch_id", "B-7"),
            sample("materials.silicon_wafer.consumption", 120.0),
            sample("materials.silicon_wafer.waste", 3.5),
        ]
    )
    await engine.tick()
    engine.ingest(
        [
            sample("batch.completed.batch_id", "B-7"),
            sample("batch.completed.modules_produced", 60),
            sample("batch.completed.energy_kwh", 410.0),
        ]
    )
    await engine.tick()
    assert tracker.flush_due() == 0  # waiting for late material messages
    now[0] = 2.0
    assert tracker.flush_due() == 1
    assert ended == [
        {
            "batch_id": "B-7",
            "modules_produced": 60.0,
            "energy_kwh": 410.0,
            "materials": {"silicon_wafer": {"consumption": 120.0, "waste": 3.5}},
        }
    ]


def test_the_nested_view_of_interleaved_sections_and_top_level_paths() -> None:
    values = {
        "line.tags.t1": 1.0,
        "line.tags.t2": 2.0,
        "system_status": "running",
        "line.speed": 3.0,
        "line.tags.t3": 3.0,  # back to a section seen before
        "environment.humidity": 40.0,
        "a.b.c.d": True,
    }
    nested = TwinUpdate(values).nested
    # the standard library's view: build the nested dict path by path
    expected: dict[str, Any] = {}
    for path, value in values.items():
        *sections, leaf = path.split(".")
        node = expected
        for part in sections:
            node = node.setdefault(part, {})
        node[leaf] = value
    assert nested == expected
    assert flatten(nested) == values


def test_the_nested_view_skips_a_path_through_a_value() -> None:
    update = TwinUpdate({"line.speed": 1.0, "line.speed.raw": 2.0, "line.tags.t1": 3.0})
    assert update.nested == {"line": {"speed": 1.0, "tags": {"t1": 3.0}}}
    # a value whose place a section already holds is skipped too (the section stays)
    update = TwinUpdate({"line.tags.t1": 3.0, "line.tags": 4.0, "line.speed": 1.0})
    assert update.nested == {"line": {"tags": {"t1": 3.0}, "speed": 1.0}}
