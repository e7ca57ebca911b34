"""Manufacturing, monitoring and visualization constants (small, typed, validated)."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

NonNegative = Annotated[float, Field(ge=0, allow_inf_nan=False)]
Fraction = Annotated[float, Field(ge=0, le=1, allow_inf_nan=False)]


class ManufacturingConstants(BaseModel):
    model_config = ConfigDict(extra="forbid")

    MANUFACTURING_STAGES: list[str] = Field(
        default_factory=lambda: [
            "silicon_purification",
            "wafer_production",
            "cell_production",
            "module_assembly",
            "lamination",
            "testing",
        ]
    )
    QUALITY_THRESHOLDS: dict[str, NonNegative] = Field(
        default_factory=lambda: {"min_efficiency": 0.18, "max_defect_rate": 0.05}
    )
    MODULE_MATERIALS_KG: dict[str, NonNegative] = Field(
        default_factory=lambda: {
            "silicon_wafer": 0.5,
            "solar_glass": 11.0,
            "aluminum_frame": 2.5,
            "EVA_encapsulant": 0.9,
            "backsheet": 0.4,
            "copper_wiring": 0.2,
            "silver_paste": 0.02,
        }
    )


class MonitoringConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    KPI_RATE_S: Annotated[float, Field(gt=0)] = 10.0
    EFFICIENCY_WARNING: Fraction = 0.8
    DEFECT_RATE_WARNING: Fraction = 0.05


class VisualizationConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    DPI: Annotated[int, Field(ge=50, le=600)] = 100
    FIGURE_SIZE: list[Annotated[float, Field(gt=0)]] = Field(
        default_factory=lambda: [10.0, 6.0], min_length=2, max_length=2
    )
    COLOR_PALETTE: list[str] = Field(
        default_factory=lambda: ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd"]
    )
