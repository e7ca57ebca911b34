"""AI optimization and LCA speed, each beside a baseline measured in the same run.

* default optimization: ``ProcessOptimizer.optimize_process_parameters`` with the default model
  (100 trees per target, trained on 400 rows of the twin's process model), the
  ``DEFAULT_PARAMETERS`` at a line temperature of 25 °C, and the spec's
  ``OPTIMIZATION_CONSTRAINTS``; the sampled design is not cached between repeats (a cold
  optimization). Baselines on the same model, objective and constraints:

  - Nelder-Mead on the raw trees (the model called once per evaluation, a penalty for the
    outcome constraints): the usual fix when the gradient is useless;
  - the spec's approach (technical manual 7.3): L-BFGS-B on the raw trees with scipy's default
    finite differences. Its step (1e-8) never leaves a tree leaf, the gradient is zero and it
    stops at the start: it is fast and improves nothing, hence the improvement row.

* one full LCA: ``LCAIntegration.perform_lca_analysis(state, save_results=False)`` on a state
  with seven materials. Baseline: the spec's pandas-per-call path (material and energy frames
  from the state, ``groupby`` for the inputs, a boolean mask per material for the recycling
  rates, then the same formulas).

Each time is the median of several repeats (the machine is shared).
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

from benchmarks.report import Row

REPEATS_OPT = 7
REPEATS_LCA = 200
WEIGHTS = {"efficiency": -100.0, "energy_used": 0.1, "defect_rate": 1000.0}

MATERIALS = {
    "silicon_wafer": (120.0, 5.0, 4.0),
    "solar_glass": (300.0, 12.0, 10.0),
    "aluminum_frame": (80.0, 2.0, 1.5),
    "copper_wiring": (6.0, 0.3, 0.2),
    "silver_paste": (0.8, 0.02, 0.01),
    "EVA_encapsulant": (25.0, 1.0, 0.0),
    "backsheet": (18.0, 0.8, 0.0),
}
LCA_STATE: dict[str, Any] = {
    "timestamp": "2025-02-24T14:30:22.123456",
    "batch_id": "bench",
    "production_line": {"status": "running", "energy_consumption": 850.0},
    "materials": {
        name: {"inventory": 1000.0, "consumption": c, "waste": w, "recycled": r}
        for name, (c, w, r) in MATERIALS.items()
    },
}


def median_time(repeats: int, work: Callable[[], object]) -> float:
    """Median wall time of ``repeats`` runs of ``work``, in seconds."""
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        work()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


# -- optimization baselines -------------------------------------------------------------------
def spec_objective(model: Any, params: dict[str, float]) -> tuple[float, bool, dict[str, float]]:
    """The spec's objective at ``params`` and whether the predicted outcomes meet the limits."""
    predicted = model.predict_batch_outcomes(params)
    value = sum(w * predicted[k] for k, w in WEIGHTS.items())
    return float(value), bool(predicted["energy_used"] <= 100.0), predicted


def baseline_optimizations(
    model: Any, start: dict[str, float], constraints: dict[str, Any]
) -> dict[str, tuple[float, float, bool]]:
    """(seconds, objective at the answer, feasible) of Nelder-Mead and the spec's L-BFGS-B."""
    from scipy.optimize import minimize

    names = ["temperature", "cycle_time"]
    ranges = model.feature_ranges()
    bounds = [ranges["temperature"], tuple(constraints["cycle_time"])]
    limits = {k: v for k, v in constraints.items() if k in model.targets}

    def penalized(x: np.ndarray) -> float:
        params = {**start, **dict(zip(names, x.tolist(), strict=True))}
        value, _, predicted = spec_objective(model, params)
        excess = sum(
            max(0.0, low - predicted[k]) + max(0.0, predicted[k] - high)
            for k, (low, high) in limits.items()
        )
        return value + 1e3 * excess

    x0 = np.array([start[n] for n in names])
    results: dict[str, tuple[float, float, bool]] = {}
    for method in ("Nelder-Mead", "L-BFGS-B"):
        answers: list[np.ndarray] = []

        def run(method: str = method, answers: list[np.ndarray] = answers) -> None:
            answers.append(minimize(penalized, x0, method=method, bounds=bounds).x)

        seconds = median_time(3, run)
        params = {**start, **dict(zip(names, answers[-1].tolist(), strict=True))}
        value, feasible, _ = spec_objective(model, params)
        results[method] = (seconds, value, feasible)
    return results


