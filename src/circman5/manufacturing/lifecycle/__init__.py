"""Life-cycle assessment of the modules made on the line (technical manual 8, 16.3.3).

:class:`~.lca_core.LCAAnalyzer` implements the spec's formulas; :class:`~.lca_core.LifeCycleImpact`
holds a result; :class:`~.visualizer.LCAVisualizer` draws it; :class:`~.batch_footprint.
BatchFootprint` turns each finished batch into a footprint KPI and event.
"""

import importlib

_EXPORTS = {
    "BatchFootprint": "batch_footprint",
    "LCAAnalyzer": "lca_core",
    "LifeCycleImpact": "lca_core",
    "LCAVisualizer": "visualizer",
}

__all__ = ["BatchFootprint", "LCAAnalyzer", "LCAVisualizer", "LifeCycleImpact"]


def __getattr__(name: str) -> object:
    """Import on first use: the service needs the footprint, not matplotlib or pandas."""
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    module = importlib.import_module(f"{__name__}.{_EXPORTS[name]}")
    return getattr(module, name)
