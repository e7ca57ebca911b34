"""ManufacturingModel: training, prediction, confidence, persistence."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from circman5.manufacturing.optimization.model import DEFAULT_MODEL_FILE, ManufacturingModel
from circman5.manufacturing.optimization.synthetic import generate_synthetic_data

TARGETS = ("output_amount", "efficiency", "defect_rate", "energy_used")


def plant_logs(n: int = 80, seed: int = 3) -> tuple[pd.DataFrame, pd.DataFrame]:
    """A production and a quality log in the twin's names, joined by batch_id, shuffled."""
    rng = np.random.default_rng(seed)
    temperature = rng.uniform(19.0, 26.0, n)
    cycle_time = rng.uniform(22.0, 58.0, n)
    rate = 8.0 * 30.0 / cycle_time
    efficiency = 0.92 - 0.005 * (temperature - 22.5) ** 2
    ids = [f"B{i:03d}" for i in range(n)]
    production = pd.DataFrame(
        {
            "batch_id": ids,
            "temperature": temperature,
            "cycle_time": cycle_time,
            "production_rate": rate,  # the twin's name of output_amount
            "energy_consumption": 40.0 + 10.0 * rate / efficiency,  # ... of energy_used
        }
    )
    quality = pd.DataFrame(
        {
            "batch_id": ids,
            "efficiency": efficiency,
            "defect_rate": 0.02 + 0.002 * (temperature - 22.5) ** 2,
        }
    ).sample(frac=1.0, random_state=1)
    return production, quality


def test_synthetic_training_gives_good_cross_validated_fit(
    trained_model: ManufacturingModel,
) -> None:
    metrics = trained_model.metrics
    for target in TARGETS:
        assert metrics[f"r2_{target}"] > 0.95, (target, metrics)
        assert metrics[f"mae_{target}"] >= 0.0
    assert metrics["r2_mean"] == pytest.approx(np.mean([metrics[f"r2_{t}"] for t in TARGETS]))
    assert metrics["n_samples"] == 160
    assert trained_model.training_source == "synthetic"


def test_synthetic_data_follows_the_twins_process_model() -> None:
    production, quality = generate_synthetic_data(
        50,
        {"temperature": [18.0, 27.0], "cycle_time": [20.0, 60.0]},
        ["temperature", "cycle_time"],
        list(TARGETS),
        seed=7,
    )
    merged = production.merge(quality, on="batch_id")
    # rate = nominal_rate (8) * nominal_cycle (30) / cycle_time, averaged over noisy steps
    expected_rate = 8.0 * 30.0 / merged["cycle_time"]
    assert np.allclose(merged["output_amount"], expected_rate, rtol=0.03)
    # efficiency = 0.92 - 0.005 * (T - 22.5)^2 at the simulated (regulated) temperature
    expected_eff = 0.92 - 0.005 * (merged["temperature"] - 22.5) ** 2
    assert np.allclose(merged["efficiency"], expected_eff, atol=0.002)


def test_train_on_plant_logs_with_twin_column_names(small_config: dict[str, Any]) -> None:
    model = ManufacturingModel(config=small_config, auto_load=False)
    production, quality = plant_logs()
    metrics = model.train_optimization_model(production, quality)
    assert metrics["r2_mean"] > 0.8
    assert set(metrics) >= {f"{m}_{t}" for m in ("r2", "mae", "rmse") for t in TARGETS}
    assert model.is_trained and model.training_source == "data"


def test_training_is_deterministic(small_config: dict[str, Any]) -> None:
    production, quality = plant_logs()
    first = ManufacturingModel(config=small_config, auto_load=False)
    second = ManufacturingModel(config=small_config, auto_load=False)
    assert first.train_optimization_model(production, quality) == (
        second.train_optimization_model(production, quality)
    )
    x = np.array([[21.0, 33.0], [24.5, 50.0]])
    assert np.array_equal(first.predict_array(x), second.predict_array(x))


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda p, q: (p.drop(columns=["cycle_time"]), q), "lacks the columns"),
        (lambda p, q: (p.head(10), q), "usable training rows"),
        (lambda p, q: (p.drop(columns=["batch_id"]), q.head(5)), "batch_id"),
        (lambda p, q: (p.iloc[0:0], q.iloc[0:0]), "both frames are empty"),
    ],
)
def test_bad_training_data_raises(small_config: dict[str, Any], change: Any, message: str) -> None:
    model = ManufacturingModel(config=small_config, auto_load=False)
    with pytest.raises(ValueError, match=message):
        model.train_optimization_model(*change(*plant_logs()))
    assert not model.is_trained


