"""AI optimization of the line's process parameters (technical manual 7).

:class:`~.model.ManufacturingModel` predicts outcomes from process parameters;
:class:`~.optimizer.ProcessOptimizer` finds better setpoints on it. See ``docs/ai_and_lca.md``.
"""

from circman5.manufacturing.optimization.model import ManufacturingModel
from circman5.manufacturing.optimization.optimizer import OptimizationResult, ProcessOptimizer

__all__ = ["ManufacturingModel", "OptimizationResult", "ProcessOptimizer"]
