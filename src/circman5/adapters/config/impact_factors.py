"""Life-cycle impact factors (technical manual 16.1.2) and the LCA's assessment defaults.

The factor keys are the spec's, with the spec's values. ``LCA_DEFAULTS`` (added, every key with
a default) holds the assumptions of an LCA run from the twin state; see ``docs/ai_and_lca.md``.
Units: material factors kg CO2-eq per kg, energy kg CO2-eq per kWh, grid intensities kg CO2-eq
per kWh, transport kg CO2-eq per tonne-km.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, model_validator

Finite = Annotated[float, Field(allow_inf_nan=False)]
NonNegative = Annotated[float, Field(ge=0, allow_inf_nan=False)]


class LCADefaults(BaseModel):
    """Assumptions of ``LCAIntegration.perform_lca_analysis`` (all overridable per call)."""

    model_config = ConfigDict(extra="forbid")

    #: Service life of the modules (years).
    lifetime_years: NonNegative = 25.0
    #: Distance from the plant to end-of-life treatment (km).
    transport_distance_km: NonNegative = 100.0
    #: Key of ``GRID_CARBON_INTENSITIES`` for the use phase's avoided emissions.
    grid_region: str = "EU_average"
    #: End-of-life recycling rate of a material whose state shows no waste to measure it by.
    default_recycling_rate: Annotated[float, Field(ge=0, le=1, allow_inf_nan=False)] = 0.0
    #: Use-phase operational impact per kWh generated (the spec's 1 %: 0.01 kg CO2-eq/kWh).
    operational_impact_factor: NonNegative = 0.01
    #: Annual generation estimate: module area = glass kg / glass_kg_per_m2, times irradiation
    #: and module efficiency.
    glass_kg_per_m2: Annotated[float, Field(gt=0, allow_inf_nan=False)] = 10.0
    annual_irradiation_kwh_per_m2: NonNegative = 1000.0
    module_efficiency: Annotated[float, Field(ge=0, le=1, allow_inf_nan=False)] = 0.2
    #: LCA results kept in memory for the report.
    history_length: Annotated[int, Field(ge=1, le=1_000_000)] = 1000


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
    LCA_DEFAULTS: LCADefaults = Field(default_factory=LCADefaults)

    @model_validator(mode="after")
    def _grid_region(self) -> ImpactFactors:
        region = self.LCA_DEFAULTS.grid_region
        if region not in self.GRID_CARBON_INTENSITIES:
            raise ValueError(
                f"LCA_DEFAULTS.grid_region '{region}' is not in GRID_CARBON_INTENSITIES"
            )
        return self
