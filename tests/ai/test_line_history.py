"""Training rows from the line's recorded history (one per MES batch), the synthetic fallback,
and the provenance kept with the model file."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from circman5.manufacturing.optimization.line_history import (
    BATCH_END_PATH,
    arrays_from_states,
    batch_frames,
    train_from_line_history,
)
from circman5.manufacturing.optimization.model import ManufacturingModel

T0 = 1_765_000_000.0


def line_arrays(batches: int, seed: int = 1) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Per second for ``batches`` batches of 60 s: a setpoint per batch, outcomes from it."""
    rng = np.random.default_rng(seed)
    seconds = batches * 60
    times = T0 + np.arange(seconds, dtype=np.float64)
    temperature = np.repeat(rng.uniform(19.0, 26.0, batches), 60) + rng.normal(0, 0.05, seconds)
    cycle = np.repeat(rng.uniform(22.0, 45.0, batches), 60)
    rate = 240.0 / cycle
    efficiency = 0.92 - 0.005 * (temperature - 22.5) ** 2
    ends = T0 + 60.0 * np.arange(batches + 1) - 0.5
    return {
        "production_line.temperature": (times, temperature),
        "production_line.cycle_time": (times, cycle),
        "production_line.production_rate": (times, rate),
        "production_line.efficiency": (times, efficiency),
        "production_line.defect_rate": (times, 0.02 + 0.002 * (temperature - 22.5) ** 2),
        "production_line.energy_consumption": (times, 95.0 + 3.5 * rate),
        BATCH_END_PATH: (ends, np.full(ends.shape, 50.0)),
    }


def test_one_row_per_batch_averaging_its_window() -> None:
    arrays = line_arrays(5)
    production, quality, window = batch_frames(arrays)
    assert len(production) == len(quality) == 5
    temperature = arrays["production_line.temperature"][1]
    assert production["temperature"].iloc[2] == pytest.approx(temperature[120:180].mean())
    assert window is not None and window[0] < window[1]
    assert set(quality.columns) == {"batch_id", "efficiency", "defect_rate"}


def test_trains_on_enough_batches_and_keeps_the_provenance(isolated_data_dir: Path) -> None:
    model = ManufacturingModel(config={"n_estimators": 20}, auto_load=False)
    provenance = train_from_line_history(model, line_arrays(30), "embedded")
    assert provenance["source"] == "line data" and provenance["batches"] == 30
    assert set(provenance["cv_rmse"]) == set(model.targets)
    assert provenance["cv_r2"]["output_amount"] > 0.9  # the rate is a function of the cycle
    assert model.save_model()
    loaded = ManufacturingModel(config={"n_estimators": 20}, auto_load=False)
    assert loaded.load_model(isolated_data_dir / "models" / "manufacturing_model.joblib")
    assert loaded.provenance == provenance


def test_too_few_batches_fall_back_to_synthetic_and_say_so() -> None:
    model = ManufacturingModel(config={"n_estimators": 10, "synthetic_samples": 40})
    provenance = train_from_line_history(model, line_arrays(5), "embedded")
    assert provenance["source"] == "synthetic" and provenance["window"] is None
    assert provenance["fallback_reason"] == (
        "5 complete batches in the embedded history; 20 are needed"
    )
    assert model.training_source == "synthetic"


def test_arrays_from_twin_states() -> None:
    states = [
        {"timestamp": "2026-01-01T00:00:00+00:00", "batch": {"completed": {"modules_produced": 5}}},
        {"timestamp": "2026-01-01T00:00:01+00:00", "production_line": {"temperature": 22.0}},
        {"timestamp": "not a time", "production_line": {"temperature": 99.0}},
    ]
    arrays = arrays_from_states(states, [BATCH_END_PATH, "production_line.temperature"])
    assert arrays[BATCH_END_PATH][1].tolist() == [5.0]
    assert arrays["production_line.temperature"][1].tolist() == [22.0]


def test_the_optimizer_result_names_the_model_provenance() -> None:
    from circman5.manufacturing.optimization.optimizer import ProcessOptimizer

    model = ManufacturingModel(config={"n_estimators": 20}, auto_load=False)
    train_from_line_history(model, line_arrays(30), "embedded")
    params = {"temperature": 23.0, "cycle_time": 30.0}
    result = ProcessOptimizer(model).optimize(params, {"energy_used": (0.0, 200.0)})
    assert result.model_provenance["source"] == "line data"
    assert result.to_dict()["model_provenance"]["batches"] == 30
