"""The ``AI_INTEGRATION`` section of the digital twin config (technical manual 16.1.1).

The first three keys are the spec's, with the spec's defaults. The rest configure how
:class:`~circman5.manufacturing.digital_twin.integration.ai_integration.AIIntegration` validates
and applies a proposal (see ``docs/ai_and_lca.md``); every one has a default.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, field_validator

FiniteFloat = Annotated[float, Field(allow_inf_nan=False)]


def _default_parameters() -> dict[str, float]:
    return {
        "input_amount": 100.0,
        "energy_used": 50.0,
        "cycle_time": 30.0,
        "efficiency": 0.9,
        "defect_rate": 0.05,
        "thickness_uniformity": 95.0,
    }


def _default_mapping() -> dict[str, str]:
    return {
        "production_rate": "output_amount",
        "energy_consumption": "energy_used",
        "temperature": "temperature",
        "cycle_time": "cycle_time",
    }


def _default_constraints() -> dict[str, list[float] | float]:
    return {"energy_used": [10.0, 100.0], "cycle_time": [20.0, 60.0], "defect_rate": [0.01, 0.1]}


def _default_setpoints() -> dict[str, str]:
    return {"temperature": "target_temperature", "cycle_time": "cycle_time"}


def check_constraints(value: dict[str, list[float] | float]) -> dict[str, list[float] | float]:
    """A constraint is a fixed value or a ``[min, max]`` pair with min <= max."""
    for name, bound in value.items():
        if isinstance(bound, list):
            if len(bound) != 2:
                raise ValueError(f"{name}: a range is [min, max], got {len(bound)} values")
            if bound[0] > bound[1]:
                raise ValueError(f"{name}: min {bound[0]} > max {bound[1]}")
    return value


class AIIntegrationConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    #: Start values of the model parameters the twin state does not provide.
    DEFAULT_PARAMETERS: dict[str, FiniteFloat] = Field(default_factory=_default_parameters)
    #: ``production_line`` field of the twin -> model parameter name.
    PARAMETER_MAPPING: dict[str, str] = Field(default_factory=_default_mapping)
    #: Constraints of ``AIIntegration.optimize_parameters`` when the caller gives none.
    OPTIMIZATION_CONSTRAINTS: dict[str, list[FiniteFloat] | FiniteFloat] = Field(
        default_factory=_default_constraints
    )
    #: Model parameter -> ``production_line`` setpoint written by ``apply_optimized_parameters``.
    SETPOINT_MAPPING: dict[str, str] = Field(default_factory=_default_setpoints)
    #: Seed of the paired what-if simulations that validate a proposal (same noise for both).
    VALIDATION_SEED: Annotated[int, Field(ge=0)] = 0
    #: A proposal is applied only when its simulated objective is lower than the current
    #: setpoints' by more than this (objective units of ``OPTIMIZER.objective_weights``).
    MIN_IMPROVEMENT: Annotated[float, Field(ge=0, allow_inf_nan=False)] = 0.0
    #: Optimization records kept in memory for the report.
    HISTORY_LENGTH: Annotated[int, Field(ge=1, le=1_000_000)] = 1000
    #: Save the model trained by ``train_model_from_digital_twin`` as the default model file.
    SAVE_TRAINED_MODEL: bool = True

    _check = field_validator("OPTIMIZATION_CONSTRAINTS")(check_constraints)

    @field_validator("SETPOINT_MAPPING", "PARAMETER_MAPPING")
    @classmethod
    def _names(cls, value: dict[str, str]) -> dict[str, str]:
        for key, target in value.items():
            for name in (key, target):
                if not all(part.isidentifier() for part in name.split(".")):
                    raise ValueError(f"'{name}' is not a parameter name")
        return value
