"""SimulationEngine: runs, parameters, determinism, the spec's Monte Carlo shape, bad input."""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from circman5.errors import InvalidInputError
from circman5.manufacturing.digital_twin.simulation.simulation_engine import (
    MAX_ITERATIONS,
    MAX_STEPS,
    SimulationEngine,
)

MakeState = Callable[..., dict[str, Any]]


class StandInStateManager:
    """The one StateManager method the engine uses, counting the calls."""

    def __init__(self, state: dict[str, Any]) -> None:
        self.state = state
        self.calls = 0

    def get_current_state(self) -> dict[str, Any]:
        self.calls += 1
        return self.state  # the live object itself: the engine must not touch it


def test_run_returns_steps_plus_one_states_initial_first(
    engine: SimulationEngine, make_state: MakeState
) -> None:
    state = make_state()
    states = engine.run_simulation(steps=10, initial_state=state, seed=1)
    assert len(states) == 11
    assert states[0] == state
    assert states[0] is not state
    stamps = [s["timestamp"] for s in states]
    assert stamps == sorted(stamps) and len(set(stamps)) == 11


def test_zero_steps_and_default_steps(engine: SimulationEngine, make_state: MakeState) -> None:
    assert len(engine.run_simulation(0, make_state())) == 1
    assert len(engine.run_simulation(None, make_state())) == 1 + 10  # default_simulation_steps


def test_live_state_is_never_touched(make_state: MakeState) -> None:
    live = make_state()
    before = copy.deepcopy(live)
    manager = StandInStateManager(live)
    engine = SimulationEngine(manager)
    states = engine.run_simulation(
        20, parameters={"production_line.temperature": 26.0, "materials.solar_glass.inventory": 3}
    )
    assert manager.calls == 1
    assert live == before
    assert states[0]["production_line"]["temperature"] == 26.0
    # mutating results does not reach the live state
    states[0]["production_line"]["temperature"] = -1.0
    states[0]["materials"]["silicon_wafer"]["inventory"] = -1.0
    states[-1]["environment"]["humidity"] = -1.0
    assert live == before
    engine.run_monte_carlo_simulation(5, iterations=3, parameters={"environment.humidity": 50})
    engine.run_monte_carlo_summary(5, iterations=3)
    assert live == before
    assert manager.calls == 3


def test_initial_state_given_means_state_manager_not_asked(make_state: MakeState) -> None:
    manager = StandInStateManager(make_state())
    SimulationEngine(manager).run_simulation(3, make_state())
    assert manager.calls == 0


def test_no_state_at_all_is_an_error(engine: SimulationEngine) -> None:
    with pytest.raises(ValueError, match="no initial_state"):
        engine.run_simulation(3)


# -- determinism ---------------------------------------------------------------------------------
def test_same_seed_same_trajectory_different_seed_differs(
    engine: SimulationEngine, make_state: MakeState
) -> None:
    a = engine.run_simulation(50, make_state(), seed=42)
    b = SimulationEngine(None).run_simulation(50, make_state(), seed=42)
    c = engine.run_simulation(50, make_state(), seed=43)
    assert a == b
    assert a != c
    assert a[-1]["production_line"]["temperature"] != c[-1]["production_line"]["temperature"]


def test_generator_seeds_are_deterministic(engine: SimulationEngine, make_state: MakeState) -> None:
    a = engine.run_simulation(30, make_state(), seed=np.random.default_rng(9))
    b = engine.run_simulation(30, make_state(), rng=np.random.default_rng(9))
    c = SimulationEngine(None, rng=np.random.default_rng(9)).run_simulation(30, make_state())
    assert a == b == c


def test_monte_carlo_is_deterministic_with_a_seed(
    engine: SimulationEngine, make_state: MakeState
) -> None:
    params = {"production_line.cycle_time": 25.0}
    a = engine.run_monte_carlo_simulation(10, make_state(), params, iterations=5, seed=3)
    b = engine.run_monte_carlo_simulation(10, make_state(), params, iterations=5, seed=3)
    assert a == b
    s1 = engine.run_monte_carlo_summary(10, make_state(), params, iterations=50, seed=3)
    s2 = engine.run_monte_carlo_summary(10, make_state(), params, iterations=50, seed=3)
    assert np.array_equal(s1.p95, s2.p95)


