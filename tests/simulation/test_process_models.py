"""PVManufacturingModel: the physics of one step, physical ranges, custom models."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from circman5.adapters.config.simulation_parameters import SimulationParameters
from circman5.errors import InvalidInputError
from circman5.manufacturing.digital_twin.simulation.process_models import (
    PVManufacturingModel,
    as_step_function,
)
from circman5.manufacturing.digital_twin.simulation.simulation_engine import SimulationEngine

MakeState = Callable[..., dict[str, Any]]


def line(state: dict[str, Any]) -> dict[str, Any]:
    result: dict[str, Any] = state["production_line"]
    return result


# -- temperature ---------------------------------------------------------------------------------
@pytest.mark.parametrize("start", [12.0, 35.0])
def test_temperature_dynamics_converge_to_target_from_both_sides(start: float) -> None:
    model = PVManufacturingModel(rng=np.random.default_rng(1))
    temp = start
    distances = []
    for _ in range(120):
        temp = model.simulate_temperature_dynamics(temp, 22.5)
        distances.append(abs(temp - 22.5))
    assert distances[0] < abs(start - 22.5)
    assert distances[-1] < 0.3
    assert distances[10] > 1.0 > distances[40]


def test_temperature_dynamics_follow_the_spec_equation() -> None:
    model = PVManufacturingModel({"temperature_noise": 0.0, "temperature_regulation": 0.25})
    assert model.simulate_temperature_dynamics(30.0, 22.0) == pytest.approx(28.0)
    assert model.simulate_temperature_dynamics(14.0, 22.0) == pytest.approx(16.0)


@pytest.mark.parametrize("start", [15.0, 29.0])
def test_simulated_line_temperature_converges_to_the_setpoint(
    engine: SimulationEngine, make_state: MakeState, start: float
) -> None:
    states = engine.run_simulation(
        150, make_state(temperature=start, target_temperature=24.0), seed=3
    )
    temps = [line(s)["temperature"] for s in states]
    assert abs(temps[10] - 24.0) < abs(start - 24.0)
    assert all(abs(t - 24.0) < 0.4 for t in temps[-30:])
    # the approach is from the starting side: no overshoot beyond the noise
    if start < 24.0:
        assert max(temps[:20]) < 24.0
    else:
        assert min(temps[:20]) > 24.0


# -- materials -----------------------------------------------------------------------------------
def test_running_line_consumes_material_and_idle_line_does_not(
    engine: SimulationEngine, make_state: MakeState
) -> None:
    running = engine.run_simulation(20, make_state(status="running"), seed=1)[-1]
    idle = engine.run_simulation(20, make_state(status="idle"), seed=1)[-1]

    wafer = running["materials"]["silicon_wafer"]
    assert wafer["inventory"] < 850
    assert wafer["consumption"] == pytest.approx(850 - wafer["inventory"])
    assert 0 < wafer["waste"] < wafer["consumption"]
    assert 0 < wafer["recycled"] <= wafer["waste"]
    assert running["materials"]["solar_glass"]["inventory"] < 420

    for name, start in (("silicon_wafer", 850), ("solar_glass", 420)):
        entry = idle["materials"][name]
        assert entry["inventory"] == start
        assert entry["consumption"] == entry["waste"] == entry["recycled"] == 0.0
    assert line(idle)["production_rate"] == 0.0


def test_consumption_follows_the_configured_rates(
    engine: SimulationEngine, make_state: MakeState
) -> None:
    final = engine.run_simulation(30, make_state(), seed=2)[-1]
    wafer = final["materials"]["silicon_wafer"]["consumption"]
    glass = final["materials"]["solar_glass"]["consumption"]
    assert wafer / glass == pytest.approx(0.5 / 0.2)


def test_inventory_never_negative_and_a_starved_line_stops(
    engine: SimulationEngine, make_state: MakeState
) -> None:
    state = make_state()
    state["materials"]["silicon_wafer"]["inventory"] = 7
    states = engine.run_simulation(100, state, seed=5)
    inventories = [s["materials"]["silicon_wafer"]["inventory"] for s in states]
    assert min(inventories) >= 0.0
    assert inventories[-1] == 0.0
    final = states[-1]
    assert line(final)["production_rate"] == 0.0
    assert final["materials"]["silicon_wafer"]["consumption"] == pytest.approx(7.0)
    # glass is only drawn for modules that were made: 7 wafers / 0.5 per module * 0.2
    assert final["materials"]["solar_glass"]["consumption"] == pytest.approx(7 / 0.5 * 0.2)


# -- energy, rate, quality -----------------------------------------------------------------------
def test_energy_depends_on_status_and_load(engine: SimulationEngine, make_state: MakeState) -> None:
    def stocked(**values: Any) -> dict[str, Any]:
        state = make_state(**values)
        for entry in state["materials"].values():
            entry["inventory"] = 1e6  # no starving within the run
        return state

    running = engine.run_simulation(200, stocked(status="running"), seed=4)
    idle = engine.run_simulation(200, stocked(status="idle"), seed=4)
    fast = engine.run_simulation(200, stocked(status="running", cycle_time=22.0), seed=4)

    def settled(states: list[dict[str, Any]]) -> float:
        return float(np.mean([line(s)["energy_consumption"] for s in states[-50:]]))

    params = SimulationParameters()
    assert settled(idle) == pytest.approx(params.idle_power, abs=0.5)
    assert settled(running) > settled(idle) + 50
    assert settled(fast) > settled(running)


def test_production_rate_follows_the_cycle_time(
    engine: SimulationEngine, make_state: MakeState
) -> None:
    nominal = engine.run_simulation(100, make_state(), seed=1)[-1]
    faster = engine.run_simulation(100, make_state(cycle_time=20.0), seed=1)[-1]
    assert line(nominal)["production_rate"] == pytest.approx(8.0, abs=0.3)
    assert line(faster)["production_rate"] == pytest.approx(12.0, abs=0.3)


def test_efficiency_and_defects_worsen_away_from_the_target_temperature() -> None:
    model = PVManufacturingModel()
    assert model.efficiency_at(22.5) > model.efficiency_at(25.0) > model.efficiency_at(30.0)
    assert model.efficiency_at(20.0) == pytest.approx(model.efficiency_at(25.0))
    assert model.defect_rate_at(22.5) < model.defect_rate_at(25.0) < model.defect_rate_at(30.0)
    assert model.efficiency_at(500.0) == 0.0
    assert model.defect_rate_at(500.0) == 1.0


def test_hot_line_makes_more_defects(engine: SimulationEngine, make_state: MakeState) -> None:
    cool = engine.run_simulation(60, make_state(), seed=8)[-1]
    hot = engine.run_simulation(60, make_state(target_temperature=29.0), seed=8)[-1]
    assert line(hot)["defect_rate"] > 2 * line(cool)["defect_rate"]
    assert line(hot)["efficiency"] < line(cool)["efficiency"]
    assert hot["materials"]["silicon_wafer"]["waste"] > cool["materials"]["silicon_wafer"]["waste"]


def test_environment_drifts_back_to_ambient(
    engine: SimulationEngine, make_state: MakeState
) -> None:
    state = make_state()
    state["environment"] = {"temperature": 28.0, "humidity": 65.0}
    final = engine.run_simulation(200, state, seed=6)[-1]["environment"]
    assert final["temperature"] == pytest.approx(22.0, abs=0.8)
    assert final["humidity"] == pytest.approx(45.0, abs=3.0)


state_values = st.fixed_dictionaries(
    {
        "status": st.sampled_from(["running", "idle", "stopped"]),
        "temperature": st.floats(-20, 120),
        "target_temperature": st.floats(-20, 120),
        "energy_consumption": st.floats(0, 500),
        "production_rate": st.floats(0, 50),
        "efficiency": st.floats(0, 1),
        "defect_rate": st.floats(0, 1),
        "cycle_time": st.floats(0.5, 300),
    }
)


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    values=state_values,
    wafers=st.floats(0, 50),
    humidity=st.floats(0, 100),
    seed=st.integers(0, 2**32),
)
def test_values_stay_physical(
    engine: SimulationEngine,
    make_state: MakeState,
    values: dict[str, Any],
    wafers: float,
    humidity: float,
    seed: int,
) -> None:
    state = make_state(**values)
    state["materials"]["silicon_wafer"]["inventory"] = wafers
    state["environment"]["humidity"] = humidity
    for s in engine.run_simulation(60, state, seed=seed)[1:]:
        pl = s["production_line"]
        assert 0.0 <= pl["efficiency"] <= 1.0
        assert 0.0 <= pl["defect_rate"] <= 1.0
        assert pl["energy_consumption"] >= 0.0
        assert pl["production_rate"] >= 0.0
        assert 0.0 <= s["environment"]["humidity"] <= 100.0
        for entry in s["materials"].values():
            assert entry["inventory"] >= 0.0
            assert 0.0 <= entry["recycled"] <= entry["waste"] <= entry["consumption"] + 1e-9


# -- stepping ------------------------------------------------------------------------------------
def test_simulate_step_leaves_its_input_alone(make_state: MakeState) -> None:
    model = PVManufacturingModel()
    state = make_state()
    before = copy.deepcopy(state)
    nxt = model.simulate_step(state, np.random.default_rng(0))
    assert state == before
    assert nxt is not state
    assert nxt["production_line"] is not state["production_line"]
    assert nxt["timestamp"] == "2025-02-24T14:30:23.123456"


def test_stepping_one_at_a_time_equals_a_whole_run(
    engine: SimulationEngine, make_state: MakeState
) -> None:
    states = engine.run_simulation(25, make_state(temperature=27.0), seed=11)
    rng = np.random.default_rng(11)
    current = states[0]
    for expected in states[1:]:
        current = engine.model.simulate_step(current, rng)  # type: ignore[attr-defined]
        assert current == expected


def test_unmodelled_fields_pass_through(engine: SimulationEngine, make_state: MakeState) -> None:
    state = make_state()
    state["batch_id"] = "B-17"
    state["production_line"]["operator"] = "anna"
    state["quality_metrics"] = {"yield": 0.97}
    final = engine.run_simulation(5, state, seed=1)[-1]
    assert final["batch_id"] == "B-17"
    assert line(final)["operator"] == "anna"
    assert final["quality_metrics"] == {"yield": 0.97}


def test_non_numeric_modelled_value_in_the_state_is_rejected(
    engine: SimulationEngine, make_state: MakeState
) -> None:
    with pytest.raises(InvalidInputError, match=r"production_line\.temperature"):
        engine.run_simulation(3, make_state(temperature="hot"))


def test_model_parameters_are_validated() -> None:
    with pytest.raises(InvalidInputError, match="temperature_regulation"):
        PVManufacturingModel({"temperature_regulation": 3.0})
    with pytest.raises(InvalidInputError, match="no_such_key"):
        PVManufacturingModel({"no_such_key": 1.0})
    model = PVManufacturingModel({"temperature_regulation": 0.3})
    assert model.parameters["temperature_regulation"] == 0.3


# -- custom models (implementation guide 10.1) ---------------------------------------------------
class ReactionModel:
    """The guide's example: ``simulate_step(current_state)``."""

    def __init__(self) -> None:
        self.calls = 0

    def simulate_step(self, current_state: dict[str, Any]) -> dict[str, Any]:
        self.calls += 1
        nxt = dict(current_state)
        pl = dict(nxt["production_line"])
        pl["reaction_progress"] = min(pl.get("reaction_progress", 0.0) + 0.1, 1.0)
        nxt["production_line"] = pl
        return nxt


