"""The ``AI_INTEGRATION`` section of the digital twin config (technical manual 16.1.1)."""

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

    DEFAULT_PARAMETERS: dict[str, FiniteFloat] = Field(default_factory=_default_parameters)
    PARAMETER_MAPPING: dict[str, str] = Field(default_factory=_default_mapping)
    OPTIMIZATION_CONSTRAINTS: dict[str, list[FiniteFloat] | FiniteFloat] = Field(
        default_factory=_default_constraints
    )

    _check = field_validator("OPTIMIZATION_CONSTRAINTS")(check_constraints)
