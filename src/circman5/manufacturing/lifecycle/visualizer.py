"""LCA charts (PNG): breakdown by phase, by material, and scenario comparisons.

Each ``*_figure`` method returns a matplotlib ``Figure`` on its own Agg canvas (created inside
the call: no pyplot, no global backend switch, safe from worker threads); each ``plot_*`` method
saves it as PNG to ``output_path`` (default ``<data dir>/charts/<name>_<time>.png``) and
returns the path.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from circman5 import paths
from circman5.manufacturing.lifecycle.lca_core import LifeCycleImpact, safe_file_name
from circman5.manufacturing.optimization.charts import new_figure, save_png

if TYPE_CHECKING:  # matplotlib itself is imported when a chart is drawn
    from matplotlib.figure import Figure

logger = logging.getLogger(__name__)

__all__ = ["LCAVisualizer"]

_PHASE_COLORS = {
    "Manufacturing": "#d62728",
    "Use phase": "#2ca02c",
    "End of life": "#ff7f0e",
    "Recycling credit": "#1f77b4",
}


def _label_bars(axes: Any, bars: Any) -> None:
    for bar in bars:
        height = bar.get_height()
        axes.annotate(
            f"{height:,.0f}",
            (bar.get_x() + bar.get_width() / 2.0, height),
            ha="center",
            va="bottom" if height >= 0 else "top",
            fontsize=8,
        )


class LCAVisualizer:
    """Charts of :class:`LifeCycleImpact` results (kg CO2-eq)."""

    def phase_breakdown_figure(self, impact: LifeCycleImpact, title: str = "") -> Figure:
        """Bars per phase, the recycling credit, and the total / net lines."""
        figure = new_figure(8.0, 5.0)
        axes = figure.subplots()
        values = {
            "Manufacturing": impact.manufacturing_impact,
            "Use phase": impact.use_phase_impact,
            "End of life": impact.end_of_life_impact,
            "Recycling credit": impact.recycling_benefit,
        }
        bars = axes.bar(
            list(values), list(values.values()), color=[_PHASE_COLORS[k] for k in values]
        )
        _label_bars(axes, bars)
        axes.axhline(0.0, color="black", linewidth=0.8)
        axes.axhline(
            impact.total_carbon_footprint,
            color="black",
            linestyle="--",
            label=f"total {impact.total_carbon_footprint:,.0f}",
        )
        axes.axhline(
            impact.net_carbon_footprint,
            color="grey",
            linestyle=":",
            label=f"net of recycling credit {impact.net_carbon_footprint:,.0f}",
        )
        axes.legend(loc="best")
        axes.set_ylabel("kg CO2-eq")
        axes.set_title(title or "Life-cycle impact by phase")
        if impact.unknown_materials:
            axes.set_xlabel(
                "not assessed (no impact factor): " + ", ".join(impact.unknown_materials),
                color="#d62728",
            )
        return figure

    def material_breakdown_figure(self, impact: LifeCycleImpact, title: str = "") -> Figure:
        """Horizontal stacked bars per material: manufacturing, disposal, recycling credit."""
        figure = new_figure(8.0, 5.0)
        axes = figure.subplots()
        materials = sorted(
            set(impact.material_impacts)
            | set(impact.disposal_impacts)
            | set(impact.recycling_benefits)
        )
        labels = [*materials, "energy", "transport"]
        manufacturing = [impact.material_impacts.get(m, 0.0) for m in materials]
        manufacturing += [impact.energy_impact, 0.0]
        disposal = [impact.disposal_impacts.get(m, 0.0) for m in materials]
        disposal += [0.0, impact.transport_impact]
        credit = [impact.recycling_benefits.get(m, 0.0) for m in materials] + [0.0, 0.0]
        positions = list(range(len(labels)))
        axes.barh(
            positions, manufacturing, color=_PHASE_COLORS["Manufacturing"], label="manufacturing"
        )
        axes.barh(
            positions,
            disposal,
            left=manufacturing,
            color=_PHASE_COLORS["End of life"],
            label="end of life",
        )
        axes.barh(
            positions, credit, color=_PHASE_COLORS["Recycling credit"], label="recycling credit"
        )
        axes.set_yticks(positions, labels)
        axes.axvline(0.0, color="black", linewidth=0.8)
        axes.set_xlabel("kg CO2-eq")
        axes.set_title(title or "Life-cycle impact by material")
        axes.legend(loc="best")
        return figure

    def scenario_comparison_figure(
        self, results: Mapping[str, LifeCycleImpact | str], title: str = ""
    ) -> Figure:
        """Grouped bars (phases) per scenario with its total; error strings are skipped."""
        figure = new_figure(9.0, 5.0)
        axes = figure.subplots()
        scenarios = {k: v for k, v in results.items() if isinstance(v, LifeCycleImpact)}
        names = list(scenarios)
        phases = [
            ("Manufacturing", "manufacturing_impact"),
            ("Use phase", "use_phase_impact"),
            ("End of life", "end_of_life_impact"),
            ("Recycling credit", "recycling_benefit"),
        ]
        width = 0.8 / len(phases)
        for i, (label, attribute) in enumerate(phases):
            xs = [j + (i - (len(phases) - 1) / 2) * width for j in range(len(names))]
            values = [getattr(scenarios[n], attribute) for n in names]
            axes.bar(xs, values, width, label=label, color=_PHASE_COLORS[label])
        totals = [scenarios[n].total_carbon_footprint for n in names]
        axes.plot(range(len(names)), totals, "kD", label="total")
        axes.set_xticks(range(len(names)), names)
        axes.axhline(0.0, color="black", linewidth=0.8)
        axes.set_ylabel("kg CO2-eq")
        axes.set_title(title or "Scenario comparison")
        axes.legend(loc="best")
        skipped = [k for k, v in results.items() if not isinstance(v, LifeCycleImpact)]
        if skipped:
            axes.set_xlabel("not evaluated: " + ", ".join(skipped), color="#d62728")
        return figure

    # -- saving --------------------------------------------------------------------------------
    def plot_phase_breakdown(
        self, impact: LifeCycleImpact, output_path: str | os.PathLike[str] | None = None
    ) -> Path:
        return save_png(self.phase_breakdown_figure(impact), output_path, "lca_phases")

    def plot_material_breakdown(
        self, impact: LifeCycleImpact, output_path: str | os.PathLike[str] | None = None
    ) -> Path:
        return save_png(self.material_breakdown_figure(impact), output_path, "lca_materials")

    def plot_scenario_comparison(
        self,
        results: Mapping[str, LifeCycleImpact | str],
        output_path: str | os.PathLike[str] | None = None,
    ) -> Path:
        return save_png(self.scenario_comparison_figure(results), output_path, "lca_scenarios")

    def create_comprehensive_report(
        self,
        impact: LifeCycleImpact,
        output_dir: str | os.PathLike[str] | None = None,
        batch_id: str | None = None,
    ) -> list[Path]:
        """The phase and material charts of one result, saved in ``output_dir``
        (default ``<data dir>/charts``); the paths written."""
        directory = Path(output_dir) if output_dir is not None else paths.data_dir() / "charts"
        suffix = f"_{safe_file_name(batch_id)}" if batch_id else ""
        return [
            self.plot_phase_breakdown(impact, directory / f"lca_phases{suffix}.png"),
            self.plot_material_breakdown(impact, directory / f"lca_materials{suffix}.png"),
        ]