class NoisyModel:
    """A model taking the generator: ``simulate_step(current_state, rng)``."""

    def simulate_step(
        self, current_state: dict[str, Any], rng: np.random.Generator
    ) -> dict[str, Any]:
        nxt = dict(current_state)
        pl = dict(nxt["production_line"])
        pl["temperature"] = pl["temperature"] + float(rng.normal())
        nxt["production_line"] = pl
        return nxt


class MutatingModel:
    def simulate_step(self, current_state: dict[str, Any]) -> dict[str, Any]:
        current_state["production_line"]["temperature"] += 1
        return current_state


def test_custom_model_with_the_guides_signature(make_state: MakeState) -> None:
    model = ReactionModel()
    engine = SimulationEngine(None, model=model)
    states = engine.run_simulation(12, make_state(reaction_progress=0.0), seed=1)
    assert model.calls == 12
    assert [round(line(s)["reaction_progress"], 6) for s in states[:3]] == [0.0, 0.1, 0.2]
    assert line(states[-1])["reaction_progress"] == 1.0
    assert states[1]["timestamp"] == "2025-02-24T14:30:23.123456"


def test_custom_model_with_a_generator_is_reproducible(make_state: MakeState) -> None:
    engine = SimulationEngine(None)
    engine.register_model(NoisyModel())
    a = engine.run_simulation(10, make_state(), seed=5)
    b = engine.run_simulation(10, make_state(), seed=5)
    c = engine.run_simulation(10, make_state(), seed=6)
    assert a == b
    assert a != c


