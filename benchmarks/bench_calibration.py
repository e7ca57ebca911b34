"""Calibration: process parameters recovered from generated history, and the fit time.

Data: :func:`~circman5.manufacturing.digital_twin.simulation.known_history.generate_history`
runs the twin's process model with known parameters (all different from the built-in
defaults, noise included) for 12 setpoint segments of 300 steps (3,600 points per path).
:func:`calibrate` fits them back. Each row is one parameter: its error in % of the true value
(target <= 10 %); the baseline is the error of the built-in default value on the same data (what
the twin used before calibrating). Then the fit time (all paths, median of 3), and the
temperature's free-run RMSE with the fitted parameters against the defaults.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING

import numpy as np

from benchmarks.report import Row

if TYPE_CHECKING:
    from circman5.adapters.config.simulation_parameters import SimulationParameters
    from circman5.manufacturing.digital_twin.simulation.calibration import PathHistory

TRUE: dict[str, float] = {
    "temperature_regulation": 0.035,
    "temperature_noise": 0.08,
    "nominal_production_rate": 6.5,
    "production_rate_increment": 0.3,
    "production_rate_noise": 0.08,
    "idle_power": 55.0,
    "energy_per_module": 7.0,
    "energy_consumption_increment": 3.0,
    "energy_noise": 0.8,
    "base_efficiency": 0.88,
    "efficiency_temperature_sensitivity": 0.008,
    "base_defect_rate": 0.03,
    "defect_temperature_sensitivity": 0.003,
    "ambient_temperature": 20.0,
    "ambient_humidity": 52.0,
    "environment_reversion": 0.02,
    "environment_temperature_noise": 0.01,
    "humidity_noise": 0.05,
}
REPEATS = 3


def main() -> list[Row]:
    from circman5.adapters.config.simulation_parameters import SimulationParameters
    from circman5.manufacturing.digital_twin.simulation.calibration import calibrate
    from circman5.manufacturing.digital_twin.simulation.known_history import generate_history

    defaults = SimulationParameters()
    history = generate_history(TRUE, segments=12, segment_steps=300, seed=5)
    times: list[float] = []
    calibration = None
    for _ in range(REPEATS):
        started = time.perf_counter()
        calibration = calibrate(history, defaults, source="benchmark")
        times.append(time.perf_counter() - started)
    assert calibration is not None
    fitted: dict[str, float] = {}
    for fit in calibration.fits:
        fitted.update(fit.parameters)
    rows: list[Row] = []
    for name, true in TRUE.items():
        value = fitted.get(name, float("nan"))
        error = abs(value - true) / abs(true) * 100.0
        default_error = abs(float(getattr(defaults, name)) - true) / abs(true) * 100.0
        rows.append(
            Row(
                f"{name}: true {true:.4g}, fitted {value:.4g}",
                error,
                "% error",
                10.0,
                higher_is_better=False,
                baseline=default_error,
                baseline_label="(built-in default)",
            )
        )
    paths = len(calibration.fits)
    rows.append(
        Row(
            f"fit time ({paths} paths, 3,600 points each)",
            statistics.median(times),
            "s",
            5.0,
            higher_is_better=False,
        )
    )
    rows.append(_free_run_row(history, calibration.parameters, defaults))
    return rows


def _free_run_row(
    history: Mapping[str, PathHistory], fitted: Mapping[str, float], defaults: SimulationParameters
) -> Row:
    """Temperature free-run RMSE over the history: fitted regulation vs the default one."""
    temperature = history["production_line.temperature"].values
    target = history["production_line.target_temperature"].values

    def rmse(regulation: float) -> float:
        run = np.empty_like(temperature)
        run[0] = temperature[0]
        for k in range(temperature.size - 1):
            run[k + 1] = run[k] + regulation * (target[k] - run[k])
        return float(np.sqrt(np.mean((run - temperature) ** 2)))

    return Row(
        "line temperature free-run RMSE (°C)",
        rmse(fitted["temperature_regulation"]),
        "°C",
        None,
        higher_is_better=False,
        baseline=rmse(defaults.temperature_regulation),
        baseline_label="(built-in defaults)",
    )
