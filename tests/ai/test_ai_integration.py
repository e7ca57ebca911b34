"""AIIntegration on a live DigitalTwin: extraction, optimization, application, training."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from circman5.manufacturing.digital_twin.core.twin_core import DigitalTwin
from circman5.manufacturing.digital_twin.event_notification.event_manager import event_manager
from circman5.manufacturing.digital_twin.event_notification.event_types import (
    Event,
    EventCategory,
    OptimizationEvent,
)
from circman5.manufacturing.digital_twin.integration.ai_integration import AIIntegration
from circman5.manufacturing.optimization.model import DEFAULT_MODEL_FILE, ManufacturingModel


class TestDigitalTwinAIIntegration:
    """The spec's integration test (technical manual 13.4), as written there."""

    def test_parameter_extraction(self, reset_singletons: None) -> None:
        """Test parameter extraction from Digital Twin state."""
        # Initialize components
        twin = DigitalTwin()
        twin.initialize()
        ai = AIIntegration(twin)

        # Update twin with test state
        test_state = {
            "production_line": {
                "temperature": 23.5,
                "energy_consumption": 120.5,
                "production_rate": 8.5,
            }
        }
        twin.update(test_state)

        # Extract parameters
        params = ai.extract_parameters_from_state()

        # Verify extraction
        assert "temperature" in params
        assert params["temperature"] == 23.5
        assert "energy_used" in params  # Mapped from energy_consumption
        assert params["energy_used"] == 120.5


def test_ai_digital_twin_integration() -> None:
    """The implementation guide's integration test (6.2)."""
    DigitalTwin._reset_instance()
    twin = DigitalTwin()
    twin.initialize()
    test_state = {
        "timestamp": "2025-02-24T14:30:22.123456",
        "system_status": "running",
        "production_line": {
            "temperature": 23.5,
            "energy_consumption": 120.0,
            "production_rate": 8.0,
        },
    }
    twin.state_manager.set_state(test_state)
    ai_integration = AIIntegration(twin)
    parameters = ai_integration.extract_parameters_from_state()
    assert "temperature" in parameters
    assert "energy_used" in parameters
    assert parameters["temperature"] == 23.5
    assert parameters["output_amount"] == 8.0  # production_rate -> output_amount


@pytest.fixture
def events() -> list[Event]:
    return []


@pytest.fixture
def ai(twin: DigitalTwin, trained_model: ManufacturingModel, events: list[Event]) -> AIIntegration:
    return AIIntegration(twin, model=trained_model, publish=events.append)


def run_line(twin: DigitalTwin, target: float, cycle_time: float = 50.0) -> None:
    assert twin.update(
        {
            "production_line": {
                "status": "running",
                "temperature": target,
                "target_temperature": target,
                "cycle_time": cycle_time,
                "production_rate": 8.0 * 30.0 / cycle_time,
                "energy_consumption": 90.0,
            }
        }
    )


def test_extraction_uses_the_mapping_and_model_names(ai: AIIntegration) -> None:
    state = {
        "production_line": {
            "temperature": 24.0,
            "energy_consumption": 99.0,
            "production_rate": 7.0,
            "cycle_time": 33.0,
            "efficiency": 0.91,
            "defect_rate": 0.03,
            "status": "running",
            "flag": True,
        }
    }
    assert ai.extract_parameters_from_state(state) == {
        "temperature": 24.0,
        "energy_used": 99.0,
        "output_amount": 7.0,
        "cycle_time": 33.0,
        "efficiency": 0.91,
        "defect_rate": 0.03,
    }


def test_predict_outcomes_from_the_current_state(ai: AIIntegration, twin: DigitalTwin) -> None:
    run_line(twin, 22.5, 30.0)
    prediction = ai.predict_outcomes()
    assert prediction["features_used"] == {"temperature": 22.5, "cycle_time": 30.0}
    assert prediction["efficiency"] == pytest.approx(0.92, abs=0.005)


def test_optimize_parameters_records_history(ai: AIIntegration, twin: DigitalTwin) -> None:
    run_line(twin, 25.5)
    optimized = ai.optimize_parameters()
    assert 10.0 <= optimized["energy_used"] <= 100.0  # OPTIMIZATION_CONSTRAINTS
    assert 20.0 <= optimized["cycle_time"] <= 60.0
    assert optimized["input_amount"] == 100.0  # DEFAULT_PARAMETERS fill what the twin lacks
    record = ai.optimization_history[-1]
    assert record["objective_value"] < record["objective_start"]
    assert record["original_params"]["temperature"] == 25.5
    # Nothing is applied by optimizing.
    assert twin.get_current_state()["production_line"]["target_temperature"] == 25.5


