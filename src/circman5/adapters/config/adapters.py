"""One adapter per JSON constants file in the configuration directory."""

from __future__ import annotations

from typing import Any

from circman5.adapters.base.config_adapter import ConfigAdapterBase
from circman5.adapters.config.digital_twin import DigitalTwinConstants
from circman5.adapters.config.impact_factors import ImpactFactors
from circman5.adapters.config.optimization import OptimizationConfig
from circman5.adapters.config.plant import (
    ManufacturingConstants,
    MonitoringConfig,
    VisualizationConfig,
)


class DigitalTwinAdapter(ConfigAdapterBase[DigitalTwinConstants]):
    """``digital_twin.json``: DIGITAL_TWIN_CONFIG, SIMULATION_PARAMETERS, thresholds, ..."""

    model = DigitalTwinConstants
    file_name = "digital_twin.json"


class ImpactFactorsAdapter(ConfigAdapterBase[ImpactFactors]):
    model = ImpactFactors
    file_name = "impact_factors.json"


class OptimizationAdapter(ConfigAdapterBase[OptimizationConfig]):
    model = OptimizationConfig
    file_name = "optimization.json"


class ManufacturingAdapter(ConfigAdapterBase[ManufacturingConstants]):
    model = ManufacturingConstants
    file_name = "manufacturing.json"


class MonitoringAdapter(ConfigAdapterBase[MonitoringConfig]):
    model = MonitoringConfig
    file_name = "monitoring.json"


class VisualizationAdapter(ConfigAdapterBase[VisualizationConfig]):
    model = VisualizationConfig
    file_name = "visualization.json"


ADAPTERS: dict[str, type[ConfigAdapterBase[Any]]] = {
    "manufacturing": ManufacturingAdapter,
    "impact_factors": ImpactFactorsAdapter,
    "optimization": OptimizationAdapter,
    "monitoring": MonitoringAdapter,
    "visualization": VisualizationAdapter,
    "digital_twin": DigitalTwinAdapter,
}
