"""LCAIntegration: life-cycle assessment on the digital twin's state.

Why this module is long: the spec's LCAIntegration class (API 16.2.3) with its documented methods;
the extraction of LCA inputs from a state and the batch report belong to that one facade.

Technical manual 8.4 / API 16.2.3, architecture document 5.2. What is read from a state:

* materials: per material ``materials.<m>.consumption`` (the quantity used, kg),
  ``.waste`` and ``.recycled`` (kg); the running totals the twin's process model keeps. Stock on
  hand (``inventory``) is *not* a material input. A missing value is 0; a negative or
  non-numeric one raises ``ValueError``.
* energy: ``production_line.energy_consumption`` taken as the energy of the assessed period in
  kWh (pass ``energy_kwh=`` to give it explicitly), with its optional ``energy_source``.
* the recycling rate of a material: ``recycled / waste`` (at most 1); where there is no waste,
  ``LCA_DEFAULTS.default_recycling_rate``.
* the use phase: annual generation estimated from the solar glass used
  (:meth:`LCAAnalyzer.calculate_energy_generation`), ``LCA_DEFAULTS.lifetime_years`` and the
  grid intensity of ``LCA_DEFAULTS.grid_region``; end-of-life transport over
  ``LCA_DEFAULTS.transport_distance_km``. Each can be overridden per call.

:meth:`LCAIntegration.perform_lca_analysis` keeps each result in ``lca_results_history``
(bounded) and, with ``save_results`` (default), writes it as JSON to ``output_dir`` or
``<data dir>/lca_results``. Scenario comparisons and improvement simulations are what-ifs: they
are not added to the history and save only when asked. Thread-safe; no pandas on the hot path.
"""

from __future__ import annotations

import copy
import datetime
import json
import logging
import math
import os
import threading
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, replace
from numbers import Real
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import pandas as pd

from circman5 import paths
from circman5.errors import InvalidInputError
from circman5.manufacturing.lifecycle.lca_core import (
    LCAAnalyzer,
    LifeCycleImpact,
    safe_file_name,
)

if TYPE_CHECKING:
    from circman5.adapters.services.constants_service import ConstantsService
    from circman5.manufacturing.lifecycle.visualizer import LCAVisualizer

logger = logging.getLogger(__name__)

__all__ = ["LCAIntegration", "MaterialFlows", "StateSource"]

MATERIAL_COLUMNS = [
    "batch_id",
    "timestamp",
    "material_type",
    "quantity_used",
    "waste_generated",
    "recycled_amount",
]
ENERGY_COLUMNS = ["batch_id", "timestamp", "energy_source", "energy_consumption", "process_stage"]
_SUFFIXES = ("_quantity", "_waste", "_recycled")


class StateSource(Protocol):
    """What LCAIntegration needs of the DigitalTwin."""

    def get_current_state(self) -> dict[str, Any]: ...


def _amount(path: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, Real):
        raise InvalidInputError(f"{path} must be a number, got {value!r}")
    number = float(value)
    if not math.isfinite(number) or number < 0:
        raise InvalidInputError(f"{path} must be a finite, non-negative number, got {value!r}")
    return number


@dataclass(frozen=True)
class MaterialFlows:
    """What one state says for the LCA."""

    batch_id: str
    timestamp: str
    consumption: dict[str, float]
    waste: dict[str, float]
    recycled: dict[str, float]
    energy_kwh: float
    energy_source: str
    warnings: tuple[str, ...]


def _batch_id(state: Mapping[str, Any], timestamp: str) -> str:
    given = state.get("batch_id")
    if isinstance(given, str) and given:
        return given
    digits = "".join(ch for ch in timestamp[:19] if ch.isdigit())
    return f"batch_{digits}" if digits else "batch_unknown"


