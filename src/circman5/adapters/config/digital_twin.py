"""The digital twin's constants (technical manual 16.1.1) as validated pydantic models."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from circman5.adapters.config.ai_integration import AIIntegrationConfig
from circman5.adapters.config.simulation_parameters import (
    ForecastCheckConfig,
    SimulationParameters,
)
from circman5.adapters.config.thresholds import (
    ThresholdEntry,
    ThresholdRule,
    normalize_threshold,
)

PositiveFloat = Annotated[float, Field(gt=0, allow_inf_nan=False)]
NonNegativeFloat = Annotated[float, Field(ge=0, allow_inf_nan=False)]


class TwinCoreConfig(BaseModel):
    """``DIGITAL_TWIN_CONFIG``."""

    model_config = ConfigDict(extra="forbid")

    name: str = "SoliTek_DigitalTwin"
    update_frequency: PositiveFloat = 1.0
    history_length: Annotated[int, Field(ge=1, le=10_000_000)] = 1000
    simulation_steps: Annotated[int, Field(ge=1, le=1_000_000)] = 10
    data_sources: list[str] = Field(
        default_factory=lambda: ["sensors", "manual_input", "manufacturing_system"]
    )
    synchronization_mode: Literal["real_time", "batch", "manual", "event_driven"] = "real_time"
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = "INFO"


class SynchronizationConfig(BaseModel):
    """``SYNCHRONIZATION_CONFIG``: how the synchronization engine ticks."""

    model_config = ConfigDict(extra="forbid")

    default_sync_mode: Literal["real_time", "batch", "manual", "event_driven"] = "real_time"
    tick_rate_hz: Annotated[float, Field(gt=0, le=100, allow_inf_nan=False)] = 10.0
    default_sync_interval: PositiveFloat = 1.0
    stale_timeout_s: PositiveFloat = 5.0
    retry_interval: PositiveFloat = 1.0
    timeout: PositiveFloat = 10.0
    max_pending_samples: Annotated[int, Field(ge=1)] = 1_000_000


class StateManagementConfig(BaseModel):
    """``STATE_MANAGEMENT``."""

    model_config = ConfigDict(extra="forbid")

    default_history_length: Annotated[int, Field(ge=1, le=10_000_000)] = 1000
    validation_level: Literal["basic", "standard", "strict"] = "standard"


class EventNotificationConfig(BaseModel):
    """``EVENT_NOTIFICATION``."""

    model_config = ConfigDict(extra="forbid")

    persistence_enabled: bool = True
    max_events: Annotated[int, Field(ge=1)] = 1000
    default_alert_severity: Literal["info", "warning", "error", "critical"] = "warning"
    publish_state_changes: bool = True
    publish_threshold_breaches: bool = True
    publish_simulation_results: bool = True
    alarm_deadband_fraction: Annotated[float, Field(ge=0, le=0.5, allow_inf_nan=False)] = 0.01


class DigitalTwinConstants(BaseModel):
    """The whole ``digital_twin.json`` file."""

    model_config = ConfigDict(extra="forbid")

    DIGITAL_TWIN_CONFIG: TwinCoreConfig = Field(default_factory=TwinCoreConfig)
    SIMULATION_PARAMETERS: SimulationParameters = Field(default_factory=SimulationParameters)
    SYNCHRONIZATION_CONFIG: SynchronizationConfig = Field(default_factory=SynchronizationConfig)
    STATE_MANAGEMENT: StateManagementConfig = Field(default_factory=StateManagementConfig)
    EVENT_NOTIFICATION: EventNotificationConfig = Field(default_factory=EventNotificationConfig)
    PARAMETER_THRESHOLDS: dict[str, ThresholdEntry] = Field(
        default_factory=lambda: {  # type: ignore[arg-type]
            "production_line.temperature": [18.0, 27.0],
            "production_line.energy_consumption": [0.0, 200.0],
            "production_line.production_rate": [0.0, 12.0],
            "environment.temperature": [15.0, 30.0],
            "environment.humidity": [30.0, 70.0],
        }
    )
    AI_INTEGRATION: AIIntegrationConfig = Field(default_factory=AIIntegrationConfig)
    FORECAST_CHECK: ForecastCheckConfig = Field(default_factory=ForecastCheckConfig)

    @field_validator("PARAMETER_THRESHOLDS")
    @classmethod
    def _paths(cls, value: dict[str, Any]) -> dict[str, Any]:
        for path in value:
            parts = path.split(".")
            if len(parts) < 2 or not all(p.isidentifier() for p in parts):
                raise ValueError(f"'{path}' is not a dotted twin path like 'section.field'")
        return value

    def threshold_rules(self) -> dict[str, ThresholdRule]:
        fraction = self.EVENT_NOTIFICATION.alarm_deadband_fraction
        return {
            path: normalize_threshold(path, entry, fraction)
            for path, entry in self.PARAMETER_THRESHOLDS.items()
        }
