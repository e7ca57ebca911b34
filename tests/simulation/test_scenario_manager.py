"""ScenarioManager: CRUD, runs, side-by-side comparison, limits, restarts.

Tests taking ``manager`` or ``twin_backend`` run against both backends (SQLite, PostgreSQL)."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from circman5.errors import InvalidInputError
from circman5.manufacturing.digital_twin.simulation.scenario_manager import (
    ScenarioLimitError,
    ScenarioManager,
    ScenarioNotFoundError,
    trajectory_kpis,
)
from circman5.manufacturing.digital_twin.simulation.simulation_engine import SimulationEngine
from tests.fixtures.databases import TwinBackend

MakeState = Callable[..., dict[str, Any]]


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "scenarios.db"


@pytest.fixture
def manager(engine: SimulationEngine, twin_backend: TwinBackend) -> ScenarioManager:
    return twin_backend.scenarios(engine=engine)


def test_default_location_is_under_the_data_dir(isolated_data_dir: Path) -> None:
    manager = ScenarioManager()
    assert manager.db_path == isolated_data_dir / "twin" / "scenarios.db"
    assert manager.db_path.exists()
    assert manager.max_scenarios == 100


def test_tables_follow_the_manual(engine: SimulationEngine, db: Path) -> None:
    manager = ScenarioManager(engine=engine, db_path=db)
    assert manager.db_path is not None
    with sqlite3.connect(manager.db_path) as conn:
        columns = {
            table: [row[1] for row in conn.execute(f"PRAGMA table_info({table})")]
            for table in ("scenarios", "simulations")
        }
    assert columns["scenarios"] == [
        "id",
        "name",
        "description",
        "parameters",
        "created_at",
        "updated_at",
    ]
    assert columns["simulations"] == [
        "id",
        "timestamp",
        "parameters",
        "results",
        "duration",
        "steps",
    ]


def test_crud(manager: ScenarioManager) -> None:
    hot = manager.create_scenario(
        "hot line", {"production_line.target_temperature": 26.0}, "a warmer hall"
    )
    fast = manager.create_scenario("fast", {"production_line.cycle_time": 25})
    assert hot.parameters == {"production_line.target_temperature": 26.0}
    assert fast.parameters == {"production_line.cycle_time": 25.0}
    assert [s.name for s in manager.list_scenarios()] == ["hot line", "fast"]
    assert manager.get_scenario("hot line") == hot
    assert manager.get_scenario(hot.id) == hot

    updated = manager.update_scenario(
        "hot line", parameters={"production_line.target_temperature": 27.0}
    )
    assert updated.parameters == {"production_line.target_temperature": 27.0}
    assert updated.description == "a warmer hall"
    assert updated.created_at == hot.created_at and updated.updated_at >= hot.updated_at
    renamed = manager.update_scenario("hot line", new_name="very hot", description="hotter")
    assert renamed.id == hot.id and renamed.name == "very hot" and renamed.description == "hotter"
    with pytest.raises(ScenarioNotFoundError):
        manager.get_scenario("hot line")

    manager.delete_scenario("very hot")
    assert [s.name for s in manager.list_scenarios()] == ["fast"]
    with pytest.raises(ScenarioNotFoundError):
        manager.delete_scenario("very hot")
    with pytest.raises(LookupError):
        manager.get_scenario("very hot")


def test_scenarios_survive_a_restart(engine: SimulationEngine, twin_backend: TwinBackend) -> None:
    first = twin_backend.scenarios(engine=engine)
    created = first.create_scenario("keep me", {"environment.humidity": 50.0}, "persisted")
    del first
    second = twin_backend.scenarios(engine=engine)
    assert second.list_scenarios() == [created]
    assert second.get_scenario("keep me").description == "persisted"


def test_max_scenarios_is_enforced(engine: SimulationEngine, twin_backend: TwinBackend) -> None:
    manager = twin_backend.scenarios(engine=engine, max_scenarios=2)
    manager.create_scenario("a", {})
    manager.create_scenario("b", {})
    with pytest.raises(ScenarioLimitError, match="limit of 2 scenarios") as info:
        manager.create_scenario("c", {})
    assert isinstance(info.value, ValueError)
    assert [s.name for s in manager.list_scenarios()] == ["a", "b"]
    manager.delete_scenario("a")
    manager.create_scenario("c", {})
    assert [s.name for s in manager.list_scenarios()] == ["b", "c"]


@pytest.mark.parametrize(
    ("name", "parameters", "description"),
    [
        ("bad path", {"production_line.temprature": 1.0}, ""),
        ("bad value", {"production_line.temperature": "warm"}, ""),
        ("nan", {"production_line.temperature": float("nan")}, ""),
        ("bool", {"production_line.cycle_time": True}, ""),
        ("range", {"production_line.defect_rate": 2.0}, ""),
        ("", {}, ""),
        ("   ", {}, ""),
        ("x" * 201, {}, ""),
        ("bad description", {}, 42),
    ],
)
def test_bad_scenarios_are_rejected_and_nothing_is_stored(
    manager: ScenarioManager, name: str, parameters: dict[str, Any], description: Any
) -> None:
    with pytest.raises(ValueError):
        manager.create_scenario(name, parameters, description)
    assert manager.list_scenarios() == []


def test_duplicate_names_and_bad_updates(manager: ScenarioManager) -> None:
    manager.create_scenario("a", {"production_line.cycle_time": 30.0})
    manager.create_scenario("b", {})
    with pytest.raises(InvalidInputError, match="already exists"):
        manager.create_scenario("a", {})
    with pytest.raises(InvalidInputError, match="already exists"):
        manager.update_scenario("b", new_name="a")
    with pytest.raises(InvalidInputError):
        manager.update_scenario("a", parameters={"production_line.cycle_time": -1.0})
    with pytest.raises(ScenarioNotFoundError):
        manager.update_scenario("zzz", description="x")
    assert manager.get_scenario("a").parameters == {"production_line.cycle_time": 30.0}
    assert len(manager.list_scenarios()) == 2


def test_run_scenario_stores_the_simulation(
    manager: ScenarioManager, make_state: MakeState
) -> None:
    manager.create_scenario("slow", {"production_line.cycle_time": 40.0})
    run = manager.run_scenario("slow", steps=30, initial_state=make_state(), seed=4)
    assert len(run.states) == 31 and run.steps == 30 and run.seed == 4
    assert run.states[0]["production_line"]["cycle_time"] == 40.0
    assert run.kpis["total_output"] == pytest.approx(
        sum(s["production_line"]["production_rate"] for s in run.states[1:])
    )
    stored = manager.get_simulation(run.simulation_id)
    assert stored["steps"] == 30
    assert stored["parameters"] == {"production_line.cycle_time": 40.0}
    assert stored["results"]["scenario"] == "slow"
    assert stored["results"]["seed"] == 4
    assert stored["results"]["kpis"] == run.kpis  # JSON keeps floats exactly
    assert len(stored["results"]["states"]) == 31
    assert [s["id"] for s in manager.list_simulations()] == [run.simulation_id]
    again = manager.run_scenario("slow", steps=30, initial_state=make_state(), seed=4)
    assert again.states == run.states  # the stored seed reproduces the run
    with pytest.raises(ScenarioNotFoundError):
        manager.get_simulation("nope")


def test_long_runs_store_kpis_but_not_every_state(
    engine: SimulationEngine, twin_backend: TwinBackend, make_state: MakeState
) -> None:
    manager = twin_backend.scenarios(engine=engine, store_states_limit=10)
    manager.create_scenario("base", {})
    run = manager.run_scenario("base", steps=50, initial_state=make_state(), seed=1)
    results = manager.get_simulation(run.simulation_id)["results"]
    assert results["states"] is None
    assert results["final_state"]["timestamp"] == run.states[-1]["timestamp"]


def test_run_scenario_from_the_live_state(twin_backend: TwinBackend, make_state: MakeState) -> None:
    class Live:
        def get_current_state(self) -> dict[str, Any]:
            return make_state(temperature=25.0)

    manager = twin_backend.scenarios(engine=SimulationEngine(Live()))
    manager.create_scenario("base", {})
    run = manager.run_scenario("base", steps=3, seed=1)
    assert run.states[0]["production_line"]["temperature"] == 25.0


def test_compare_scenarios_side_by_side(manager: ScenarioManager, make_state: MakeState) -> None:
    manager.create_scenario("baseline", {})
    manager.create_scenario("same as baseline", {"production_line.cycle_time": 30.0})
    manager.create_scenario(
        "fast and hot",
        {"production_line.cycle_time": 22.0, "production_line.target_temperature": 27.0},
    )
    comparison = manager.compare_scenarios(
        ["baseline", "same as baseline", "fast and hot"], steps=40, initial_state=make_state()
    )
    base = comparison.kpis["baseline"]
    same = comparison.kpis["same as baseline"]
    fast = comparison.kpis["fast and hot"]
    # common random numbers: identical parameters give identical KPIs
    assert same == base
    assert fast["total_output"] > base["total_output"]
    assert fast["total_energy"] > base["total_energy"]
    assert fast["final_temperature"] > base["final_temperature"] + 3
    assert fast["mean_defect_rate"] > base["mean_defect_rate"]
    assert fast["material_use"]["silicon_wafer"] > base["material_use"]["silicon_wafer"]
    rows = {row["kpi"]: row for row in comparison.rows()}
    assert {"final_temperature", "total_energy", "total_output", "mean_defect_rate"} <= set(rows)
    assert "material_use.silicon_wafer" in rows
    assert rows["total_output"]["fast and hot"] == fast["total_output"]
    assert comparison.to_dict()["scenarios"] == ["baseline", "same as baseline", "fast and hot"]
    assert len(manager.list_simulations()) == 3


def test_compare_filters_metrics_and_rejects_bad_requests(
    manager: ScenarioManager, make_state: MakeState
) -> None:
    manager.create_scenario("a", {})
    manager.create_scenario("b", {"production_line.cycle_time": 25.0})
    comparison = manager.compare_scenarios(
        ["a", "b"], metrics=["total_output"], steps=5, initial_state=make_state(), seed=1
    )
    assert comparison.kpis["a"].keys() == {"total_output"}
    with pytest.raises(ScenarioNotFoundError):
        manager.compare_scenarios(["a", "missing"], steps=5, initial_state=make_state())
    with pytest.raises(InvalidInputError, match="unknown KPI"):
        manager.compare_scenarios(["a"], metrics=["speed"], initial_state=make_state())
    with pytest.raises(InvalidInputError):
        manager.compare_scenarios([], initial_state=make_state())
    with pytest.raises(InvalidInputError):
        manager.compare_scenarios(["a", "a"], initial_state=make_state())
    assert len(manager.list_simulations()) == 2  # only the good comparison ran


def test_max_scenarios_must_be_sensible(db: Path) -> None:
    with pytest.raises(InvalidInputError):
        ScenarioManager(db_path=db, max_scenarios=0)


def test_trajectory_kpis_of_a_bare_state() -> None:
    kpis = trajectory_kpis([{"timestamp": "t"}])
    assert kpis["steps"] == 0
    assert kpis["final_temperature"] is None
    assert kpis["material_use"] == {}
    with pytest.raises(InvalidInputError):
        trajectory_kpis([])
