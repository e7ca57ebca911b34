"""Life-cycle assessment of PV modules: the spec's formulas (technical manual 8.2, 8.3, 16.3.3).

All figures are kg CO2-eq; quantities are kg, energy kWh, distances km. With ``q_m`` the
quantity of material ``m``, ``r_m`` its recycling rate (0..1, default 0) and the factors of
``impact_factors.json`` (technical manual 16.1.2):

* manufacturing ``= Σ q_m · MATERIAL_IMPACT_FACTORS[m] + E · ENERGY_IMPACT_FACTOR``
* use phase ``= G · operational_impact_factor - G · grid_carbon_intensity`` with
  ``G = annual_energy_generation · lifetime_years`` (the spec's 1 % operational impact,
  ``LCA_DEFAULTS.operational_impact_factor = 0.01``; negative = avoided emissions)
* end of life ``= Σ q_m · DISPOSAL_IMPACT_FACTORS[m] · (1 - r_m)
  + (Σ q_m / 1000) · transport_distance · TRANSPORT_IMPACT_FACTOR`` (per tonne-km)
* recycling benefit ``= Σ q_m · r_m · RECYCLING_BENEFIT_FACTORS[m]`` (negative = credit)

``LifeCycleImpact.total_carbon_footprint = manufacturing + use phase + end of life`` exactly as
16.3.3; the recycling benefit is *not* in it: like module D of EN 15804 it is a credit for
material returned beyond the product's life, reported beside the total, and
``net_carbon_footprint = total + recycling_benefit`` includes it. (The recycled share already
avoids its disposal impact in the end-of-life term; adding the credit to the total as well
would count recycling twice in the headline figure.)

A material without a ``MATERIAL_IMPACT_FACTORS`` entry contributes nothing to the
material-specific terms (only its mass to transport); it is named in
``LifeCycleImpact.unknown_materials`` and ``warnings``, never silently dropped. Negative or
non-finite quantities, energy, lifetime, generation, intensity or distance, and recycling rates
outside 0..1, raise :class:`~circman5.errors.InvalidInputError` (a ``ValueError``).

The analyzer works on plain dicts (a full LCA takes microseconds); pandas is used only where
the API takes DataFrames.
"""

from __future__ import annotations

import datetime
import json
import logging
import math
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from numbers import Real
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from circman5 import paths
from circman5.adapters.config.impact_factors import ImpactFactors, LCADefaults
from circman5.errors import InvalidInputError
from circman5.files import atomic_write

if TYPE_CHECKING:
    import pandas as pd

    from circman5.adapters.services.constants_service import ConstantsService

logger = logging.getLogger(__name__)

__all__ = ["LCAAnalyzer", "LifeCycleImpact", "safe_file_name"]

_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]+")


def safe_file_name(name: str) -> str:
    """``name`` reduced to letters, digits, ``_ . -`` (for file names built from batch ids)."""
    cleaned = _UNSAFE.sub("_", name).strip("._")
    return cleaned[:120] or "unnamed"


