"""The plant model: deterministic, physical, and it reacts to setpoints the documented way."""

from __future__ import annotations

import pytest

from simulators.plant import (
    BatchEnded,
    BatchStarted,
    ModuleInspected,
    Plant,
    PlantConfig,
    PlantEvent,
    PlantRunner,
    Setpoints,
)
from simulators.tags import TAGS
from tests.simulators.helpers import eventually


def test_same_seed_same_values_different_seed_different_values() -> None:
    a, b, c = Plant(PlantConfig(seed=7)), Plant(PlantConfig(seed=7)), Plant(PlantConfig(seed=8))
    for plant in (a, b, c):
        plant.advance(600)
    assert a.snapshot() == b.snapshot()
    assert (
        a.snapshot()["production_line.temperature"] != c.snapshot()["production_line.temperature"]
    )


def test_snapshot_covers_the_catalog_and_stays_physical() -> None:
    plant = Plant(PlantConfig(seed=3, step_seconds=0.5))
    assert set(plant.snapshot()) == set(TAGS)
    for _ in range(36):  # six simulated hours, checked every ten minutes
        plant.advance(600)
        for path, value in plant.snapshot().items():
            tag = TAGS[path]
            assert isinstance(
                value, {"float": float, "int": int, "bool": bool, "str": str}[tag.kind]
            )
            if tag.kind == "float":
                assert tag.low is not None and tag.high is not None
                assert tag.low <= float(value) <= tag.high, (path, value)
    snap = plant.snapshot()
    assert 0.0 < float(snap["production_line.efficiency"]) <= 1.0
    assert 0.0 <= float(snap["production_line.defect_rate"]) < 0.1
    assert float(snap["materials.silicon_wafer.inventory"]) >= 0.0


def test_spec_state_structure() -> None:
    state = Plant().state()
    assert set(state) == {
        "timestamp",
        "system_status",
        "production_line",
        "materials",
        "environment",
    }
    assert set(state["production_line"]) == {
        "status",
        "temperature",
        "energy_consumption",
        "production_rate",
        "efficiency",
        "defect_rate",
    }
    assert set(state["materials"]) == {"silicon_wafer", "solar_glass"}
    assert set(state["materials"]["solar_glass"]) == {"inventory", "quality"}
    assert set(state["environment"]) == {"temperature", "humidity"}


def test_temperature_regulates_to_target_and_quality_worsens_off_optimum() -> None:
    plant = Plant(PlantConfig(seed=1))
    plant.advance(300)
    near = plant.snapshot()
    assert abs(float(near["production_line.temperature"]) - 22.5) < 1.0
    plant.set_setpoints(target_temperature=30.0)
    plant.advance(300)
    far = plant.snapshot()
    assert abs(float(far["production_line.temperature"]) - 30.0) < 1.0
    assert float(far["production_line.defect_rate"]) > float(near["production_line.defect_rate"])
    assert float(far["production_line.efficiency"]) < float(near["production_line.efficiency"])
    assert far["alarms.temperature"] is True


def test_cycle_time_sets_rate_and_stop_idles_the_line() -> None:
    plant = Plant(PlantConfig(seed=2))
    plant.advance(10)
    assert float(plant.snapshot()["production_line.production_rate"]) == pytest.approx(
        8.0, rel=0.05
    )
    plant.set_setpoints(cycle_time=20.0)
    plant.advance(10)
    assert float(plant.snapshot()["production_line.production_rate"]) == pytest.approx(
        12.0, rel=0.05
    )
    running_power = float(plant.snapshot()["production_line.energy_consumption"])
    plant.set_setpoints(running=False)
    plant.advance(10)
    snap = plant.snapshot()
    assert snap["production_line.status"] == "idle"
    assert snap["production_line.production_rate"] == 0.0
    assert float(snap["production_line.energy_consumption"]) < running_power - 50.0


def test_setpoints_outside_their_range_are_refused() -> None:
    plant = Plant()
    with pytest.raises(ValueError, match="target_temperature"):
        plant.set_setpoints(target_temperature=80.0)
    with pytest.raises(ValueError, match="cycle_time"):
        plant.set_setpoints(cycle_time=float("nan"))
    with pytest.raises(ValueError, match="cycle_time"):
        Plant(PlantConfig(setpoints=Setpoints(cycle_time=5.0)))
    assert plant.setpoints == Setpoints()


def test_batches_count_modules_and_material() -> None:
    plant = Plant(PlantConfig(seed=4, batch_size=10))
    events: list[PlantEvent] = []
    plant.subscribe(events.append)
    start_inventory = float(plant.snapshot()["materials.silicon_wafer.inventory"])
    plant.advance(200)  # 8 modules/min -> about 26 modules
    ended = [e.batch for e in events if isinstance(e, BatchEnded)]
    assert len(ended) >= 2
    first = ended[0]
    assert first.batch_id == "L1-00001" and first.modules_produced == 10
    assert first.modules_passed + first.modules_failed == 10
    assert first.end_time is not None and first.end_time >= first.start_time
    wafer = first.materials["silicon_wafer"]
    assert wafer.consumption == pytest.approx(10 * 0.5)
    assert 0.0 < wafer.waste <= wafer.consumption
    assert 0.0 < wafer.recycled < wafer.waste
    modules = [e for e in events if isinstance(e, ModuleInspected)]
    produced = plant.snapshot()["production_line.modules_produced"]
    assert len(modules) == produced
    consumed = start_inventory - float(plant.snapshot()["materials.silicon_wafer.inventory"])
    assert consumed == pytest.approx(0.5 * int(produced))


def test_explicit_batches() -> None:
    plant = Plant()
    events: list[PlantEvent] = []
    plant.subscribe(events.append)
    record = plant.start_batch("ORDER-42")
    assert record.batch_id == "ORDER-42" and plant.snapshot()["batch.id"] == "ORDER-42"
    plant.start_batch(None)  # ends ORDER-42, starts the next automatic id
    assert [type(e) for e in events] == [BatchStarted, BatchEnded, BatchStarted]
    ended = plant.end_batch()
    assert ended is not None and ended.batch_id == "L1-00002"
    assert plant.batch is None and plant.snapshot()["batch.id"] == ""
    with pytest.raises(ValueError, match="batch id"):
        plant.start_batch("x" * 100)


async def test_runner_advances_in_real_time_with_speed() -> None:
    plant = Plant(PlantConfig(speed=50.0))
    async with PlantRunner(plant) as runner:
        await eventually(lambda: plant.elapsed >= 10.0, "ten simulated seconds at 50x")
        assert runner.running
        runner.speed = 1.0
        assert runner.speed == 1.0
    assert not runner.running  # stopped with the context
