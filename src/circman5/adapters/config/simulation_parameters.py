"""The ``SIMULATION_PARAMETERS`` and ``FORECAST_CHECK`` sections of the digital twin config.

The first eight keys of :class:`SimulationParameters` are the spec's (technical manual 16.1.1),
with the spec's defaults. The rest are the constants of the PV process model
(``circman5.manufacturing.digital_twin.simulation.process_models``); every one has a default, so
a ``digital_twin.json`` with only the spec's keys still loads. Units are per simulation step:
one step is ``time_step_s`` seconds of simulated time.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

PositiveFloat = Annotated[float, Field(gt=0, allow_inf_nan=False)]
NonNegativeFloat = Annotated[float, Field(ge=0, allow_inf_nan=False)]
Fraction = Annotated[float, Field(ge=0, le=1, allow_inf_nan=False)]
Temperature = Annotated[float, Field(ge=-100, le=500, allow_inf_nan=False)]


class SimulationParameters(BaseModel):
    """Process-model constants (technical manual 16.1.1, plus the PV model's own)."""

    model_config = ConfigDict(extra="forbid")

    # -- the spec's keys -------------------------------------------------------------------
    #: Kept from the spec; the PV model's temperature follows the regulation equation instead.
    temperature_increment: NonNegativeFloat = 0.5
    #: Largest change of ``energy_consumption`` (power, kW) per step: the power ramp.
    energy_consumption_increment: NonNegativeFloat = 2.0
    #: Largest change of ``production_rate`` (modules per step) per step: the rate ramp.
    production_rate_increment: NonNegativeFloat = 0.2
    default_simulation_steps: Annotated[int, Field(ge=1, le=1_000_000)] = 10
    #: The process's optimal temperature (°C): the regulation target unless the state carries
    #: ``production_line.target_temperature``, and the reference for efficiency and defects.
    target_temperature: Temperature = 22.5
    #: ``T += (T_target - T) * temperature_regulation + noise`` each step.
    temperature_regulation: Fraction = 0.1
    #: Silicon wafers drawn per produced module.
    silicon_wafer_consumption_rate: NonNegativeFloat = 0.5
    #: Solar glass drawn per produced module.
    solar_glass_consumption_rate: NonNegativeFloat = 0.2

    # -- the PV process model ----------------------------------------------------------------
    #: Standard deviation of the line temperature noise per step (°C).
    temperature_noise: NonNegativeFloat = 0.05
    #: Simulated seconds per step (timestamps of simulated states).
    time_step_s: PositiveFloat = 1.0
    #: The cycle time at which the line makes ``nominal_production_rate`` (s per module).
    nominal_cycle_time: PositiveFloat = 30.0
    #: Modules per step at ``nominal_cycle_time``; the rate target is
    #: ``nominal_production_rate * nominal_cycle_time / cycle_time`` while running, 0 when idle.
    nominal_production_rate: NonNegativeFloat = 8.0
    #: Standard deviation of the production rate noise per step (running line only).
    production_rate_noise: NonNegativeFloat = 0.05
    #: Power drawn by an idle line (kW): the energy target with no output.
    idle_power: NonNegativeFloat = 40.0
    #: Extra power per module per step at efficiency 1 (divided by the efficiency).
    energy_per_module: NonNegativeFloat = 10.0
    #: Standard deviation of the power noise per step (kW).
    energy_noise: NonNegativeFloat = 0.5
    #: Efficiency at the optimal temperature.
    base_efficiency: Fraction = 0.92
    #: Efficiency lost per K² of distance from ``target_temperature``.
    efficiency_temperature_sensitivity: NonNegativeFloat = 0.005
    #: Defect rate at the optimal temperature.
    base_defect_rate: Fraction = 0.02
    #: Defect rate added per K² of distance from ``target_temperature``.
    defect_temperature_sensitivity: NonNegativeFloat = 0.002
    #: Fraction of drawn material scrapped in processing (defective modules add their share).
    material_waste_fraction: Fraction = 0.03
    #: Fraction of the waste that is recycled.
    recycling_rate: Fraction = 0.8
    #: Consumption rates (per module) of further materials, by name under ``materials``.
    other_material_consumption_rates: dict[str, NonNegativeFloat] = Field(default_factory=dict)
    #: The hall's temperature (°C) that ``environment.temperature`` drifts around.
    ambient_temperature: Temperature = 22.0
    #: The relative humidity (%) that ``environment.humidity`` drifts around.
    ambient_humidity: Annotated[float, Field(ge=0, le=100, allow_inf_nan=False)] = 45.0
    #: Pull of the environment back to ambient per step.
    environment_reversion: Fraction = 0.05
    #: Standard deviation of the environment temperature noise per step (°C).
    environment_temperature_noise: NonNegativeFloat = 0.05
    #: Standard deviation of the humidity noise per step (%).
    humidity_noise: NonNegativeFloat = 0.2

    @field_validator("other_material_consumption_rates")
    @classmethod
    def _material_names(cls, value: dict[str, float]) -> dict[str, float]:
        for name in value:
            if not name.isidentifier():
                raise ValueError(f"'{name}' is not a material name (an identifier)")
            if name in ("silicon_wafer", "solar_glass"):
                raise ValueError(f"'{name}' has its own key '{name}_consumption_rate'")
        return value

    def consumption_rates(self) -> dict[str, float]:
        """Material drawn per produced module, by material name."""
        rates = {
            "silicon_wafer": self.silicon_wafer_consumption_rate,
            "solar_glass": self.solar_glass_consumption_rate,
        }
        rates.update(self.other_material_consumption_rates)
        return rates


class StatisticalForecastConfig(BaseModel):
    """The statistical forecaster: a damped Holt trend per monitored path, learned online.

    Time constants are in seconds (sampling is irregular and per path), so the smoothing is the
    same whether a path is sampled at 10 Hz or every 5 s. ``time_constants_s`` lists one
    ``[level, trend]`` pair per time scale; every scale is checked and the most confident one
    speaks (a fast scale catches steep ramps, a slow one slow drifts).
    """

    model_config = ConfigDict(extra="forbid")

    enabled: bool = True
    #: The forecasting method; ``"damped_holt"`` is the only one today.
    method: Literal["damped_holt"] = "damped_holt"
    #: How far ahead a breach is looked for (s).
    horizon_s: Annotated[float, Field(gt=0, le=86_400, allow_inf_nan=False)] = 30.0
    #: Forecast at most this often (s); 0 checks on every twin update.
    check_interval_s: NonNegativeFloat = 1.0
    #: Samples a path needs before it is forecast.
    min_history: Annotated[int, Field(ge=3, le=100_000)] = 5
    #: Warn when the probability of a breach within the horizon reaches this.
    probability_threshold: Annotated[float, Field(gt=0.5, lt=1, allow_inf_nan=False)] = 0.8
    #: ``[level, trend]`` smoothing time constants (s), one pair per time scale.
    time_constants_s: list[tuple[PositiveFloat, PositiveFloat]] = Field(
        default_factory=lambda: [(0.5, 1.5), (1.5, 4.0), (8.0, 40.0)], min_length=1, max_length=4
    )
    #: The trend decays as ``exp(-t / trend_damping_s)`` into the future; null: no damping.
    trend_damping_s: PositiveFloat | None = 120.0
    #: Recent forecast errors per path and lag whose median absolute value sets the band.
    residual_window: Annotated[int, Field(ge=4, le=256)] = 16
    #: A path silent for longer than this (s) and 1.2 of its mean sample intervals is taken to hold
    #: its last value (devices that report by exception); null: silence teaches nothing.
    hold_after_s: PositiveFloat | None = 1.0
    #: Points of the horizon at which the forecast is evaluated (the API returns them).
    horizon_points: Annotated[int, Field(ge=2, le=200)] = 16

    @field_validator("time_constants_s")
    @classmethod
    def _trend_slower_than_level(
        cls, value: list[tuple[float, float]]
    ) -> list[tuple[float, float]]:
        for level, trend in value:
            if trend < level:
                raise ValueError(
                    f"the trend time constant {trend} s must not be shorter than the level's "
                    f"{level} s"
                )
        return value


class ForecastCheckConfig(BaseModel):
    """The forecast check: warn before a threshold is crossed.

    The first keys drive the process-model Monte Carlo (used on the paths whose calibrated model
    was accepted); ``statistical`` configures the forecaster learned from each path's own data.
    """

    model_config = ConfigDict(extra="forbid")

    enabled: bool = True
    horizon_steps: Annotated[int, Field(ge=1, le=10_000)] = 20
    min_interval_s: NonNegativeFloat = 5.0
    iterations: Annotated[int, Field(ge=1, le=100_000)] = 200
    uncertainty: Fraction = 0.1
    #: Warn when the probability of a breach within the horizon reaches this.
    probability_threshold: Annotated[float, Field(gt=0, le=1, allow_inf_nan=False)] = 0.5
    #: A published forecast clears (and may be published again later) once its probability
    #: falls below ``probability_threshold * (1 - clear_hysteresis)``.
    clear_hysteresis: Annotated[float, Field(ge=0, lt=1, allow_inf_nan=False)] = 0.2
    #: The statistical forecaster (every monitored path).
    statistical: StatisticalForecastConfig = Field(default_factory=StatisticalForecastConfig)

    @model_validator(mode="after")
    def _bounded_work(self) -> ForecastCheckConfig:
        if self.horizon_steps * self.iterations > 10_000_000:
            raise ValueError(
                f"horizon_steps * iterations = {self.horizon_steps * self.iterations} "
                "exceeds 10,000,000 (one check would take seconds)"
            )
        return self