@dataclass(frozen=True)
class LifeCycleImpact:
    """Result of an LCA (kg CO2-eq), with its breakdown and what could not be assessed."""

    manufacturing_impact: float
    use_phase_impact: float
    end_of_life_impact: float
    recycling_benefit: float = 0.0
    unknown_materials: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()
    #: Manufacturing impact per material (materials with a factor).
    material_impacts: Mapping[str, float] = field(default_factory=dict)
    #: Manufacturing impact of the energy.
    energy_impact: float = 0.0
    #: Disposal impact per material (end of life, without transport).
    disposal_impacts: Mapping[str, float] = field(default_factory=dict)
    #: End-of-life transport impact.
    transport_impact: float = 0.0
    #: Recycling credit per material.
    recycling_benefits: Mapping[str, float] = field(default_factory=dict)

    @property
    def total_carbon_footprint(self) -> float:
        """``manufacturing + use phase + end of life`` (technical manual 16.3.3)."""
        return self.manufacturing_impact + self.use_phase_impact + self.end_of_life_impact

    @property
    def total_impact(self) -> float:
        """Alias of :attr:`total_carbon_footprint`."""
        return self.total_carbon_footprint

    @property
    def net_carbon_footprint(self) -> float:
        """The total with the recycling credit: ``total_carbon_footprint + recycling_benefit``."""
        return self.total_carbon_footprint + self.recycling_benefit

    def to_dict(self) -> dict[str, Any]:
        """JSON-compatible dict of every figure."""
        return {
            "manufacturing_impact": self.manufacturing_impact,
            "use_phase_impact": self.use_phase_impact,
            "end_of_life_impact": self.end_of_life_impact,
            "recycling_benefit": self.recycling_benefit,
            "total_carbon_footprint": self.total_carbon_footprint,
            "net_carbon_footprint": self.net_carbon_footprint,
            "unknown_materials": list(self.unknown_materials),
            "warnings": list(self.warnings),
            "breakdown": {
                "material_impacts": dict(self.material_impacts),
                "energy_impact": self.energy_impact,
                "disposal_impacts": dict(self.disposal_impacts),
                "transport_impact": self.transport_impact,
                "recycling_benefits": dict(self.recycling_benefits),
            },
        }


def _amount(name: str, value: Any) -> float:
    """A finite, non-negative number."""
    if isinstance(value, bool) or not isinstance(value, Real):
        raise InvalidInputError(f"{name} must be a number, got {value!r}")
    number = float(value)
    if not math.isfinite(number):
        raise InvalidInputError(f"{name} must be finite, got {value!r}")
    if number < 0:
        raise InvalidInputError(f"{name} must not be negative, got {number:g}")
    return number


def _quantities(material_inputs: Mapping[str, Any]) -> dict[str, float]:
    if not isinstance(material_inputs, Mapping):
        raise InvalidInputError("material_inputs must be a mapping of material -> kg")
    return {str(m): _amount(f"quantity of '{m}'", q) for m, q in material_inputs.items()}


def _rates(recycling_rates: Mapping[str, Any] | None) -> dict[str, float]:
    if recycling_rates is None:
        return {}
    if not isinstance(recycling_rates, Mapping):
        raise InvalidInputError("recycling_rates must be a mapping of material -> 0..1")
    rates = {}
    for material, rate in recycling_rates.items():
        value = _amount(f"recycling rate of '{material}'", rate)
        if value > 1.0:
            raise InvalidInputError(f"recycling rate of '{material}' must be within 0..1")
        rates[str(material)] = value
    return rates