def test_optimize_parameters_with_infeasible_constraints_raises(ai: AIIntegration) -> None:
    with pytest.raises(ValueError, match="min 60 > max 20"):
        ai.optimize_parameters({"temperature": 23.0}, {"cycle_time": [60.0, 20.0]})


def test_apply_writes_setpoints_when_better(
    ai: AIIntegration, twin: DigitalTwin, events: list[Event]
) -> None:
    run_line(twin, 25.5)
    optimized = ai.optimize_parameters()
    assert ai.apply_optimized_parameters(optimized, simulation_steps=20) is True
    line = twin.get_current_state()["production_line"]
    assert line["target_temperature"] == optimized["temperature"]
    assert line["cycle_time"] == optimized["cycle_time"]
    assert line["temperature"] == 25.5  # the measured value is not written
    [event] = events
    assert isinstance(event, OptimizationEvent)
    assert event.category is EventCategory.OPTIMIZATION and event.source == "ai_optimization"
    record = ai.optimization_history[-1]
    assert record["applied"] is True
    assert record["simulated_objective_proposed"] < record["simulated_objective_current"]
    assert event.details["potential_improvement"] == pytest.approx(
        record["simulated_improvement_percent"]
    )


def test_apply_does_nothing_when_not_better(
    ai: AIIntegration, twin: DigitalTwin, events: list[Event]
) -> None:
    run_line(twin, 22.5)
    assert ai.apply_optimized_parameters({"temperature": 25.0, "cycle_time": 50.0}) is False
    assert twin.get_current_state()["production_line"]["target_temperature"] == 22.5
    assert events == []
    assert "not better" in ai.optimization_history[-1]["reason"]


def test_apply_refuses_an_overshooting_setpoint(
    ai: AIIntegration, twin: DigitalTwin, events: list[Event]
) -> None:
    # The line sits at 20 °C with its target at the optimum, 22.5 °C. A 26 °C target pulls it
    # up faster and looks better on average over 10 steps, but ends up past the optimum.
    assert twin.update(
        {
            "production_line": {
                "status": "running",
                "temperature": 20.0,
                "target_temperature": 22.5,
                "cycle_time": 50.0,
            }
        }
    )
    assert ai.apply_optimized_parameters({"temperature": 26.0}, simulation_steps=10) is False
    record = ai.optimization_history[-1]
    assert record["simulated_objective_proposed"] < record["simulated_objective_current"]
    assert "worse at the end" in record["reason"]
    assert twin.get_current_state()["production_line"]["target_temperature"] == 22.5
    assert events == []


def test_apply_rejects_setpoints_outside_limits(
    ai: AIIntegration, twin: DigitalTwin, events: list[Event]
) -> None:
    run_line(twin, 25.5)
    # 28 °C is outside the line temperature's threshold range [18, 27].
    assert ai.apply_optimized_parameters({"temperature": 28.0}) is False
    # 70 s is outside the cycle_time constraint [20, 60].
    assert ai.apply_optimized_parameters({"temperature": 22.5, "cycle_time": 70.0}) is False
    assert twin.get_current_state()["production_line"]["target_temperature"] == 25.5
    assert events == []
    reasons = [r["reason"] for r in list(ai.optimization_history)[-2:]]
    assert "threshold" in reasons[0] and "constraint" in reasons[1]