def test_non_finite_rows_are_dropped(small_config: dict[str, Any]) -> None:
    production, quality = plant_logs(60)
    production.loc[0:4, "temperature"] = np.nan
    production.loc[5, "energy_consumption"] = np.inf
    model = ManufacturingModel(config=small_config, auto_load=False)
    assert model.train_optimization_model(production, quality)["n_samples"] == 54


def test_prediction_has_outcomes_and_confidence(trained_model: ManufacturingModel) -> None:
    result = trained_model.predict_batch_outcomes({"temperature": 22.5, "cycle_time": 30.0})
    # The twin's physics at the optimum: rate 8, efficiency 0.92, 40 + 10 * 8 / 0.92 kW.
    assert result["output_amount"] == pytest.approx(8.0, abs=0.2)
    assert result["efficiency"] == pytest.approx(0.92, abs=0.005)
    assert result["energy_used"] == pytest.approx(40 + 80 / 0.92, abs=4.0)
    assert result["predicted_quality"] == pytest.approx(1 - result["defect_rate"])
    assert result["energy_consumption"] == result["energy_used"]
    assert 0.9 < result["confidence_score"] <= 1.0
    low, high = result["prediction_interval"]["energy_used"]
    assert low < result["energy_used"] < high
    assert result["in_training_range"] is True and result["defaulted_features"] == []


def test_prediction_flags_extrapolation_and_defaults(trained_model: ManufacturingModel) -> None:
    inside = trained_model.predict_batch_outcomes({"temperature": 22.5, "cycle_time": 30.0})
    result = trained_model.predict_batch_outcomes({"temperature": 40.0, "input_amount": 5.0})
    assert result["extrapolated_features"] == ["temperature"]
    assert result["in_training_range"] is False
    assert result["defaulted_features"] == ["cycle_time"]
    assert result["confidence_score"] == pytest.approx(inside["confidence_score"] / 2)


@pytest.mark.parametrize("value", ["hot", float("nan"), True, None])
def test_prediction_rejects_bad_values(trained_model: ManufacturingModel, value: Any) -> None:
    with pytest.raises(ValueError, match="temperature"):
        trained_model.predict_batch_outcomes({"temperature": value})


def test_save_load_round_trip(trained_model: ManufacturingModel, isolated_data_dir: Path) -> None:
    assert trained_model.save_model("round_trip.joblib")
    path = isolated_data_dir / "models" / "round_trip.joblib"
    assert path.is_file()
    loaded = ManufacturingModel(auto_load=False)
    assert loaded.load_model(path)
    x = np.array([[20.5, 25.0], [23.0, 41.0], [26.0, 59.0]])
    assert np.array_equal(loaded.predict_array(x), trained_model.predict_array(x))
    assert loaded.metrics == trained_model.metrics
    assert loaded.feature_ranges() == trained_model.feature_ranges()


def test_load_rejects_foreign_files_and_keeps_the_model(
    trained_model: ManufacturingModel, tmp_path: Path
) -> None:
    garbage = tmp_path / "garbage.joblib"
    garbage.write_bytes(b"not a pickle")
    import joblib

    foreign = tmp_path / "foreign.joblib"
    joblib.dump({"format": "something else"}, foreign)
    model = ManufacturingModel(auto_load=False)
    assert model.load_model(garbage) is False
    assert model.load_model(foreign) is False
    assert model.load_model(tmp_path / "missing.joblib") is False
    assert not model.is_trained


def test_first_use_loads_the_default_model_file(
    isolated_data_dir: Path, small_config: dict[str, Any]
) -> None:
    plant = ManufacturingModel(config=small_config, auto_load=False)
    plant.train_optimization_model(*plant_logs())
    assert plant.save_model()
    assert (isolated_data_dir / "models" / DEFAULT_MODEL_FILE).is_file()
    fresh = ManufacturingModel(config=small_config)
    point = {"temperature": 21.0, "cycle_time": 44.0}
    assert (
        fresh.predict_batch_outcomes(point)["efficiency"]
        == (plant.predict_batch_outcomes(point)["efficiency"])
    )
    assert fresh.training_source == "data"  # loaded, not retrained on synthetic data


def test_default_file_with_other_features_is_not_loaded(
    small_config: dict[str, Any],
) -> None:
    other = ManufacturingModel(
        config={**small_config, "features": ["temperature"]}, auto_load=False
    )
    other.train_optimization_model(*plant_logs())
    assert other.save_model()
    fresh = ManufacturingModel(config=small_config)
    fresh.ensure_trained()
    assert fresh.features == ("temperature", "cycle_time")
    assert fresh.training_source == "synthetic"


def test_unknown_config_key_raises() -> None:
    with pytest.raises(ValueError, match="unknown optimization setting"):
        ManufacturingModel(config={"n_trees": 5})
