"""ProcessOptimizer: constraints, improvement on the model, determinism, infeasibility."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from circman5.manufacturing.optimization.model import ManufacturingModel
from circman5.manufacturing.optimization.optimizer import ProcessOptimizer
from circman5.manufacturing.optimization.surrogate import PolynomialSurrogate, sobol_design

# The spec's objective (technical manual 7.3): lower is better.
WEIGHTS = {"efficiency": -100.0, "energy_used": 0.1, "defect_rate": 1000.0}
SPEC_CONSTRAINTS = {
    "energy_used": [10.0, 100.0],
    "cycle_time": [20.0, 60.0],
    "defect_rate": [0.01, 0.1],
}
START = {"temperature": 25.5, "cycle_time": 50.0}


def objective_on_model(model: ManufacturingModel, params: Mapping[str, float]) -> float:
    """The objective, recomputed independently through the public prediction API."""
    predicted = model.predict_batch_outcomes(params)
    return sum(w * predicted[name] for name, w in WEIGHTS.items())


def within(value: float, bounds: list[float], slack: float = 1e-9) -> bool:
    return bounds[0] - slack <= value <= bounds[1] + slack


@pytest.fixture
def optimizer(trained_model: ManufacturingModel) -> ProcessOptimizer:
    return ProcessOptimizer(trained_model)


def test_answer_is_within_constraints_and_better_on_the_model(
    optimizer: ProcessOptimizer, trained_model: ManufacturingModel
) -> None:
    result = optimizer.optimize_process_parameters(START, SPEC_CONSTRAINTS)
    for name, bounds in SPEC_CONSTRAINTS.items():
        assert within(result[name], bounds), (name, result[name])
    assert within(result["temperature"], [18.0, 27.0])  # the range the model was trained on
    predicted = trained_model.predict_batch_outcomes(result)
    assert within(predicted["energy_used"], SPEC_CONSTRAINTS["energy_used"])
    assert predicted["efficiency"] == result["efficiency"]  # outcomes are the model's
    assert objective_on_model(trained_model, result) < objective_on_model(trained_model, START) - 5
    # The twin's optimum temperature is 22.5 °C: the optimizer must have moved towards it.
    assert abs(result["temperature"] - 22.5) < 1.0


def test_same_input_same_answer(trained_model: ManufacturingModel) -> None:
    first = ProcessOptimizer(trained_model).optimize(START, SPEC_CONSTRAINTS)
    second = ProcessOptimizer(trained_model).optimize(dict(START), dict(SPEC_CONSTRAINTS))
    again = ProcessOptimizer(trained_model).optimize(START, SPEC_CONSTRAINTS)
    assert first.parameters == second.parameters == again.parameters
    assert first.objective_value == second.objective_value


def test_result_reports_the_objective(optimizer: ProcessOptimizer) -> None:
    result = optimizer.optimize(START, SPEC_CONSTRAINTS)
    assert result.improvement == pytest.approx(result.objective_start - result.objective_value)
    assert result.improvement > 0 and result.improvement_percent > 0
    assert result.feasible_start is True
    assert set(result.bounds) == {"temperature", "cycle_time"}
    assert result.outcome_limits["energy_used"] == (10.0, 100.0)
    assert result.to_dict()["parameters"] == result.parameters


def test_other_parameters_are_kept(optimizer: ProcessOptimizer) -> None:
    params = {**START, "input_amount": 120.0, "thickness_uniformity": 93.0}
    result = optimizer.optimize_process_parameters(params)
    assert result["input_amount"] == 120.0 and result["thickness_uniformity"] == 93.0


def test_fixed_control_stays_fixed(optimizer: ProcessOptimizer) -> None:
    result = optimizer.optimize_process_parameters(START, {"cycle_time": 52.0})
    assert result["cycle_time"] == 52.0
    assert result["temperature"] != START["temperature"]


def test_fixed_control_can_make_outcomes_infeasible(optimizer: ProcessOptimizer) -> None:
    # At 40 s per module the line draws about 40 + 10 * 6 / 0.92 = 105 kW > 100 kW.
    with pytest.raises(ValueError, match="energy_used in \\[10, 100\\]"):
        optimizer.optimize_process_parameters(START, {"cycle_time": 40.0})


def test_start_outside_control_bounds_is_moved_in(optimizer: ProcessOptimizer) -> None:
    result = optimizer.optimize({"temperature": 24.0, "cycle_time": 75.0}, SPEC_CONSTRAINTS)
    assert within(result.parameters["cycle_time"], [20.0, 60.0])
    assert any("cycle_time" in note for note in result.notes)


def test_optimize_for_efficiency_keeps_quality(
    optimizer: ProcessOptimizer, trained_model: ManufacturingModel
) -> None:
    start = {"temperature": 26.0, "cycle_time": 40.0}
    result = optimizer.optimize_for_efficiency(start, min_quality=0.96)
    assert 1.0 - result["defect_rate"] >= 0.96 - 1e-9
    before = trained_model.predict_batch_outcomes(start)["efficiency"]
    assert result["efficiency"] > before + 0.02


def test_optimize_for_quality_keeps_energy(
    optimizer: ProcessOptimizer, trained_model: ManufacturingModel
) -> None:
    start = {"temperature": 19.5, "cycle_time": 50.0}
    result = optimizer.optimize_for_quality(start, max_energy=90.0)
    assert result["energy_used"] <= 90.0
    assert result["defect_rate"] < trained_model.predict_batch_outcomes(start)["defect_rate"]


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"constraints": {"cycle_time": [50.0, 30.0]}}, "min 50 > max 30"),
        ({"constraints": {"cycle_time": [80.0, 90.0]}}, "does not overlap"),
        ({"constraints": {"energy_used": [10.0, 20.0]}}, "infeasible"),
        ({"constraints": {"defect_rate": 0.03}}, "only be limited by a range"),
        ({"constraints": {"spindle_speed": [1.0, 2.0]}}, "unknown parameter"),
        ({"constraints": {"cycle_time": "fast"}}, "number or \\[min, max\\]"),
        ({"min_quality": 0.999}, "min_quality"),
        ({"min_quality": 0.995, "constraints": {"defect_rate": [0.0, 1.0]}}, "infeasible"),
        ({"max_energy": 5.0}, "max_energy"),
    ],
)
def test_infeasible_constraints_raise_value_error(
    optimizer: ProcessOptimizer, kwargs: dict[str, Any], message: str
) -> None:
    objective = "efficiency" if "min_quality" in kwargs else "quality"
    if "min_quality" not in kwargs and "max_energy" not in kwargs:
        objective = "process"
    with pytest.raises(ValueError, match=message):
        optimizer.optimize(START, objective=objective, **kwargs)  # type: ignore[arg-type]


def test_unchangeable_parameter_outside_its_constraint_raises(optimizer: ProcessOptimizer) -> None:
    # thickness_uniformity is constrained to [80, 100] in DEFAULT_CONSTRAINTS.
    with pytest.raises(ValueError, match="thickness_uniformity = 70"):
        optimizer.optimize_process_parameters({**START, "thickness_uniformity": 70.0})


@pytest.mark.parametrize("value", ["22", float("inf"), None, False])
def test_bad_parameter_values_raise(optimizer: ProcessOptimizer, value: Any) -> None:
    with pytest.raises(ValueError, match="temperature"):
        optimizer.optimize_process_parameters({"temperature": value, "cycle_time": 30.0})


@settings(max_examples=15, deadline=None)
@given(
    temperature=st.floats(18.0, 27.0),
    cycle_time=st.floats(20.0, 60.0),
)
def test_never_worse_than_a_feasible_start(
    trained_model: ManufacturingModel, temperature: float, cycle_time: float
) -> None:
    optimizer = ProcessOptimizer(trained_model)
    result = optimizer.optimize({"temperature": temperature, "cycle_time": cycle_time})
    assert within(result.parameters["temperature"], [18.0, 27.0])
    assert within(result.parameters["cycle_time"], [20.0, 60.0])
    for name, (low, high) in result.outcome_limits.items():
        assert low - 1e-6 <= result.predicted[name] <= high + 1e-6
    if result.feasible_start:
        assert result.objective_value <= result.objective_start


def test_surrogate_gradient_matches_finite_differences() -> None:
    rng = np.random.default_rng(0)
    v = 2.0 * sobol_design(2, 6, seed=1) - 1.0
    y = np.c_[np.sin(v[:, 0]) + v[:, 1] ** 2, v[:, 0] * v[:, 1]]
    surrogate = PolynomialSurrogate.fit(v, y, degree=3)
    assert surrogate.degree == 3
    for point in rng.uniform(-0.9, 0.9, (5, 2)):
        value, jac = surrogate.value_and_jacobian(point)
        assert np.allclose(value, surrogate.predict(point)[0])
        step = 1e-6
        for i in range(2):
            shifted = point.copy()
            shifted[i] += step
            numeric = (surrogate.predict(shifted)[0] - value) / step
            assert np.allclose(jac[:, i], numeric, atol=1e-4)