# -- LCA baseline ------------------------------------------------------------------------------
def pandas_lca(state: dict[str, Any], factors: dict[str, Any]) -> float:
    """The spec-shaped per-call pandas path; returns the total carbon footprint."""
    rows = [
        {
            "batch_id": state.get("batch_id", "unknown"),
            "timestamp": state.get("timestamp"),
            "material_type": m,
            "quantity_used": p.get("consumption", 0),
            "waste_generated": p.get("waste", 0),
            "recycled_amount": p.get("recycled", 0),
        }
        for m, p in state["materials"].items()
    ]
    material_data = pd.DataFrame(rows)
    energy_data = pd.DataFrame(
        [
            {
                "batch_id": state.get("batch_id"),
                "energy_source": "grid_electricity",
                "energy_consumption": state["production_line"]["energy_consumption"],
            }
        ]
    )
    inputs = material_data.groupby("material_type")["quantity_used"].sum().to_dict()
    energy = float(energy_data["energy_consumption"].sum())
    rates = {}
    for material in material_data["material_type"].unique():
        subset = material_data[material_data["material_type"] == material]
        waste = subset["waste_generated"].sum()
        rates[material] = subset["recycled_amount"].sum() / waste if waste > 0 else 0.0
    manufacturing = (
        sum(q * factors["MATERIAL_IMPACT_FACTORS"].get(m, 0.0) for m, q in inputs.items())
        + energy * factors["ENERGY_IMPACT_FACTOR"]
    )
    generation = inputs.get("solar_glass", 0.0) / 10.0 * 1000.0 * 0.2 * 25
    use = generation * 0.01 - generation * factors["GRID_CARBON_INTENSITIES"]["EU_average"]
    end_of_life = (
        sum(
            q * factors["DISPOSAL_IMPACT_FACTORS"].get(m, 0.0) * (1 - rates.get(m, 0.0))
            for m, q in inputs.items()
        )
        + sum(inputs.values()) / 1000 * 100.0 * factors["TRANSPORT_IMPACT_FACTOR"]
    )
    return float(manufacturing + use + end_of_life)


def main() -> list[Row]:
    with tempfile.TemporaryDirectory() as data_dir:
        previous = os.environ.get("CIRCMAN5_DATA_DIR")
        os.environ["CIRCMAN5_DATA_DIR"] = data_dir
        try:
            return _measure()
        finally:
            if previous is None:
                os.environ.pop("CIRCMAN5_DATA_DIR", None)
            else:
                os.environ["CIRCMAN5_DATA_DIR"] = previous


def _measure() -> list[Row]:
    from circman5.adapters.services.constants_service import ConstantsService
    from circman5.manufacturing.digital_twin.integration.lca_integration import LCAIntegration
    from circman5.manufacturing.optimization.model import ManufacturingModel
    from circman5.manufacturing.optimization.optimizer import ProcessOptimizer

    constants = ConstantsService()
    ai_config = constants.get_digital_twin_config()["AI_INTEGRATION"]
    start = {**ai_config["DEFAULT_PARAMETERS"], "temperature": 25.0}
    constraints = ai_config["OPTIMIZATION_CONSTRAINTS"]

    model = ManufacturingModel(auto_load=False)
    started = time.perf_counter()
    model.ensure_trained()
    training_s = time.perf_counter() - started
    optimizer = ProcessOptimizer(model)
    optimizer.optimize_process_parameters(start, constraints)  # imports, first-call costs

    def cold() -> None:
        optimizer.clear_cache()
        optimizer.optimize_process_parameters(start, constraints)

    optimize_s = median_time(REPEATS_OPT, cold)
    result = optimizer.optimize(start, constraints)
    start_value, start_feasible, _ = spec_objective(model, start)
    baselines = baseline_optimizations(model, start, constraints)
    nelder_s, nelder_value, nelder_ok = baselines["Nelder-Mead"]
    lbfgs_s, lbfgs_value, lbfgs_ok = baselines["L-BFGS-B"]

    lca = LCAIntegration(_NoTwin(), constants=constants)
    factors = constants.get_impact_factors()
    ours = lca.perform_lca_analysis(LCA_STATE, save_results=False).total_carbon_footprint
    theirs = pandas_lca(LCA_STATE, factors)
    if not np.isclose(ours, theirs):
        raise AssertionError(f"LCA baseline disagrees: {ours} vs {theirs}")
    lca_s = median_time(
        REPEATS_LCA, lambda: lca.perform_lca_analysis(LCA_STATE, save_results=False)
    )
    pandas_s = median_time(REPEATS_LCA // 4, lambda: pandas_lca(LCA_STATE, factors))
    yes_no = {True: "feasible", False: "infeasible"}
    return [
        Row(
            "default optimization: wall time",
            optimize_s * 1e3,
            "ms",
            500.0,
            higher_is_better=False,
            baseline=nelder_s * 1e3,
            baseline_label="Nelder-Mead on raw trees",
        ),
        Row(
            f"default optimization: objective at its answer ({yes_no[True]})",
            result.objective_value,
            "objective",
            None,
            higher_is_better=False,
            baseline=nelder_value,
            baseline_label=f"Nelder-Mead ({yes_no[nelder_ok]})",
        ),
        Row(
            f"spec L-BFGS-B on raw trees: objective at its answer ({yes_no[lbfgs_ok]}, "
            f"{lbfgs_s * 1e3:.0f} ms)",
            lbfgs_value,
            "objective",
            None,
            higher_is_better=False,
            baseline=start_value,
            baseline_label=f"the start ({yes_no[start_feasible]})",
        ),
        Row(
            "first-use model training (400 rows, 4 x 100 trees, 5-fold CV)",
            training_s,
            "s",
            None,
            higher_is_better=False,
        ),
        Row(
            "one full LCA from a twin state",
            lca_s * 1e3,
            "ms",
            5.0,
            higher_is_better=False,
            baseline=pandas_s * 1e3,
            baseline_label="pandas per call (spec)",
        ),
    ]


class _NoTwin:
    def get_current_state(self) -> dict[str, Any]:
        return LCA_STATE
