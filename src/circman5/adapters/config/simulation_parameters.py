"""The ``SIMULATION_PARAMETERS`` and ``FORECAST_CHECK`` sections of the digital twin config."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

PositiveFloat = Annotated[float, Field(gt=0, allow_inf_nan=False)]
NonNegativeFloat = Annotated[float, Field(ge=0, allow_inf_nan=False)]
Fraction = Annotated[float, Field(ge=0, le=1, allow_inf_nan=False)]


class SimulationParameters(BaseModel):
    """Process-model constants (technical manual 16.1.1)."""

    model_config = ConfigDict(extra="forbid")

    temperature_increment: NonNegativeFloat = 0.5
    energy_consumption_increment: NonNegativeFloat = 2.0
    production_rate_increment: NonNegativeFloat = 0.2
    default_simulation_steps: Annotated[int, Field(ge=1, le=1_000_000)] = 10
    target_temperature: float = Field(default=22.5, allow_inf_nan=False)
    temperature_regulation: Fraction = 0.1
    silicon_wafer_consumption_rate: NonNegativeFloat = 0.5
    solar_glass_consumption_rate: NonNegativeFloat = 0.2


class ForecastCheckConfig(BaseModel):
    """The forecast check: warn before a threshold is crossed."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = True
    horizon_steps: Annotated[int, Field(ge=1, le=10_000)] = 20
    min_interval_s: NonNegativeFloat = 5.0
    iterations: Annotated[int, Field(ge=1, le=100_000)] = 200
    uncertainty: Fraction = 0.1
    probability_threshold: Fraction = 0.5