def read_flows(state: Mapping[str, Any], energy_kwh: float | None = None) -> MaterialFlows:
    """The material flows and energy of ``state`` (see the module doc)."""
    if not isinstance(state, Mapping):
        raise InvalidInputError("state must be a mapping")
    raw_time = state.get("timestamp")
    timestamp = (
        raw_time if isinstance(raw_time, str) else datetime.datetime.now(datetime.UTC).isoformat()
    )
    consumption: dict[str, float] = {}
    waste: dict[str, float] = {}
    recycled: dict[str, float] = {}
    warnings: list[str] = []
    materials = state.get("materials") or {}
    if not isinstance(materials, Mapping):
        raise InvalidInputError("state 'materials' must be a mapping")
    for name, entry in materials.items():
        if not isinstance(entry, Mapping):
            warnings.append(f"materials.{name} is not a mapping: skipped")
            continue
        prefix = f"materials.{name}"
        consumption[name] = _amount(f"{prefix}.consumption", entry.get("consumption", 0.0))
        waste[name] = _amount(f"{prefix}.waste", entry.get("waste", 0.0))
        recycled[name] = _amount(f"{prefix}.recycled", entry.get("recycled", 0.0))
    line = state.get("production_line") or {}
    if not isinstance(line, Mapping):
        raise InvalidInputError("state 'production_line' must be a mapping")
    if energy_kwh is not None:
        energy = _amount("energy_kwh", energy_kwh)
    else:
        energy = _amount("production_line.energy_consumption", line.get("energy_consumption", 0.0))
    source = line.get("energy_source")
    return MaterialFlows(
        batch_id=_batch_id(state, timestamp),
        timestamp=timestamp,
        consumption=consumption,
        waste=waste,
        recycled=recycled,
        energy_kwh=energy,
        energy_source=source if isinstance(source, str) else "grid_electricity",
        warnings=tuple(warnings),
    )


