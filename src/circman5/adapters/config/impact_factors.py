"""Life-cycle impact factors (technical manual 16.1.2)."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

Finite = Annotated[float, Field(allow_inf_nan=False)]
NonNegative = Annotated[float, Field(ge=0, allow_inf_nan=False)]


class ImpactFactors(BaseModel):
    model_config = ConfigDict(extra="forbid")

    MATERIAL_IMPACT_FACTORS: dict[str, NonNegative] = Field(
        default_factory=lambda: {
            "silicon_wafer": 120.0,
            "solar_glass": 25.0,
            "aluminum_frame": 40.0,
            "copper_wiring": 35.0,
            "silver_paste": 200.0,
            "EVA_encapsulant": 15.0,
            "backsheet": 18.0,
        }
    )
    ENERGY_IMPACT_FACTOR: NonNegative = 0.5
    GRID_CARBON_INTENSITIES: dict[str, NonNegative] = Field(
        default_factory=lambda: {
            "EU_average": 0.275,
            "US_average": 0.385,
            "China": 0.555,
            "Sweden": 0.013,
            "France": 0.055,
            "Germany": 0.338,
        }
    )
    TRANSPORT_IMPACT_FACTOR: NonNegative = 0.025
    DISPOSAL_IMPACT_FACTORS: dict[str, NonNegative] = Field(
        default_factory=lambda: {
            "silicon_wafer": 10.0,
            "solar_glass": 5.0,
            "aluminum_frame": 8.0,
            "copper_wiring": 7.0,
            "silver_paste": 15.0,
            "EVA_encapsulant": 12.0,
            "backsheet": 14.0,
        }
    )
    RECYCLING_BENEFIT_FACTORS: dict[str, Finite] = Field(
        default_factory=lambda: {
            "silicon_wafer": -80.0,
            "solar_glass": -20.0,
            "aluminum_frame": -35.0,
            "copper_wiring": -30.0,
            "silver_paste": -180.0,
        }
    )
