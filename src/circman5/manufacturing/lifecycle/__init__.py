"""Life-cycle assessment of the modules made on the line (technical manual 8, 16.3.3).

:class:`~.lca_core.LCAAnalyzer` implements the spec's formulas; :class:`~.lca_core.LifeCycleImpact`
holds a result; :class:`~.visualizer.LCAVisualizer` draws it; :class:`~.batch_footprint.
BatchFootprint` turns each finished batch into a footprint KPI and event.
"""

from circman5.manufacturing.lifecycle.batch_footprint import BatchFootprint
from circman5.manufacturing.lifecycle.lca_core import LCAAnalyzer, LifeCycleImpact
from circman5.manufacturing.lifecycle.visualizer import LCAVisualizer

__all__ = ["BatchFootprint", "LCAAnalyzer", "LCAVisualizer", "LifeCycleImpact"]