# -- parameters ----------------------------------------------------------------------------------
def test_parameters_are_applied_to_the_initial_state(
    engine: SimulationEngine, make_state: MakeState
) -> None:
    states = engine.run_simulation(
        60,
        make_state(),
        {
            "production_line.temperature": 24.0,
            "production_line.target_temperature": 25.0,
            "production_line.cycle_time": 24.0,
            "materials.silicon_wafer.inventory": 2000,
            "environment.humidity": 55.0,
        },
        seed=1,
    )
    first = states[0]
    assert first["production_line"]["temperature"] == 24.0
    assert first["production_line"]["target_temperature"] == 25.0
    assert first["production_line"]["cycle_time"] == 24.0
    assert first["materials"]["silicon_wafer"]["inventory"] == 2000.0
    assert first["environment"]["humidity"] == 55.0
    assert states[-1]["production_line"]["temperature"] == pytest.approx(25.0, abs=0.3)
    assert states[-1]["production_line"]["production_rate"] == pytest.approx(10.0, abs=0.3)


def test_status_parameter_stops_the_line(engine: SimulationEngine, make_state: MakeState) -> None:
    final = engine.run_simulation(5, make_state(), {"production_line.status": "idle"}, seed=1)[-1]
    assert final["production_line"]["status"] == "idle"
    assert final["materials"]["silicon_wafer"]["inventory"] == 850


def test_existing_numeric_paths_are_accepted(
    engine: SimulationEngine, make_state: MakeState
) -> None:
    state = make_state(pressure=1.0)
    states = engine.run_simulation(2, state, {"production_line.pressure": 1.2})
    assert states[0]["production_line"]["pressure"] == 1.2


def test_apply_parameters_copies_only_what_changes(
    engine: SimulationEngine, make_state: MakeState
) -> None:
    state = make_state()
    before = copy.deepcopy(state)
    new = engine._apply_parameters(state, {"production_line.temperature": 23.0})
    assert state == before
    assert new["production_line"]["temperature"] == 23.0
    assert new["production_line"] is not state["production_line"]
    assert new["materials"] is state["materials"]


def test_simulate_next_state(engine: SimulationEngine, make_state: MakeState) -> None:
    state = make_state()
    nxt = engine._simulate_next_state(state)
    assert nxt["timestamp"] > state["timestamp"]
    assert nxt["materials"]["silicon_wafer"]["inventory"] < 850
    assert state == make_state()


# -- the spec's Monte Carlo ----------------------------------------------------------------------
def test_monte_carlo_spec_shape(engine: SimulationEngine, make_state: MakeState) -> None:
    params = {"production_line.temperature": 24.0, "production_line.status": "running"}
    runs = engine.run_monte_carlo_simulation(
        steps=7,
        initial_state=make_state(),
        parameters=params,
        iterations=20,
        uncertainty=0.1,
        seed=1,
    )
    assert [r["iteration"] for r in runs] == list(range(20))
    for run in runs:
        assert set(run) == {"iteration", "parameters", "states"}
        assert len(run["states"]) == 8
        varied = run["parameters"]["production_line.temperature"]
        assert 24.0 * 0.9 <= varied <= 24.0 * 1.1
        assert run["parameters"]["production_line.status"] == "running"
        assert run["states"][0]["production_line"]["temperature"] == varied
    assert len({r["parameters"]["production_line.temperature"] for r in runs}) == 20


def test_monte_carlo_without_parameters(engine: SimulationEngine, make_state: MakeState) -> None:
    runs = engine.run_monte_carlo_simulation(3, make_state(), iterations=4, seed=2)
    assert all(r["parameters"] is None for r in runs)
    finals = {r["states"][-1]["production_line"]["temperature"] for r in runs}
    assert len(finals) == 4  # each iteration has its own noise


