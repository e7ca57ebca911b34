"""Access to the life-cycle impact factors (technical manual 16.1.2).

The factors live in ``impact_factors.json`` and are read through the ConstantsService (validated,
with the spec's defaults), never at import: :func:`get_impact_factors` returns them all, and the
module attributes ``MATERIAL_IMPACT_FACTORS``, ``ENERGY_IMPACT_FACTOR``,
``GRID_CARBON_INTENSITIES``, ``TRANSPORT_IMPACT_FACTOR``, ``DISPOSAL_IMPACT_FACTORS``,
``RECYCLING_BENEFIT_FACTORS`` and ``LCA_DEFAULTS`` are looked up on access::

    from circman5.manufacturing.lifecycle import impact_factors
    impact_factors.MATERIAL_IMPACT_FACTORS["silicon_wafer"]   # 120.0 kg CO2-eq per kg
"""

from __future__ import annotations

from typing import Any

from circman5.json_types import JsonValue

__all__ = ["FACTOR_NAMES", "get_impact_factor", "get_impact_factors"]

FACTOR_NAMES: tuple[str, ...] = (
    "MATERIAL_IMPACT_FACTORS",
    "ENERGY_IMPACT_FACTOR",
    "GRID_CARBON_INTENSITIES",
    "TRANSPORT_IMPACT_FACTOR",
    "DISPOSAL_IMPACT_FACTORS",
    "RECYCLING_BENEFIT_FACTORS",
    "LCA_DEFAULTS",
)


def get_impact_factors() -> dict[str, Any]:
    """Every factor (a copy): ``ConstantsService().get_impact_factors()``."""
    from circman5.adapters.services.constants_service import ConstantsService

    return ConstantsService().get_impact_factors()


def get_impact_factor(name: str) -> JsonValue:
    """One top-level entry of the factors (``KeyError`` when unknown)."""
    factors = get_impact_factors()
    if name not in factors:
        raise KeyError(f"unknown impact factor '{name}'")
    factor: JsonValue = factors[name]  # the constants are dumped in JSON mode
    return factor


def __getattr__(name: str) -> JsonValue:
    if name in FACTOR_NAMES:
        return get_impact_factor(name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