class LCAAnalyzer:
    """Analyzer of life-cycle impacts (technical manual 8.2, API 16.2.3).

    ``impact_factors``: a dict in the form of ``impact_factors.json`` (keys it omits take the
    spec's defaults) or None for ``ConstantsService().get_impact_factors()``. Invalid factors
    raise :class:`InvalidInputError`. Stateless after construction: thread-safe.
    """

    def __init__(
        self,
        impact_factors: Mapping[str, Any] | None = None,
        constants: ConstantsService | None = None,
    ) -> None:
        self.logger = logger
        if impact_factors is None:
            if constants is None:
                from circman5.adapters.services.constants_service import ConstantsService

                constants = ConstantsService()
            impact_factors = constants.get_impact_factors()
        try:
            model = ImpactFactors.model_validate(dict(impact_factors))
        except ValidationError as err:
            raise InvalidInputError(f"invalid impact factors: {err}") from err
        self.settings = model
        #: The factors as a dict (the spec's ``self.impact_factors``).
        self.impact_factors: dict[str, Any] = model.model_dump()
        self._material = dict(model.MATERIAL_IMPACT_FACTORS)
        self._energy = model.ENERGY_IMPACT_FACTOR
        self._disposal = dict(model.DISPOSAL_IMPACT_FACTORS)
        self._benefit = dict(model.RECYCLING_BENEFIT_FACTORS)
        self._transport = model.TRANSPORT_IMPACT_FACTOR
        self._operational = model.LCA_DEFAULTS.operational_impact_factor

    @property
    def defaults(self) -> LCADefaults:
        """``LCA_DEFAULTS`` (lifetime, transport distance, grid region, ...)."""
        return self.settings.LCA_DEFAULTS

    def grid_carbon_intensity(self, region: str | None = None) -> float:
        """kg CO2-eq per kWh of ``region`` (default ``LCA_DEFAULTS.grid_region``)."""
        name = region or self.settings.LCA_DEFAULTS.grid_region
        intensities = self.settings.GRID_CARBON_INTENSITIES
        if name not in intensities:
            raise InvalidInputError(
                f"unknown grid region '{name}' (known: {', '.join(sorted(intensities))})"
            )
        return float(intensities[name])

    # -- the phases ----------------------------------------------------------------------------
    def calculate_manufacturing_impact(
        self, material_inputs: Mapping[str, Any], energy_consumption: float
    ) -> float:
        """``Σ q_m · MATERIAL_IMPACT_FACTORS[m] + energy_consumption · ENERGY_IMPACT_FACTOR``."""
        quantities = _quantities(material_inputs)
        energy = _amount("energy_consumption", energy_consumption)
        return self._manufacturing(quantities, energy)[0]

    def _manufacturing(
        self, quantities: Mapping[str, float], energy: float
    ) -> tuple[float, dict[str, float], float]:
        factors = self._material
        per_material = {m: q * factors[m] for m, q in quantities.items() if m in factors}
        energy_impact = energy * self._energy
        return sum(per_material.values()) + energy_impact, per_material, energy_impact

    def calculate_use_phase_impact(
        self,
        lifetime_years: float,
        annual_energy_generation: float,
        grid_carbon_intensity: float,
    ) -> float:
        """``G · 0.01 - G · grid_carbon_intensity`` with ``G = generation · lifetime``."""
        lifetime = _amount("lifetime_years", lifetime_years)
        generation = _amount("annual_energy_generation", annual_energy_generation)
        intensity = _amount("grid_carbon_intensity", grid_carbon_intensity)
        total_generation = generation * lifetime
        return total_generation * self._operational - total_generation * intensity

    def calculate_end_of_life_impact(
        self,
        material_inputs: Mapping[str, Any],
        recycling_rates: Mapping[str, Any] | None,
        transport_distance: float,
    ) -> float:
        """``Σ q_m · DISPOSAL[m] · (1 - r_m) + (Σ q_m / 1000) · distance · TRANSPORT``."""
        quantities = _quantities(material_inputs)
        rates = _rates(recycling_rates)
        distance = _amount("transport_distance", transport_distance)
        return self._end_of_life(quantities, rates, distance)[0]

    def _end_of_life(
        self, quantities: Mapping[str, float], rates: Mapping[str, float], distance: float
    ) -> tuple[float, dict[str, float], float]:
        factors = self._disposal
        per_material = {
            m: q * factors[m] * (1.0 - rates.get(m, 0.0))
            for m, q in quantities.items()
            if m in factors
        }
        transport = sum(quantities.values()) / 1000.0 * distance * self._transport
        return sum(per_material.values()) + transport, per_material, transport

    def calculate_recycling_benefit(
        self, material_inputs: Mapping[str, Any], recycling_rates: Mapping[str, Any] | None
    ) -> float:
        """``Σ q_m · r_m · RECYCLING_BENEFIT_FACTORS[m]`` (negative: a credit)."""
        quantities = _quantities(material_inputs)
        return self._recycling(quantities, _rates(recycling_rates))[0]

    def _recycling(
        self, quantities: Mapping[str, float], rates: Mapping[str, float]
    ) -> tuple[float, dict[str, float]]:
        factors = self._benefit
        per_material = {
            m: q * rates.get(m, 0.0) * factors[m] for m, q in quantities.items() if m in factors
        }
        return sum(per_material.values()), per_material

    def perform_full_lca(
        self,
        material_inputs: Mapping[str, Any],
        energy_consumption: float,
        lifetime_years: float,
        annual_energy_generation: float,
        grid_carbon_intensity: float,
        recycling_rates: Mapping[str, Any] | None,
        transport_distance: float,
    ) -> LifeCycleImpact:
        """All phases at once, with the breakdown and the unknown materials."""
        quantities = _quantities(material_inputs)
        rates = _rates(recycling_rates)
        energy = _amount("energy_consumption", energy_consumption)
        distance = _amount("transport_distance", transport_distance)
        use = self.calculate_use_phase_impact(
            lifetime_years, annual_energy_generation, grid_carbon_intensity
        )
        manufacturing, material_impacts, energy_impact = self._manufacturing(quantities, energy)
        end_of_life, disposal, transport = self._end_of_life(quantities, rates, distance)
        benefit, benefits = self._recycling(quantities, rates)
        unknown = tuple(sorted(m for m, q in quantities.items() if m not in self._material))
        warnings: list[str] = []
        if unknown:
            warnings.append(
                "no impact factor for " + ", ".join(unknown) + ": not in the material figures"
            )
        no_disposal = sorted(
            m for m, q in quantities.items() if m in self._material and m not in self._disposal
        )
        if no_disposal:
            warnings.append("no disposal factor for " + ", ".join(no_disposal))
        return LifeCycleImpact(
            manufacturing_impact=manufacturing,
            use_phase_impact=use,
            end_of_life_impact=end_of_life,
            recycling_benefit=benefit,
            unknown_materials=unknown,
            warnings=tuple(warnings),
            material_impacts=material_impacts,
            energy_impact=energy_impact,
            disposal_impacts=disposal,
            transport_impact=transport,
            recycling_benefits=benefits,
        )

    # -- helpers of the integration ------------------------------------------------------------
    def calculate_energy_generation(self, material_inputs: Mapping[str, Any]) -> float:
        """Annual kWh of the modules made from ``material_inputs``' solar glass.

        ``glass kg / glass_kg_per_m2 · annual_irradiation_kwh_per_m2 · module_efficiency``.
        """
        quantities = _quantities(material_inputs)
        d = self.settings.LCA_DEFAULTS
        area = quantities.get("solar_glass", 0.0) / d.glass_kg_per_m2
        return area * d.annual_irradiation_kwh_per_m2 * d.module_efficiency

    def calculate_recycling_rates(self, material_data: pd.DataFrame) -> dict[str, float]:
        """Per material, recycled / waste of a material-flow frame (``default_recycling_rate``
        where there is no waste; at most 1)."""
        if material_data.empty:
            return {}
        sums = material_data.groupby("material_type")[["waste_generated", "recycled_amount"]].sum()
        default = self.settings.LCA_DEFAULTS.default_recycling_rate
        rates: dict[str, float] = {}
        for material, row in sums.iterrows():
            waste, recycled = float(row["waste_generated"]), float(row["recycled_amount"])
            rates[str(material)] = min(recycled / waste, 1.0) if waste > 0 else default
        return rates

    def save_results(
        self,
        impact: LifeCycleImpact,
        batch_id: str | None = None,
        output_dir: str | os.PathLike[str] | None = None,
        extra: Mapping[str, Any] | None = None,
    ) -> Path:
        """Write ``impact`` as JSON to ``output_dir`` (default ``<data dir>/lca_results``)."""
        directory = Path(output_dir) if output_dir is not None else paths.data_dir() / "lca_results"
        directory.mkdir(parents=True, exist_ok=True)
        name = f"lca_impact_{safe_file_name(batch_id)}.json" if batch_id else "lca_impact.json"
        path = directory / name
        payload = {
            "batch_id": batch_id,
            "saved_at": datetime.datetime.now(datetime.UTC).isoformat(),
            "impact": impact.to_dict(),
            **dict(extra or {}),
        }
        atomic_write(path, json.dumps(payload, indent=2, default=str))
        self.logger.debug("saved LCA results to %s", path)
        return path
