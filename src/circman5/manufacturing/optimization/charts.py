"""Optimization charts (PNG), drawn with matplotlib's Agg canvas.

No pyplot and no global backend switch: each chart is a ``matplotlib.figure.Figure`` on its own
``FigureCanvasAgg``, created inside the function, so drawing is safe from worker threads and
importing this module loads no matplotlib at all.
"""

from __future__ import annotations

import datetime
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from circman5 import paths

if TYPE_CHECKING:  # matplotlib itself is imported when a chart is drawn
    from matplotlib.figure import Figure

__all__ = ["new_figure", "optimization_history_figure", "plot_optimization_history", "save_png"]


def new_figure(width: float = 8.0, height: float = 5.0) -> Figure:
    """A matplotlib Figure with an Agg canvas attached."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), dpi=100, layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def save_png(figure: Figure, output_path: str | os.PathLike[str] | None, default_name: str) -> Path:
    """Write ``figure`` as PNG to ``output_path`` (default ``<data dir>/charts/<name>``)."""
    if output_path is None:
        stamp = datetime.datetime.now(datetime.UTC).strftime("%Y%m%dT%H%M%S%fZ")
        path = paths.data_dir() / "charts" / f"{default_name}_{stamp}.png"
    else:
        path = Path(output_path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, format="png")
    return path


def optimization_history_figure(history: Sequence[Mapping[str, Any]]) -> Figure:
    """Objective before/after per optimization run, and simulated gains of applications."""
    figure = new_figure(9.0, 6.0)
    top, bottom = figure.subplots(2, 1)
    runs = [r for r in history if r.get("kind") != "apply" and "objective_start" in r]
    xs = list(range(1, len(runs) + 1))
    if runs:
        top.plot(xs, [r["objective_start"] for r in runs], "o--", color="#888888", label="current")
        top.plot(xs, [r["objective_value"] for r in runs], "o-", color="#1f77b4", label="optimized")
        top.legend(loc="best")
        top.set_xticks(xs)
    else:
        top.text(0.5, 0.5, "no optimization runs yet", ha="center", va="center")
    top.set_title("Predicted objective per optimization run (lower is better)")
    top.set_xlabel("run")
    top.set_ylabel("objective")
    applies = [r for r in history if r.get("kind") == "apply"]
    if applies:
        gains = [float(r.get("simulated_improvement_percent", 0.0)) for r in applies]
        colors = ["#2ca02c" if r.get("applied") else "#d62728" for r in applies]
        positions = list(range(1, len(applies) + 1))
        bottom.bar(positions, gains, color=colors)
        bottom.axhline(0.0, color="black", linewidth=0.8)
        bottom.set_xticks(positions)
    else:
        bottom.text(0.5, 0.5, "no applications yet", ha="center", va="center")
    bottom.set_title("Simulated improvement of applied (green) and rejected (red) proposals")
    bottom.set_xlabel("application")
    bottom.set_ylabel("improvement (%)")
    return figure


def plot_optimization_history(
    history: Sequence[Mapping[str, Any]], output_path: str | os.PathLike[str] | None = None
) -> Path:
    """Save :func:`optimization_history_figure` as PNG; the path written."""
    return save_png(optimization_history_figure(history), output_path, "optimization_history")