def test_custom_model_must_return_a_new_state(make_state: MakeState) -> None:
    engine = SimulationEngine(None, model=MutatingModel())
    with pytest.raises(TypeError, match="returned its input"):
        engine.run_simulation(2, make_state())
    with pytest.raises(TypeError, match="simulate_step"):
        as_step_function(object())


def test_custom_model_parameters_and_summary(make_state: MakeState) -> None:
    engine = SimulationEngine(None, model=ReactionModel())
    states = engine.run_simulation(
        3, make_state(reaction_progress=0.0), {"production_line.reaction_progress": 0.5}
    )
    assert line(states[0])["reaction_progress"] == 0.5
    summary = engine.run_monte_carlo_summary(
        4, make_state(reaction_progress=0.0), iterations=5, uncertainty=0.0, seed=1
    )
    assert summary.series("production_line.reaction_progress").mean[-1] == pytest.approx(0.4)
    assert summary.breach["production_line.temperature"].probability == 0.0


def test_long_runs_leave_the_garbage_collector_as_they_found_it(
    engine: SimulationEngine, make_state: MakeState
) -> None:
    import gc

    assert gc.isenabled()
    engine.run_simulation(6_000, make_state(), seed=1)
    assert gc.isenabled()
    gc.disable()
    try:
        engine.run_simulation(6_000, make_state(), seed=1)
        assert not gc.isenabled()
    finally:
        gc.enable()
