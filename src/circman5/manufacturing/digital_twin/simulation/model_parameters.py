"""The process model's parameters: ``SIMULATION_PARAMETERS`` validated with overrides, and the
accepted range of each known state path (what simulations, calibration and Monte Carlo may
set)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import ValidationError

from circman5.adapters.config.simulation_parameters import SimulationParameters
from circman5.errors import InvalidInputError

__all__ = ["load_simulation_parameters", "parameter_bounds"]

# Bounds of the known parameter paths: (low, high), inclusive.
_LINE_BOUNDS: dict[str, tuple[float, float]] = {
    "production_line.temperature": (-100.0, 500.0),
    "production_line.target_temperature": (-100.0, 500.0),
    "production_line.energy_consumption": (0.0, 1e6),
    "production_line.production_rate": (0.0, 1e6),
    "production_line.efficiency": (0.0, 1.0),
    "production_line.defect_rate": (0.0, 1.0),
    "production_line.cycle_time": (1e-3, 1e6),
    "environment.temperature": (-60.0, 80.0),
    "environment.humidity": (0.0, 100.0),
}
_MATERIAL_BOUNDS: dict[str, tuple[float, float]] = {
    "inventory": (0.0, 1e12),
    "quality": (0.0, 1.0),
    "consumption": (0.0, 1e15),
    "waste": (0.0, 1e15),
    "recycled": (0.0, 1e15),
}


def parameter_bounds(path: str) -> tuple[float, float] | None:
    """The accepted range of a known numeric parameter path, or None when the path is unknown.

    Known paths: ``production_line.{temperature, target_temperature, energy_consumption,
    production_rate, efficiency, defect_rate, cycle_time}``, ``environment.{temperature,
    humidity}`` and ``materials.<name>.{inventory, quality, consumption, waste, recycled}``.
    """
    bounds = _LINE_BOUNDS.get(path)
    if bounds is not None:
        return bounds
    parts = path.split(".")
    if len(parts) == 3 and parts[0] == "materials" and parts[1].isidentifier():
        return _MATERIAL_BOUNDS.get(parts[2])
    return None


def load_simulation_parameters(
    parameters: SimulationParameters | Mapping[str, Any] | None = None,
    base: SimulationParameters | None = None,
) -> SimulationParameters:
    """``parameters`` as a validated :class:`SimulationParameters`.

    A mapping overrides keys of ``base`` (default: the configured ``SIMULATION_PARAMETERS``);
    an invalid key or value raises :class:`InvalidInputError` with pydantic's reason.
    """
    if isinstance(parameters, SimulationParameters):
        return parameters
    if base is None:
        from circman5.adapters.services.constants_service import ConstantsService

        base = ConstantsService().get_digital_twin_model().SIMULATION_PARAMETERS
    if not parameters:
        return base
    try:
        return SimulationParameters.model_validate({**base.model_dump(), **dict(parameters)})
    except ValidationError as err:
        raise InvalidInputError(f"invalid simulation parameters: {err}") from err
