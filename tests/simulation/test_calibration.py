"""Calibration: known parameters are recovered, unexplained data is reported as such, the saved
calibration is versioned and the simulation engine, Monte Carlo and scenarios use it."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from circman5.errors import ConfigError
from circman5.manufacturing.digital_twin.simulation.calibration import (
    CalibrationOptions,
    PathHistory,
    calibrate,
    format_report,
    history_from_states,
    list_calibrations,
    load_active_calibration,
    save_calibration,
)
from circman5.manufacturing.digital_twin.simulation.known_history import generate_history
from circman5.manufacturing.digital_twin.simulation.process_models import (
    load_simulation_parameters,
)
from circman5.manufacturing.digital_twin.simulation.scenario_manager import ScenarioManager
from circman5.manufacturing.digital_twin.simulation.simulation_engine import SimulationEngine
from tests.simulation.conftest import spec_state

TRUE = {
    "temperature_regulation": 0.04,
    "temperature_noise": 0.08,
    "nominal_production_rate": 6.0,
    "production_rate_increment": 0.3,
    "idle_power": 55.0,
    "energy_per_module": 7.0,
    "energy_noise": 0.8,
    "base_efficiency": 0.9,
    "efficiency_temperature_sensitivity": 0.008,
    "base_defect_rate": 0.03,
    "defect_temperature_sensitivity": 0.003,
    "ambient_temperature": 21.0,
    "ambient_humidity": 50.0,
    "environment_reversion": 0.02,
    "environment_temperature_noise": 0.01,
    "humidity_noise": 0.05,
}


@pytest.fixture(scope="module")
def known() -> dict[str, PathHistory]:
    return generate_history(TRUE, segments=10, segment_steps=150, seed=11)


def test_recovers_known_parameters_within_ten_percent(known: dict[str, PathHistory]) -> None:
    calibration = calibrate(known, source="generated")
    assert calibration.accepted_paths == {
        "production_line.temperature",
        "production_line.production_rate",
        "production_line.energy_consumption",
        "production_line.efficiency",
        "production_line.defect_rate",
        "environment.temperature",
        "environment.humidity",
    }
    for name, true in TRUE.items():
        fitted = calibration.parameters[name]
        assert fitted == pytest.approx(true, rel=0.10), name
    fit = calibration.fit("production_line.temperature")
    assert fit is not None and fit.r2 is not None and fit.r2 > 0.9
    assert fit.points == 1500 and fit.start is not None and fit.end is not None
    assert fit.time_constant_s == pytest.approx(-1 / np.log(1 - 0.04), rel=0.1)
    report = format_report(calibration)
    assert "production_line.temperature" in report and "accepted" in report


def test_random_walk_is_not_explained() -> None:
    rng = np.random.default_rng(3)
    times = 1_700_000_000.0 + np.arange(3000.0)
    walk = 22.0 + np.cumsum(rng.normal(0.0, 0.1, times.size))
    history = {
        "production_line.temperature": PathHistory(times, walk),
        "environment.humidity": PathHistory(times, 45.0 + np.cumsum(rng.normal(0, 0.3, 3000))),
    }
    calibration = calibrate(history)
    assert calibration.accepted_paths == frozenset()
    assert calibration.parameters == {}  # nothing forced into the model
    fit = calibration.fit("production_line.temperature")
    assert fit is not None and fit.status == "not explained"
    assert fit.r2 is not None and fit.r2 < 0.8 and "R²" in fit.reason
    assert calibration.fit("production_line.production_rate").status == "no data"  # type: ignore[union-attr]


def test_a_flat_path_cannot_be_identified() -> None:
    times = 1_700_000_000.0 + np.arange(200.0)
    history = {"environment.temperature": PathHistory(times, np.full(200, 21.0))}
    fit = calibrate(history).fit("environment.temperature")
    assert fit is not None and fit.status == "not explained"
    assert "does not move" in fit.reason


def test_acceptance_is_configurable(known: dict[str, PathHistory]) -> None:
    strict = calibrate(known, options=CalibrationOptions(min_r2=0.999))
    assert "production_line.temperature" not in strict.accepted_paths
    assert "temperature_regulation" not in strict.parameters


def test_window_limits_the_points(known: dict[str, PathHistory]) -> None:
    start = float(known["production_line.temperature"].times_s[0])
    calibration = calibrate(known, options=CalibrationOptions(start_s=start, end_s=start + 599))
    fit = calibration.fit("production_line.temperature")
    assert fit is not None and fit.points == 600


def test_saved_versions_are_numbered_and_the_last_is_active(
    known: dict[str, PathHistory], isolated_data_dir: Path
) -> None:
    assert load_active_calibration() is None
    first = save_calibration(calibrate(known, source="a"))
    second = save_calibration(calibrate(known, source="b"))
    assert (first.version, second.version) == (1, 2)
    assert list_calibrations() == [1, 2]
    active = load_active_calibration(isolated_data_dir)
    assert active is not None
    assert active.version == 2 and active.source == "b"
    assert active.parameters == second.parameters
    assert active.accepted_paths == second.accepted_paths
    saved = json.loads((isolated_data_dir / "calibrations" / "calibration-000002.json").read_text())
    assert saved["window"]["start"] == second.start
    assert {p["path"] for p in saved["paths"]} >= {"production_line.temperature"}
    assert saved["created_at"] and saved["source"] == "b"


def test_a_broken_calibration_file_names_itself(isolated_data_dir: Path) -> None:
    folder = isolated_data_dir / "calibrations"
    folder.mkdir()
    (folder / "active.json").write_text('{"version": 1}')
    (folder / "calibration-000001.json").write_text('{"format": "something else"}')
    with pytest.raises(ConfigError, match=r"calibration-000001\.json"):
        load_active_calibration()


def _step_response(engine: SimulationEngine) -> list[float]:
    states = engine.run_simulation(
        steps=20,
        initial_state=spec_state(temperature=20.0, target_temperature=25.0),
        seed=1,
    )
    return [s["production_line"]["temperature"] for s in states]


def test_engine_uses_the_active_calibration(known: dict[str, PathHistory]) -> None:
    engine = SimulationEngine(None)
    assert engine.parameter_set == "built-in defaults"
    default_run = _step_response(engine)
    calibration = save_calibration(calibrate(known, source="generated"))
    assert engine.parameter_set == f"calibration {calibration.version}"
    calibrated_run = _step_response(engine)
    # regulation 0.04 instead of 0.1: the step response is slower
    assert calibrated_run[10] < default_run[10] - 0.5
    expected = calibration.parameters["temperature_regulation"]
    assert engine.parameters.temperature_regulation == expected
    summary = engine.run_monte_carlo_summary(
        steps=5, initial_state=spec_state(), iterations=10, seed=2
    )
    assert summary.parameter_set == f"calibration {calibration.version}"
    assert summary.to_dict()["parameter_set"] == summary.parameter_set


def test_explicit_parameters_override_the_calibration(known: dict[str, PathHistory]) -> None:
    save_calibration(calibrate(known))
    engine = SimulationEngine(None, model_parameters={"temperature_regulation": 0.5})
    assert engine.parameter_set == "explicit parameters"
    assert engine.parameters.temperature_regulation == 0.5
    uncalibrated = SimulationEngine(None, use_calibration=False)
    assert uncalibrated.parameter_set == "built-in defaults"


def test_scenario_runs_name_the_parameter_set(
    known: dict[str, PathHistory], isolated_data_dir: Path
) -> None:
    calibration = save_calibration(calibrate(known))
    manager = ScenarioManager(
        engine=SimulationEngine(None), db_path=isolated_data_dir / "scenarios.sqlite3"
    )
    manager.create_scenario("hot", {"production_line.target_temperature": 25.0})
    run = manager.run_scenario("hot", steps=5, initial_state=spec_state(), seed=1)
    assert run.parameter_set == f"calibration {calibration.version}"
    comparison = manager.compare_scenarios(["hot"], steps=3, initial_state=spec_state(), seed=1)
    assert comparison.to_dict()["parameter_set"] == [run.parameter_set]


def test_history_from_twin_states_feeds_a_calibration() -> None:
    params = load_simulation_parameters({"temperature_regulation": 0.2})
    from circman5.manufacturing.digital_twin.simulation.process_models import (
        PVManufacturingModel,
    )

    model = PVManufacturingModel(params)
    rng = np.random.default_rng(0)
    states = []
    state = spec_state(temperature=20.0, target_temperature=24.0)
    state["timestamp"] = "2026-01-01T00:00:00+00:00"
    for target in (24.0, 19.0, 26.0, 21.0):
        state = {
            **state,
            "production_line": {**state["production_line"], "target_temperature": target},
        }
        trajectory = model.run_trajectory(state, 60, rng)
        states.extend(trajectory)
        state = trajectory[-1]
    history = history_from_states(states)
    assert history["production_line.running"].values.min() == 1.0
    calibration = calibrate(history, base=params)
    assert "production_line.temperature" in calibration.accepted_paths
    assert calibration.parameters["temperature_regulation"] == pytest.approx(0.2, rel=0.1)


def test_a_broken_active_calibration_leaves_the_engine_on_defaults(
    isolated_data_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    folder = isolated_data_dir / "calibrations"
    folder.mkdir()
    (folder / "active.json").write_text("{not json")
    engine = SimulationEngine(None)
    assert engine.parameter_set == "built-in defaults"
    assert "active.json" in caplog.text and "not usable" in caplog.text
    assert engine.parameters.temperature_regulation == 0.1


def test_the_forecast_follows_the_active_calibration(known: dict[str, PathHistory]) -> None:
    """The twin's forecast uses the process model exactly on the paths the calibration explains."""
    from circman5.manufacturing.digital_twin.core.twin_core import DigitalTwin

    twin = DigitalTwin()
    assert twin.initialize()
    checker = twin.forecast_checker
    assert checker is not None
    checker.check(twin.get_current_state())
    assert checker.model_paths == frozenset()  # no calibration yet: statistical everywhere
    calibration = save_calibration(calibrate(known, source="generated"))
    checker.check(twin.get_current_state())
    monitored = set(twin.thresholds)
    assert checker.model_paths == calibration.accepted_paths & monitored
    assert "production_line.temperature" in checker.model_paths
