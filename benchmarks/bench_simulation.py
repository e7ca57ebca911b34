"""Simulation speed: one long trajectory, the vectorized Monte Carlo summary, a forecast check.

Baselines, measured in the same run:

* trajectory: the spec's naive engine (technical manual 5.2/5.3, implementation guide 4.2):
  ``copy.deepcopy`` of the state in every step and again for the results list, a linear
  temperature/energy/material model with ``random.normalvariate`` and rounding;
* Monte Carlo summary: the spec-shaped list-of-dicts ``run_monte_carlo_simulation`` of the same
  size (1,000 iterations x 100 steps, run in full), followed by the same statistics computed
  from the dicts.

Each figure is the best of a few repeats (the machine is shared).
"""

from __future__ import annotations

import copy
import random
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from benchmarks.report import Row
from circman5.adapters.services.constants_service import ConstantsService
from circman5.manufacturing.digital_twin.simulation.forecast import ForecastChecker
from circman5.manufacturing.digital_twin.simulation.simulation_engine import SimulationEngine
from tests.fixtures.spec_state import spec_state

TRAJECTORY_STEPS = 100_000
BASELINE_STEPS = 20_000
MC_ITERATIONS = 1_000
MC_STEPS = 100
REPEATS = 3

STATE: dict[str, Any] = spec_state(inventory=1e7)


def best_of(repeats: int, work: Callable[[], object]) -> float:
    """The shortest wall time of ``repeats`` runs of ``work``, in seconds."""
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        work()
        best = min(best, time.perf_counter() - started)
    return best


class NaiveEngine:
    """The spec's example engine: deepcopy per step, a linear model, the global ``random``."""

    def __init__(self) -> None:
        self.config = {
            "target_temperature": 22.5,
            "temperature_regulation": 0.1,
            "energy_consumption_increment": 2.0,
            "silicon_wafer_consumption_rate": 0.5,
            "solar_glass_consumption_rate": 0.2,
        }

    def run_simulation(self, steps: int, initial_state: dict[str, Any]) -> list[dict[str, Any]]:
        current = copy.deepcopy(initial_state)
        results = [copy.deepcopy(current)]
        for _ in range(steps):
            nxt = self._simulate_next_state(current)
            results.append(copy.deepcopy(nxt))
            current = nxt
        return results

    def _simulate_next_state(self, state: dict[str, Any]) -> dict[str, Any]:
        nxt = copy.deepcopy(state)
        nxt["timestamp"] = time.strftime("%Y-%m-%dT%H:%M:%S")
        line = nxt["production_line"]
        temp = line["temperature"]
        target = self.config["target_temperature"]
        line["temperature"] = round(
            temp
            + (target - temp) * self.config["temperature_regulation"]
            + random.normalvariate(0, 0.1),
            1,
        )
        if line["status"] == "running":
            line["energy_consumption"] = round(
                line["energy_consumption"]
                + self.config["energy_consumption_increment"] * random.normalvariate(1.0, 0.1),
                1,
            )
            for name in ("silicon_wafer", "solar_glass"):
                entry = nxt["materials"][name]
                rate = self.config[f"{name}_consumption_rate"]
                entry["inventory"] = max(entry["inventory"] - rate * line["production_rate"], 0)
        else:
            line["energy_consumption"] = round(line["energy_consumption"] * 0.95, 1)
        return nxt


def statistics_from_dicts(runs: list[dict[str, Any]]) -> dict[str, np.ndarray]:
    """The summary's statistics (mean, 5/50/95 %) of one path, from the list-of-dicts result."""
    values = np.array(
        [[s["production_line"]["temperature"] for s in run["states"]] for run in runs]
    )
    return {
        "mean": values.mean(axis=0),
        "pct": np.percentile(values, (5, 50, 95), axis=0),
    }


def main() -> list[Row]:
    ConstantsService._reset_instance()
    engine = SimulationEngine(None)
    naive = NaiveEngine()
    random.seed(1)

    traj = best_of(REPEATS, lambda: engine.run_simulation(TRAJECTORY_STEPS, STATE, seed=1))
    base = best_of(REPEATS, lambda: naive.run_simulation(BASELINE_STEPS, STATE))

    summary = best_of(
        REPEATS,
        lambda: engine.run_monte_carlo_summary(
            MC_STEPS, STATE, iterations=MC_ITERATIONS, uncertainty=0.1, seed=1
        ),
    )

    def list_path() -> None:
        runs = engine.run_monte_carlo_simulation(
            MC_STEPS, STATE, iterations=MC_ITERATIONS, uncertainty=0.1, seed=1
        )
        statistics_from_dicts(runs)

    listed = best_of(1, list_path)

    constants = ConstantsService()
    config = constants.get_digital_twin_model().FORECAST_CHECK
    thresholds = constants.get_parameter_thresholds()
    checker = ForecastChecker(  # the process model's Monte Carlo on every path
        engine, thresholds, config, lambda event: None, seed=1, model_paths=list(thresholds)
    )
    drifting = copy.deepcopy(STATE)
    drifting["production_line"]["target_temperature"] = 30.0
    forecast = best_of(5, lambda: checker.check(drifting))
    ConstantsService._reset_instance()

    return [
        Row(
            name=f"trajectory, {TRAJECTORY_STEPS:,} steps",
            value=TRAJECTORY_STEPS / traj,
            unit="steps/s",
            target=100_000,
            baseline=BASELINE_STEPS / base,
            baseline_label="naive deepcopy/step",
        ),
        Row(
            name=f"MC summary {MC_ITERATIONS:,}x{MC_STEPS}",
            value=summary,
            unit="s",
            target=0.1,
            higher_is_better=False,
            baseline=listed,
            baseline_label="list-of-dicts MC, full",
        ),
        Row(
            name=f"forecast check {config.iterations}x{config.horizon_steps}",
            value=forecast * 1000,
            unit="ms",
            target=None,
            higher_is_better=False,
        ),
    ]


if __name__ == "__main__":
    from benchmarks.report import print_table

    print_table("benchmark: simulation", main())