class LCAIntegration:
    """Integration between the digital twin and the LCA components.

    ``digital_twin``: the :class:`DigitalTwin` (anything with ``get_current_state()``).
    ``lca_analyzer`` / ``lca_visualizer``: default :class:`LCAAnalyzer` and
    :class:`~circman5.manufacturing.lifecycle.visualizer.LCAVisualizer`.
    """

    def __init__(
        self,
        digital_twin: StateSource,
        lca_analyzer: LCAAnalyzer | None = None,
        lca_visualizer: LCAVisualizer | None = None,
        *,
        constants: ConstantsService | None = None,
    ) -> None:
        self.digital_twin = digital_twin
        self.lca_analyzer = (
            lca_analyzer if lca_analyzer is not None else LCAAnalyzer(constants=constants)
        )
        if lca_visualizer is None:
            from circman5.manufacturing.lifecycle.visualizer import LCAVisualizer

            lca_visualizer = LCAVisualizer()
        self.lca_visualizer = lca_visualizer
        self.logger = logger
        self._lock = threading.Lock()
        self._reported_unknown: set[str] = set()
        self.lca_results_history: deque[dict[str, Any]] = deque(
            maxlen=self.lca_analyzer.defaults.history_length
        )

    def _state(self, state: Mapping[str, Any] | None) -> Mapping[str, Any]:
        return self.digital_twin.get_current_state() if state is None else state

    # -- extraction ----------------------------------------------------------------------------
    def extract_material_data_from_state(
        self, state: Mapping[str, Any] | None = None
    ) -> pd.DataFrame:
        """One row per material: ``batch_id, timestamp, material_type, quantity_used,
        waste_generated, recycled_amount`` (consumption, waste and recycled of the state)."""
        flows = read_flows(self._state(state))
        rows = [
            [
                flows.batch_id,
                flows.timestamp,
                name,
                quantity,
                flows.waste[name],
                flows.recycled[name],
            ]
            for name, quantity in flows.consumption.items()
        ]
        return pd.DataFrame(rows, columns=MATERIAL_COLUMNS)

    def extract_energy_data_from_state(
        self, state: Mapping[str, Any] | None = None
    ) -> pd.DataFrame:
        """One row: ``batch_id, timestamp, energy_source, energy_consumption, process_stage``
        (no row when the state has no ``production_line.energy_consumption``)."""
        current = self._state(state)
        flows = read_flows(current)
        line = current.get("production_line") or {}
        rows = []
        if "energy_consumption" in line:
            rows.append(
                [
                    flows.batch_id,
                    flows.timestamp,
                    flows.energy_source,
                    flows.energy_kwh,
                    "production",
                ]
            )
        return pd.DataFrame(rows, columns=ENERGY_COLUMNS)

    # -- analysis ------------------------------------------------------------------------------
    def recycling_rates(self, flows: MaterialFlows) -> tuple[dict[str, float], list[str]]:
        """Per material, recycled / waste (capped at 1) or the default rate without waste."""
        default = self.lca_analyzer.defaults.default_recycling_rate
        rates: dict[str, float] = {}
        warnings: list[str] = []
        for name, waste in flows.waste.items():
            recycled = flows.recycled.get(name, 0.0)
            if waste > 0:
                if recycled > waste:
                    warnings.append(f"{name}: recycled {recycled:g} > waste {waste:g}; rate 1")
                rates[name] = min(recycled / waste, 1.0)
            else:
                rates[name] = default
        return rates, warnings

    def _assess(
        self,
        flows: MaterialFlows,
        lifetime_years: float | None,
        transport_distance: float | None,
        grid_region: str | None,
        annual_energy_generation: float | None,
    ) -> LifeCycleImpact:
        analyzer = self.lca_analyzer
        d = analyzer.defaults
        rates, rate_warnings = self.recycling_rates(flows)
        generation = (
            annual_energy_generation
            if annual_energy_generation is not None
            else analyzer.calculate_energy_generation(flows.consumption)
        )
        impact = analyzer.perform_full_lca(
            material_inputs=flows.consumption,
            energy_consumption=flows.energy_kwh,
            lifetime_years=d.lifetime_years if lifetime_years is None else lifetime_years,
            annual_energy_generation=generation,
            grid_carbon_intensity=analyzer.grid_carbon_intensity(grid_region),
            recycling_rates=rates,
            transport_distance=(
                d.transport_distance_km if transport_distance is None else transport_distance
            ),
        )
        extra = (*flows.warnings, *rate_warnings)
        if extra:
            impact = replace(impact, warnings=(*impact.warnings, *extra))
        return impact

    def perform_lca_analysis(
        self,
        state: Mapping[str, Any] | None = None,
        batch_id: str | None = None,
        save_results: bool = True,
        output_dir: str | os.PathLike[str] | None = None,
        *,
        energy_kwh: float | None = None,
        lifetime_years: float | None = None,
        transport_distance: float | None = None,
        grid_region: str | None = None,
        annual_energy_generation: float | None = None,
    ) -> LifeCycleImpact:
        """LCA of ``state`` (default: the twin's current state); see the module doc.

        ``save_results``: write the result as JSON to ``output_dir`` (default
        ``<data dir>/lca_results``). The keyword arguments override the state's energy and
        ``LCA_DEFAULTS``. Bad input raises ``ValueError``.
        """
        flows = read_flows(self._state(state), energy_kwh)
        batch = batch_id or flows.batch_id
        impact = self._assess(
            flows, lifetime_years, transport_distance, grid_region, annual_energy_generation
        )
        if impact.unknown_materials:
            with self._lock:
                new = sorted(set(impact.unknown_materials) - self._reported_unknown)
                self._reported_unknown.update(new)
            if new:  # logged once per material; every result names them
                self.logger.warning(
                    "LCA of %s: no impact factor for %s (left out of the material figures)",
                    batch,
                    ", ".join(new),
                )
        record: dict[str, Any] = {
            "timestamp": datetime.datetime.now(datetime.UTC).isoformat(),
            "state_timestamp": flows.timestamp,
            "batch_id": batch,
            "impact": impact.to_dict(),
            "material_inputs": dict(flows.consumption),
            "energy_consumption": flows.energy_kwh,
        }
        if save_results:
            path = self.lca_analyzer.save_results(
                impact,
                batch,
                output_dir,
                extra={
                    "material_inputs": record["material_inputs"],
                    "energy_kwh": flows.energy_kwh,
                },
            )
            record["result_path"] = str(path)
        with self._lock:
            self.lca_results_history.append(record)
        return impact

    def compare_scenarios(
        self,
        baseline_state: Mapping[str, Any],
        alternative_state: Mapping[str, Any],
        scenario_name: str = "scenario_comparison",
        *,
        save_results: bool = False,
        output_dir: str | os.PathLike[str] | None = None,
    ) -> dict[str, Any]:
        """LCA of two states and their differences (alternative - baseline).

        ``percent_differences`` are relative to the baseline's magnitude (None where it is 0).
        ``save_results`` writes the comparison as JSON (``output_dir`` or
        ``<data dir>/reports``).
        """
        baseline = self._assess(read_flows(baseline_state), None, None, None, None)
        alternative = self._assess(read_flows(alternative_state), None, None, None, None)
        keys = (
            "manufacturing_impact",
            "use_phase_impact",
            "end_of_life_impact",
            "recycling_benefit",
            "total_carbon_footprint",
            "net_carbon_footprint",
        )
        absolute = {k: getattr(alternative, k) - getattr(baseline, k) for k in keys}
        percent: dict[str, float | None] = {}
        for key, difference in absolute.items():
            base = getattr(baseline, key)
            percent[key] = difference / abs(base) * 100.0 if base else None
        comparison: dict[str, Any] = {
            "timestamp": datetime.datetime.now(datetime.UTC).isoformat(),
            "scenario_name": scenario_name,
            "baseline_impact": baseline.to_dict(),
            "alternative_impact": alternative.to_dict(),
            "absolute_differences": absolute,
            "percent_differences": percent,
            "improved": alternative.total_carbon_footprint < baseline.total_carbon_footprint,
        }
        if save_results:
            directory = Path(output_dir) if output_dir is not None else paths.data_dir() / "reports"
            directory.mkdir(parents=True, exist_ok=True)
            path = directory / f"lca_comparison_{safe_file_name(scenario_name)}.json"
            path.write_text(json.dumps(comparison, indent=2), encoding="utf-8")
            comparison["report_path"] = str(path)
        return comparison

    def simulate_lca_improvements(
        self, improvement_scenarios: Mapping[str, Mapping[str, float]]
    ) -> dict[str, LifeCycleImpact | str]:
        """LCA of the current state (``"baseline"``) and of each scenario's adjusted copy.

        A scenario maps adjustments to factors: ``<material>_quantity`` (scales the material's
        consumption, waste and recycled amount), ``<material>_waste`` (scales waste and
        recycled), ``<material>_recycled`` (scales the recycled amount, at most the waste),
        ``energy_consumption`` (scales the energy) and ``energy_efficiency`` (divides it).
        A scenario that cannot be evaluated (unknown adjustment, negative or non-finite factor)
        gets an ``"error: ..."`` string instead of an impact; the others still run.
        """
        if not isinstance(improvement_scenarios, Mapping):
            raise InvalidInputError("improvement_scenarios must map names to adjustments")
        state = self.digital_twin.get_current_state()
        flows = read_flows(state)
        results: dict[str, LifeCycleImpact | str] = {
            "baseline": self._assess(flows, None, None, None, None)
        }
        for name, adjustments in improvement_scenarios.items():
            if name == "baseline":
                results[name] = "error: 'baseline' is reserved for the current state"
                continue
            try:
                adjusted = self._adjust(flows, adjustments)
                results[name] = self._assess(adjusted, None, None, None, None)
            except InvalidInputError as err:
                results[name] = f"error: {err}"
        return results

    @staticmethod
    def _adjust(flows: MaterialFlows, adjustments: Mapping[str, Any]) -> MaterialFlows:
        if not isinstance(adjustments, Mapping):
            raise InvalidInputError("a scenario maps adjustments to factors")
        consumption = dict(flows.consumption)
        waste = dict(flows.waste)
        recycled = dict(flows.recycled)
        energy = flows.energy_kwh
        for key, factor_value in adjustments.items():
            factor = _amount(f"factor of '{key}'", factor_value)
            if key == "energy_consumption":
                energy *= factor
                continue
            if key == "energy_efficiency":
                if factor == 0:
                    raise InvalidInputError("energy_efficiency must be > 0")
                energy /= factor
                continue
            suffix = next((s for s in _SUFFIXES if key.endswith(s)), None)
            material = key[: -len(suffix)] if suffix else ""
            if suffix is None or material not in consumption:
                raise InvalidInputError(
                    f"unknown adjustment '{key}' (use <material>_quantity, _waste, _recycled, "
                    f"energy_consumption or energy_efficiency; materials: "
                    f"{', '.join(sorted(consumption))})"
                )
            if suffix == "_quantity":
                consumption[material] *= factor
                waste[material] *= factor
                recycled[material] *= factor
            elif suffix == "_waste":
                waste[material] *= factor
                recycled[material] *= factor
            else:
                recycled[material] = min(recycled[material] * factor, waste[material])
        return MaterialFlows(
            batch_id=flows.batch_id,
            timestamp=flows.timestamp,
            consumption=consumption,
            waste=waste,
            recycled=recycled,
            energy_kwh=energy,
            energy_source=flows.energy_source,
            warnings=flows.warnings,
        )

    # -- reporting -----------------------------------------------------------------------------
    def generate_lca_report(
        self,
        num_results: int = 5,
        *,
        save: bool = False,
        output_dir: str | os.PathLike[str] | None = None,
    ) -> dict[str, Any]:
        """Summary of the latest ``num_results`` analyses (averages, trends, the latest).

        ``save`` writes it as JSON (``output_dir`` or ``<data dir>/reports``); the path is in
        ``report["report_path"]``.
        """
        if isinstance(num_results, bool) or not isinstance(num_results, int) or num_results < 1:
            raise InvalidInputError(f"num_results must be a positive int, got {num_results!r}")
        with self._lock:
            total = len(self.lca_results_history)
            recent = [copy.deepcopy(r) for r in list(self.lca_results_history)[-num_results:]]
        keys = (
            "manufacturing_impact",
            "use_phase_impact",
            "end_of_life_impact",
            "recycling_benefit",
            "total_carbon_footprint",
            "net_carbon_footprint",
        )
        trends = {k: [r["impact"][k] for r in recent] for k in keys}
        averages = {k: (sum(v) / len(v) if v else 0.0) for k, v in trends.items()}
        unknown = sorted({m for r in recent for m in r["impact"]["unknown_materials"]})
        report: dict[str, Any] = {
            "generated_at": datetime.datetime.now(datetime.UTC).isoformat(),
            "total_analyses": total,
            "num_results": len(recent),
            "average_impacts": averages,
            "impact_trends": trends,
            "batch_ids": [r["batch_id"] for r in recent],
            "latest_analysis": recent[-1] if recent else None,
            "unknown_materials": unknown,
            "results": recent,
        }
        if save:
            directory = Path(output_dir) if output_dir is not None else paths.data_dir() / "reports"
            directory.mkdir(parents=True, exist_ok=True)
            stamp = datetime.datetime.now(datetime.UTC).strftime("%Y%m%dT%H%M%S%fZ")
            path = directory / f"lca_report_{stamp}.json"
            path.write_text(json.dumps(report, indent=2), encoding="utf-8")
            report["report_path"] = str(path)
        return report
