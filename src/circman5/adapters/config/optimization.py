"""Optimization and ML model settings (``optimization.json``)."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, field_validator

from circman5.adapters.config.ai_integration import check_constraints

Finite = Annotated[float, Field(allow_inf_nan=False)]


class ModelConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model_type: str = "gradient_boosting"
    n_estimators: Annotated[int, Field(ge=1, le=10_000)] = 100
    max_depth: Annotated[int, Field(ge=1, le=64)] = 3
    learning_rate: Annotated[float, Field(gt=0, le=1)] = 0.1
    random_state: int = 42


class TrainingParameters(BaseModel):
    model_config = ConfigDict(extra="forbid")

    test_size: Annotated[float, Field(gt=0, lt=1)] = 0.2
    cv_folds: Annotated[int, Field(ge=2, le=20)] = 5
    random_state: int = 42
    synthetic_samples: Annotated[int, Field(ge=10, le=1_000_000)] = 400


class OptimizationConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    DEFAULT_CONSTRAINTS: dict[str, list[Finite] | Finite] = Field(
        default_factory=lambda: {  # type: ignore[arg-type]
            "input_amount": [50.0, 200.0],
            "energy_used": [10.0, 100.0],
            "cycle_time": [20.0, 60.0],
            "efficiency": [0.5, 1.0],
            "defect_rate": [0.01, 0.1],
            "thickness_uniformity": [80.0, 100.0],
        }
    )
    MODEL_CONFIG: ModelConfig = Field(default_factory=ModelConfig)
    TRAINING_PARAMETERS: TrainingParameters = Field(default_factory=TrainingParameters)

    _check = field_validator("DEFAULT_CONSTRAINTS")(check_constraints)
