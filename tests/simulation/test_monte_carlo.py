"""The vectorized Monte Carlo summary: shape, agreement with the list path, spread, breaches."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from circman5.adapters.config.thresholds import ThresholdRule
from circman5.errors import InvalidInputError
from circman5.manufacturing.digital_twin.simulation.simulation_engine import SimulationEngine

MakeState = Callable[..., dict[str, Any]]


def value(state: dict[str, Any], path: str) -> float:
    node: Any = state
    for part in path.split("."):
        node = node.get(part, 0.0) if isinstance(node, dict) else 0.0
    return float(node)


def test_summary_shape(engine: SimulationEngine, make_state: MakeState) -> None:
    summary = engine.run_monte_carlo_summary(12, make_state(), iterations=30, seed=1)
    assert summary.steps == 12 and summary.iterations == 30
    assert "production_line.temperature" in summary.paths
    assert "materials.silicon_wafer.consumption" in summary.paths
    for array in (summary.mean, summary.p5, summary.p50, summary.p95):
        assert array.shape == (len(summary.paths), 13)
    series = summary.series("environment.humidity")
    assert np.all(series.p5 <= series.p50) and np.all(series.p50 <= series.p95)
    assert set(summary.breach) == {
        "production_line.temperature",
        "production_line.energy_consumption",
        "production_line.production_rate",
        "environment.temperature",
        "environment.humidity",
    }
    json.dumps(summary.to_dict())
    with pytest.raises(KeyError):
        summary.series("production_line.nothing")


@pytest.mark.parametrize("uncertainty", [0.0, 0.3])
def test_one_iteration_equals_the_list_path(
    engine: SimulationEngine, make_state: MakeState, uncertainty: float
) -> None:
    state = make_state(temperature=26.0)
    state["materials"]["silicon_wafer"]["inventory"] = 40  # starves within the run
    params = {"production_line.cycle_time": 24.0, "production_line.target_temperature": 21.0}
    runs = engine.run_monte_carlo_simulation(
        60, state, params, iterations=1, uncertainty=uncertainty, seed=17
    )
    summary = engine.run_monte_carlo_summary(
        60, state, params, iterations=1, uncertainty=uncertainty, seed=17
    )
    states = runs[0]["states"]
    for path in summary.paths:
        expected = [value(s, path) for s in states]
        assert summary.series(path).mean.tolist() == expected, path


def test_summary_agrees_statistically_with_the_list_path(
    engine: SimulationEngine, make_state: MakeState
) -> None:
    state = make_state(temperature=28.0)
    runs = engine.run_monte_carlo_simulation(30, state, iterations=400, uncertainty=0.2, seed=1)
    summary = engine.run_monte_carlo_summary(30, state, iterations=4000, uncertainty=0.2, seed=2)
    for path in ("production_line.temperature", "production_line.energy_consumption"):
        finals = np.array([value(r["states"][-1], path) for r in runs])
        series = summary.series(path)
        spread = series.p95[-1] - series.p5[-1]
        assert abs(finals.mean() - series.mean[-1]) < 0.1 * spread + 1e-9
        assert abs(np.percentile(finals, 95) - series.p95[-1]) < 0.2 * spread + 1e-9


def test_percentiles_widen_with_uncertainty(
    engine: SimulationEngine, make_state: MakeState
) -> None:
    state = make_state(temperature=30.0)
    params = {"production_line.cycle_time": 28.0}
    widths = []
    for uncertainty in (0.0, 0.05, 0.1, 0.3):
        summary = engine.run_monte_carlo_summary(
            20, state, params, iterations=2000, uncertainty=uncertainty, seed=5
        )
        widths.append(
            (
                summary.band_width("production_line.temperature")[10],
                summary.band_width("production_line.production_rate")[20],
                summary.band_width("materials.silicon_wafer.consumption")[20],
            )
        )
    for column in zip(*widths, strict=True):
        assert list(column) == sorted(column)
        assert column[-1] > 2 * column[0]


def test_parameter_variation_spreads_the_starting_state(
    engine: SimulationEngine, make_state: MakeState
) -> None:
    summary = engine.run_monte_carlo_summary(
        5, make_state(), {"production_line.temperature": 25.0}, iterations=1000, seed=1
    )
    start = summary.series("production_line.temperature")
    assert 22.5 <= start.p5[0] < 23.5 and 26.5 < start.p95[0] <= 27.5
    assert start.mean[0] == pytest.approx(25.0, abs=0.15)


def test_stable_line_far_from_limits_never_breaches(
    engine: SimulationEngine, make_state: MakeState
) -> None:
    summary = engine.run_monte_carlo_summary(50, make_state(), iterations=500, seed=3)
    for breach in summary.breach.values():
        assert breach.probability == 0.0
        assert breach.first_step("exceed", 0.5) is None


def test_target_beyond_the_limit_breaches_with_high_probability(
    engine: SimulationEngine, make_state: MakeState
) -> None:
    summary = engine.run_monte_carlo_summary(
        40, make_state(target_temperature=30.0), iterations=500, seed=3
    )
    breach = summary.breach["production_line.temperature"]
    assert breach.high == 27.0
    assert breach.probability > 0.95
    assert breach.probability_of("exceed") == breach.probability
    assert breach.probability_of("fall below") == 0.0
    within = breach.exceed_within
    assert within[0] == 0.0 and np.all(np.diff(within) >= 0)
    first = breach.first_step("exceed", 0.5)
    assert first is not None and 5 <= first <= 15  # 22.5 -> 27 at 10 % per step: ~9 steps
    assert within[first] >= 0.5 > within[first - 1]
    assert breach.exceed[first] >= 0.5


def test_low_limit_breach(engine: SimulationEngine, make_state: MakeState) -> None:
    summary = engine.run_monte_carlo_summary(
        40, make_state(target_temperature=14.0), iterations=300, seed=3
    )
    breach = summary.breach["production_line.temperature"]
    assert breach.probability_of("fall below") > 0.95
    assert breach.probability_of("exceed") == 0.0


def test_custom_thresholds_and_unmodelled_paths(
    engine: SimulationEngine, make_state: MakeState
) -> None:
    rules = {
        "production_line.pressure": ThresholdRule("production_line.pressure", 0.5, 1.0),
        "materials.silicon_wafer.inventory": ThresholdRule(
            "materials.silicon_wafer.inventory", 800.0, None
        ),
        "production_line.not_there": ThresholdRule("production_line.not_there", 0.0, 1.0),
    }
    summary = engine.run_monte_carlo_summary(
        30, make_state(pressure=1.2), iterations=50, seed=1, thresholds=rules
    )
    assert set(summary.breach) == {"production_line.pressure", "materials.silicon_wafer.inventory"}
    assert summary.breach["production_line.pressure"].probability == 1.0  # constant, above 1.0
    inventory = summary.breach["materials.silicon_wafer.inventory"]
    assert inventory.probability == 1.0  # 850 wafers minus ~4 per step falls below 800
    assert inventory.fall_below_within[5] == 0.0


def test_summary_rejects_bad_state_values(engine: SimulationEngine, make_state: MakeState) -> None:
    with pytest.raises(InvalidInputError, match="energy_consumption"):
        engine.run_monte_carlo_summary(5, make_state(energy_consumption=float("nan")), iterations=3)