# -- bad input -----------------------------------------------------------------------------------
BAD_PARAMETERS: list[Any] = [
    {"production_line.temprature": 24.0},  # typo: unknown path
    {"production_line": 24.0},  # not a leaf path
    {"nonsense": 1.0},
    {"production_line..temperature": 1.0},
    {"production_line.temperature": "24"},
    {"production_line.temperature": None},
    {"production_line.temperature": True},
    {"production_line.temperature": math.nan},
    {"production_line.temperature": math.inf},
    {"production_line.temperature": 1e9},
    {"production_line.efficiency": 1.5},
    {"production_line.cycle_time": 0.0},
    {"materials.silicon_wafer.inventory": -1},
    {"environment.humidity": 120.0},
    {"production_line.status": "flying"},
    {"production_line.status": 1},
    {"system_status.temperature": 3.0},  # through a non-section
    [("production_line.temperature", 24.0)],  # not a mapping
]


@pytest.mark.parametrize("parameters", BAD_PARAMETERS)
def test_bad_parameters_raise_and_change_nothing(make_state: MakeState, parameters: Any) -> None:
    live = make_state()
    before = copy.deepcopy(live)
    engine = SimulationEngine(StandInStateManager(live), rng=np.random.default_rng(0))
    rng_before = copy.deepcopy(engine._rng.bit_generator.state)
    with pytest.raises(ValueError) as info:
        engine.run_simulation(5, parameters=parameters)
    assert isinstance(info.value, InvalidInputError)
    assert str(info.value)
    with pytest.raises(ValueError):
        engine.run_monte_carlo_simulation(5, parameters=parameters, iterations=2)
    with pytest.raises(ValueError):
        engine.run_monte_carlo_summary(5, parameters=parameters, iterations=2)
    assert live == before
    assert engine._rng.bit_generator.state == rng_before


@pytest.mark.parametrize(
    ("kwargs", "reason"),
    [
        ({"steps": -1}, "steps"),
        ({"steps": MAX_STEPS + 1}, "steps"),
        ({"steps": 2.5}, "steps"),
        ({"steps": True}, "steps"),
        ({"steps": "10"}, "steps"),
        ({"seed": -3}, "seed"),
        ({"seed": "abc"}, "seed"),
        ({"seed": 1.5}, "seed"),
        ({"seed": 1, "rng": np.random.default_rng(1)}, "seed or rng"),
        ({"rng": 5}, "rng"),
    ],
)
def test_bad_run_arguments(
    engine: SimulationEngine, make_state: MakeState, kwargs: dict[str, Any], reason: str
) -> None:
    with pytest.raises(InvalidInputError, match=reason):
        engine.run_simulation(initial_state=make_state(), **kwargs)


@pytest.mark.parametrize(
    ("kwargs", "reason"),
    [
        ({"iterations": 0}, "iterations"),
        ({"iterations": -5}, "iterations"),
        ({"iterations": MAX_ITERATIONS + 1}, "iterations"),
        ({"iterations": 10.0}, "iterations"),
        ({"uncertainty": -0.1}, "uncertainty"),
        ({"uncertainty": 1.5}, "uncertainty"),
        ({"uncertainty": math.nan}, "uncertainty"),
        ({"uncertainty": "high"}, "uncertainty"),
        ({"steps": 10_000, "iterations": 1000}, "states"),  # list path: too many states
    ],
)
def test_bad_monte_carlo_arguments(
    engine: SimulationEngine, make_state: MakeState, kwargs: dict[str, Any], reason: str
) -> None:
    with pytest.raises(InvalidInputError, match=reason):
        engine.run_monte_carlo_simulation(initial_state=make_state(), **kwargs)


@pytest.mark.parametrize(
    ("kwargs", "reason"),
    [
        ({"iterations": 0}, "iterations"),
        ({"steps": 100_001}, "steps"),
        ({"steps": 100_000, "iterations": 10_000}, "steps \\* iterations"),
        ({"uncertainty": 2.0}, "uncertainty"),
    ],
)
def test_bad_summary_arguments(
    engine: SimulationEngine, make_state: MakeState, kwargs: dict[str, Any], reason: str
) -> None:
    with pytest.raises(InvalidInputError, match=reason):
        engine.run_monte_carlo_summary(initial_state=make_state(), **kwargs)


def test_initial_state_must_be_a_mapping(engine: SimulationEngine) -> None:
    with pytest.raises(InvalidInputError, match="mapping"):
        engine.run_simulation(3, initial_state=[1, 2, 3])  # type: ignore[arg-type]