@pytest.mark.parametrize(
    "params, steps, message",
    [
        ({"temperature": "cool"}, 10, "finite number"),
        ({"efficiency": 0.99}, 10, "none of the setpoints"),
        ({"temperature": 22.5}, 0, "simulation_steps"),
    ],
)
def test_apply_rejects_bad_arguments(
    ai: AIIntegration, params: dict[str, Any], steps: int, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        ai.apply_optimized_parameters(params, simulation_steps=steps)


def test_apply_publishes_through_the_event_manager(
    twin: DigitalTwin, trained_model: ManufacturingModel
) -> None:
    received: list[Event] = []
    event_manager.subscribe(received.append, category=EventCategory.OPTIMIZATION)
    ai = AIIntegration(twin, model=trained_model)
    run_line(twin, 25.5)
    assert ai.apply_optimized_parameters({"temperature": 22.5, "cycle_time": 50.0})
    assert [type(e) for e in received] == [OptimizationEvent]


def feed_history(twin: DigitalTwin, n: int, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    for _ in range(n):
        temperature, cycle_time = float(rng.uniform(19.0, 26.0)), float(rng.uniform(22.0, 58.0))
        rate = 240.0 / cycle_time
        efficiency = 0.92 - 0.005 * (temperature - 22.5) ** 2
        assert twin.update(
            {
                "production_line": {
                    "status": "running",
                    "temperature": temperature,
                    "cycle_time": cycle_time,
                    "production_rate": rate,
                    "energy_consumption": 40.0 + 10.0 * rate / efficiency,
                    "efficiency": efficiency,
                    "defect_rate": 0.02 + 0.002 * (temperature - 22.5) ** 2,
                }
            }
        )


def test_train_model_from_digital_twin(
    twin: DigitalTwin, small_config: dict[str, Any], isolated_data_dir: Path
) -> None:
    model = ManufacturingModel(config=small_config, auto_load=False)
    ai = AIIntegration(twin, model=model, publish=lambda e: None)
    feed_history(twin, 60)
    assert ai.train_model_from_digital_twin() is True
    assert model.training_source == "digital_twin"
    assert model.metrics["r2_mean"] > 0.8
    assert (isolated_data_dir / "models" / DEFAULT_MODEL_FILE).is_file()
    assert ai.training_history[-1]["metrics"] == model.metrics


def test_train_with_a_history_reader_and_limit(
    twin: DigitalTwin, small_config: dict[str, Any]
) -> None:
    rng = np.random.default_rng(5)
    stored = []
    for _ in range(40):  # flat records, as a time-series store returns them
        temperature, cycle_time = float(rng.uniform(19.0, 26.0)), float(rng.uniform(22.0, 58.0))
        stored.append(
            {
                "production_line.status": "running",
                "production_line.temperature": temperature,
                "production_line.cycle_time": cycle_time,
                "production_line.production_rate": 240.0 / cycle_time,
                "production_line.energy_consumption": 40.0 + 2400.0 / cycle_time,
                "production_line.efficiency": 0.92 - 0.005 * (temperature - 22.5) ** 2,
                "production_line.defect_rate": 0.02 + 0.002 * (temperature - 22.5) ** 2,
            }
        )
    asked: list[int | None] = []

    def reader(limit: int | None) -> list[dict[str, Any]]:
        asked.append(limit)
        return stored[-limit:] if limit else stored

    model = ManufacturingModel(config=small_config, auto_load=False)
    ai = AIIntegration(twin, model=model, history_reader=reader, publish=lambda e: None)
    ai.settings = ai.settings.model_copy(update={"SAVE_TRAINED_MODEL": False})
    assert ai.train_model_from_digital_twin(history_limit=30) is True
    assert asked == [30]
    assert model.metrics["n_samples"] == 30  # the twin's own history has no running states


def test_train_with_a_reader_object(twin: DigitalTwin, small_config: dict[str, Any]) -> None:
    class Store:
        def read_states(self, limit: int | None) -> list[dict[str, Any]]:
            return [
                {
                    "production_line": {
                        "status": "running",
                        "temperature": 19.0 + 0.25 * i,
                        "cycle_time": 20.0 + i,
                        "production_rate": 240.0 / (20.0 + i),
                        "energy_consumption": 40.0 + 2400.0 / (20.0 + i),
                        "efficiency": 0.9,
                        "defect_rate": 0.03,
                    }
                }
                for i in range(30)
            ]

    model = ManufacturingModel(config=small_config, auto_load=False)
    ai = AIIntegration(twin, model=model, history_reader=Store(), publish=lambda e: None)
    ai.settings = ai.settings.model_copy(update={"SAVE_TRAINED_MODEL": False})
    assert ai.train_model_from_digital_twin() is True
    assert model.feature_ranges()["cycle_time"] == (20.0, 49.0)


def test_too_little_history_does_not_train(twin: DigitalTwin, small_config: dict[str, Any]) -> None:
    model = ManufacturingModel(config=small_config, auto_load=False)
    ai = AIIntegration(twin, model=model, publish=lambda e: None)
    feed_history(twin, 5)
    assert ai.train_model_from_digital_twin() is False
    assert not model.is_trained


def test_report_and_chart(ai: AIIntegration, twin: DigitalTwin, isolated_data_dir: Path) -> None:
    run_line(twin, 25.5)
    optimized = ai.optimize_parameters()
    ai.apply_optimized_parameters(optimized)
    ai.apply_optimized_parameters({"temperature": 26.5})
    report = ai.generate_optimization_report(save=True)
    assert report["total_optimizations"] == 1
    assert report["applied"] == 1 and report["rejected"] == 1
    assert report["average_improvement_percent"] > 0
    saved = Path(report["report_path"])
    assert saved.parent == isolated_data_dir / "reports"
    assert json.loads(saved.read_text())["total_optimizations"] == 1
    chart = ai.plot_optimization_history()
    assert chart.parent == isolated_data_dir / "charts"
    assert chart.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
