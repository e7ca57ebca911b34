"""The process optimizer: better setpoints for the line, on the manufacturing model.

Why this module is long: the spec's ProcessOptimizer with its documented methods; bounds, the
objective and the scipy run share one problem definition.

Problem (technical manual 16.3.2): minimize ``f(θ) = Σ w_i · ŷ_i(θ)`` (the objective weights of
``OPTIMIZER.objective_weights``, default the spec's ``-100 · efficiency + 0.1 · energy +
1000 · defect_rate``; ``ŷ`` are the model's predictions; a weight may also name a feature) over
the control parameters θ (``OPTIMIZER.control_parameters``, default ``temperature``,
``cycle_time``), subject to

* bounds ``θ_min <= θ <= θ_max``: each control's constraint, intersected with the range the
  model was trained on (the optimizer never extrapolates). A fixed number fixes the control;
* outcome constraints ``g_i(θ) <= 0``: a ``[min, max]`` constraint on a predicted outcome
  (``energy_used``, ``defect_rate``, ``efficiency``, ``output_amount``), plus ``min_quality``
  (quality = 1 - defect rate) and ``max_energy`` of the specialised methods.

Constraints are ``DEFAULT_CONSTRAINTS`` (``optimization.json``) updated key by key with the
caller's (a value is a number or ``[min, max]``). Features that are not controls and other
parameters in ``current_params`` keep their values; when one of them violates its constraint
the problem cannot be fixed and :class:`~circman5.errors.InvalidInputError` (a ``ValueError``)
is raised, as for ``min > max``, a range that misses the model's trained range, an outcome that
no setting within the bounds can reach, a non-numeric parameter, or an unknown constraint name.

Method: the model (gradient-boosted trees: piecewise constant) is evaluated once on a fixed
scrambled Sobol design over the box (cached per model version and box); a smooth polynomial
surrogate (:mod:`.surrogate`) fitted to it is minimized with exact gradients (L-BFGS-B, or
SLSQP when there are outcome constraints) from three fixed starts (the current point, the best
design point and the box centre). Every candidate (the current point, the surrogate optima and
the design points) is then checked on the real model, and the feasible one with the lowest
objective wins, the current point on ties. So the answer is within the constraints on the
model, never worse than the start when the start is feasible, and the same input gives the
same answer.

The returned dict is ``current_params`` with the optimized controls and, for every target, the
model's prediction at the optimum (so ``energy_used`` is the energy the model expects there).
"""

from __future__ import annotations

import itertools
import logging
import math
import threading
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from numbers import Real
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
from numpy.typing import NDArray

from circman5.errors import InvalidInputError
from circman5.manufacturing.optimization.model import (
    PredictiveModel,
    load_optimization_config,
)
from circman5.manufacturing.optimization.surrogate import PolynomialSurrogate, sobol_design
from circman5.quantities import require_finite

if TYPE_CHECKING:
    from circman5.adapters.services.constants_service import ConstantsService

logger = logging.getLogger(__name__)

__all__ = ["ConstraintValue", "Objective", "OptimizationResult", "ProcessOptimizer"]

FloatArray = NDArray[np.float64]
ConstraintValue = float | Sequence[float]
Objective = Literal["process", "efficiency", "quality"]
_CACHE_SIZE = 16


@dataclass(frozen=True)
class OptimizationResult:
    """What :meth:`ProcessOptimizer.optimize` found, with the figures to judge it by."""

    parameters: dict[str, float]
    objective: str
    objective_start: float
    objective_value: float
    start: dict[str, float]
    predicted_start: dict[str, float]
    predicted: dict[str, float]
    feasible_start: bool
    method: str
    bounds: dict[str, tuple[float, float]]
    outcome_limits: dict[str, tuple[float, float]]
    weights: dict[str, float]
    model_evaluations: int
    notes: list[str] = field(default_factory=list)
    #: Where the model's training data came from (``ManufacturingModel.provenance``).
    model_provenance: dict[str, Any] = field(default_factory=dict)

    @property
    def improvement(self) -> float:
        """Objective at the start minus objective at the answer (positive = better)."""
        return self.objective_start - self.objective_value

    @property
    def improvement_percent(self) -> float:
        base = abs(self.objective_start)
        return self.improvement / base * 100.0 if base > 0 else 0.0

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["bounds"] = {k: list(v) for k, v in self.bounds.items()}
        data["outcome_limits"] = {k: list(v) for k, v in self.outcome_limits.items()}
        data["improvement"] = self.improvement
        data["improvement_percent"] = self.improvement_percent
        return data


@dataclass(frozen=True)
class _Design:
    """The model sampled over one box, and the surrogate fitted to it."""

    v: FloatArray  # design points in [-1, 1]**k
    x: FloatArray  # full feature rows
    y: FloatArray  # model predictions
    surrogate: PolynomialSurrogate
    misfit: FloatArray  # RMS difference surrogate - model on the design, per target


@dataclass
class _Problem:
    features: tuple[str, ...]
    targets: tuple[str, ...]
    free: list[int]
    low: FloatArray
    high: FloatArray
    start: FloatArray
    c_targets: FloatArray
    c_features: FloatArray
    limit_low: FloatArray
    limit_high: FloatArray
    tolerance: FloatArray
    notes: list[str]


def _parse_constraint(name: str, value: Any) -> tuple[float, float, bool]:
    """``(min, max, fixed)`` of a constraint: a number or a ``[min, max]`` pair."""
    if isinstance(value, Real) and not isinstance(value, bool):
        number = require_finite(name, value)
        return number, number, True
    if isinstance(value, Sequence) and not isinstance(value, str) and len(value) == 2:
        low, high = require_finite(f"{name} min", value[0]), require_finite(f"{name} max", value[1])
        if low > high:
            raise InvalidInputError(f"constraint '{name}': min {low:g} > max {high:g}")
        return low, high, False
    raise InvalidInputError(f"constraint '{name}' must be a number or [min, max], got {value!r}")


class ProcessOptimizer:
    """Optimizer of the process parameters (technical manual 7.3, API 16.2.2).

    ``model``: a trained-on-demand :class:`~.model.ManufacturingModel` (or any
    :class:`~.model.PredictiveModel`). ``config``: overrides of ``optimization.json`` (see
    :func:`~.model.load_optimization_config`). Thread-safe; CPU-bound (call it through
    ``asyncio.to_thread`` from async code).
    """

    def __init__(
        self,
        model: PredictiveModel,
        config: Mapping[str, Any] | None = None,
        constants: ConstantsService | None = None,
    ) -> None:
        self.model = model
        self.config: dict[str, Any] = dict(config or {})
        self.logger = logger
        settings = load_optimization_config(config, constants)
        self.settings = settings.OPTIMIZER
        self.default_constraints: dict[str, Any] = dict(settings.DEFAULT_CONSTRAINTS)
        self.random_state = settings.MODEL_CONFIG.random_state
        self._cache: OrderedDict[tuple[Any, ...], _Design] = OrderedDict()
        self._cache_lock = threading.Lock()

    # -- the documented API --------------------------------------------------------------------
    def optimize_process_parameters(
        self,
        current_params: Mapping[str, Any],
        constraints: Mapping[str, ConstraintValue] | None = None,
    ) -> dict[str, float]:
        """Minimize the configured objective; the optimized parameters (see module doc)."""
        return self.optimize(current_params, constraints).parameters

    def optimize_for_efficiency(
        self,
        current_params: Mapping[str, Any],
        min_quality: float = 0.9,
        constraints: Mapping[str, ConstraintValue] | None = None,
    ) -> dict[str, float]:
        """Maximize the predicted efficiency while quality (1 - defect rate) >= min_quality."""
        return self.optimize(
            current_params, constraints, objective="efficiency", min_quality=min_quality
        ).parameters

    def optimize_for_quality(
        self,
        current_params: Mapping[str, Any],
        max_energy: float | None = None,
        constraints: Mapping[str, ConstraintValue] | None = None,
    ) -> dict[str, float]:
        """Minimize the predicted defect rate, with predicted energy <= max_energy if given."""
        return self.optimize(
            current_params, constraints, objective="quality", max_energy=max_energy
        ).parameters

    # -- the work ------------------------------------------------------------------------------
    def objective_weights(self, objective: Objective = "process") -> dict[str, float]:
        if objective == "process":
            return dict(self.settings.objective_weights)
        if objective == "efficiency":
            return {"efficiency": -1.0}
        if objective == "quality":
            return {"defect_rate": 1.0}
        raise InvalidInputError(f"unknown objective '{objective}'")

    def optimize(
        self,
        current_params: Mapping[str, Any],
        constraints: Mapping[str, ConstraintValue] | None = None,
        objective: Objective = "process",
        min_quality: float | None = None,
        max_energy: float | None = None,
    ) -> OptimizationResult:
        """Solve the problem of the module doc; the full :class:`OptimizationResult`."""
        model = self.model
        model.ensure_trained()
        weights = self.objective_weights(objective)
        problem = self._problem(current_params, constraints, weights, min_quality, max_energy)
        start_prediction = model.predict_array(problem.start[np.newaxis, :])[0]
        evaluations = 1
        method = "fixed"
        rows = problem.start[np.newaxis, :]
        predictions = start_prediction[np.newaxis, :]
        n_design = 0
        if problem.free:
            design = self._design(problem)
            n_design = design.x.shape[0]
            evaluations += n_design
            solutions = self._solve_surrogate(problem, design)
            candidates = np.repeat(problem.start[np.newaxis, :], len(solutions), axis=0)
            span = problem.high - problem.low
            for row, v in zip(candidates, solutions, strict=True):
                row[problem.free] = problem.low + (v + 1.0) / 2.0 * span
            if len(candidates):
                evaluations += len(candidates)
                predicted = model.predict_array(candidates)
            else:
                predicted = np.empty((0, len(problem.targets)))
            rows = np.vstack([rows, candidates, design.x])
            predictions = np.vstack([predictions, predicted, design.y])
            n_solutions = len(candidates)
        else:
            n_solutions = 0
        values = predictions @ problem.c_targets + rows @ problem.c_features
        feasible = self._feasible(problem, predictions)
        if not feasible.any():
            raise InvalidInputError(self._infeasible_reason(problem, predictions))
        best = self._choose(problem, rows, values, feasible)
        if problem.free and best != 0:
            # Minimal change: the choice with some controls back at their current values.
            reverted = self._reversions(problem, rows[best])
            if len(reverted):
                evaluations += len(reverted)
                more = model.predict_array(reverted)
                rows = np.vstack([rows, reverted])
                predictions = np.vstack([predictions, more])
                values = predictions @ problem.c_targets + rows @ problem.c_features
                feasible = self._feasible(problem, predictions)
                best = self._choose(problem, rows, values, feasible)
                if best > n_solutions + n_design:
                    method = "reverted"
        if method == "reverted":
            pass
        elif best == 0:
            method = "start" if problem.free else "fixed"
        elif best <= n_solutions:
            method = "surrogate-" + ("SLSQP" if self._has_limits(problem) else "L-BFGS-B")
        else:
            method = "design-point"
        chosen, chosen_prediction = rows[best], predictions[best]
        parameters: dict[str, float] = {
            k: require_finite(k, v) for k, v in current_params.items() if k not in problem.features
        }
        parameters.update({f: float(v) for f, v in zip(problem.features, chosen, strict=True)})
        parameters.update(
            {t: float(v) for t, v in zip(problem.targets, chosen_prediction, strict=True)}
        )
        result = OptimizationResult(
            parameters=parameters,
            objective=objective,
            objective_start=float(values[0]),
            objective_value=float(values[best]),
            start={f: float(v) for f, v in zip(problem.features, problem.start, strict=True)},
            predicted_start={
                t: float(v) for t, v in zip(problem.targets, start_prediction, strict=True)
            },
            predicted={
                t: float(v) for t, v in zip(problem.targets, chosen_prediction, strict=True)
            },
            feasible_start=bool(feasible[0]),
            method=method,
            bounds={
                problem.features[i]: (float(problem.low[j]), float(problem.high[j]))
                for j, i in enumerate(problem.free)
            },
            outcome_limits={
                t: (float(lo), float(hi))
                for t, lo, hi in zip(
                    problem.targets, problem.limit_low, problem.limit_high, strict=True
                )
                if math.isfinite(lo) or math.isfinite(hi)
            },
            weights=weights,
            model_evaluations=evaluations,
            notes=problem.notes,
            model_provenance=dict(getattr(self.model, "provenance", None) or {}),
        )
        self.logger.debug(
            "optimized %s: objective %.4g -> %.4g (%s)",
            objective,
            result.objective_start,
            result.objective_value,
            method,
        )
        return result

    # -- problem set-up ------------------------------------------------------------------------
    def _problem(
        self,
        current_params: Mapping[str, Any],
        constraints: Mapping[str, ConstraintValue] | None,
        weights: Mapping[str, float],
        min_quality: float | None,
        max_energy: float | None,
    ) -> _Problem:
        if not isinstance(current_params, Mapping):
            raise InvalidInputError("current_params must be a mapping of name -> number")
        if constraints is not None and not isinstance(constraints, Mapping):
            raise InvalidInputError("constraints must be a mapping of name -> number or [min, max]")
        model = self.model
        features, targets = model.features, model.targets
        params = {str(k): require_finite(str(k), v) for k, v in current_params.items()}
        ranges, defaults = model.feature_ranges(), model.feature_defaults()
        known = set(features) | set(targets) | set(params)
        merged: dict[str, tuple[float, float, bool]] = {}
        for name, value in self.default_constraints.items():
            if name in known:
                merged[name] = _parse_constraint(name, value)
        for name, value in (constraints or {}).items():
            if name not in known:
                raise InvalidInputError(
                    f"constraint on unknown parameter '{name}' (model parameters: "
                    f"{', '.join((*features, *targets))})"
                )
            merged[name] = _parse_constraint(name, value)
        notes: list[str] = []
        controls = [c for c in self.settings.control_parameters if c in features]
        low: list[float] = []
        high: list[float] = []
        free: list[int] = []
        start = np.empty(len(features))
        for i, name in enumerate(features):
            value = params.get(name, defaults[name])
            if name not in params:
                notes.append(f"{name} not given: started at the training median {value:g}")
            bound = merged.get(name)
            if name not in controls:
                if bound is not None and not bound[0] <= value <= bound[1]:
                    raise InvalidInputError(
                        f"{name} = {value:g} is outside its constraint "
                        f"[{bound[0]:g}, {bound[1]:g}] and is not a control the optimizer "
                        "may change"
                    )
                start[i] = value
                continue
            lo, hi = ranges[name]
            if bound is not None and bound[2]:
                lo = hi = bound[0]
            elif bound is not None:
                if bound[0] > hi or bound[1] < lo:
                    raise InvalidInputError(
                        f"constraint {name} in [{bound[0]:g}, {bound[1]:g}] does not overlap "
                        f"the range the model was trained on [{lo:g}, {hi:g}]"
                    )
                lo, hi = max(lo, bound[0]), min(hi, bound[1])
            clipped = min(max(value, lo), hi)
            if clipped != value:
                notes.append(f"{name} = {value:g} moved into its bounds [{lo:g}, {hi:g}]")
            start[i] = clipped
            if hi > lo:
                free.append(i)
                low.append(lo)
                high.append(hi)
        for name, value in params.items():
            bound = merged.get(name)
            if name in features or name in targets or bound is None:
                continue
            if not bound[0] <= value <= bound[1]:
                raise InvalidInputError(
                    f"{name} = {value:g} is outside its constraint [{bound[0]:g}, {bound[1]:g}] "
                    "and the optimizer cannot change it"
                )
        limit_low = np.full(len(targets), -np.inf)
        limit_high = np.full(len(targets), np.inf)
        for j, name in enumerate(targets):
            bound = merged.get(name)
            if bound is None:
                continue
            if bound[2]:
                raise InvalidInputError(
                    f"outcome '{name}' can only be limited by a range [min, max], not fixed"
                )
            limit_low[j], limit_high[j] = bound[0], bound[1]
        if min_quality is not None:
            quality = require_finite("min_quality", min_quality)
            if not 0.0 <= quality <= 1.0:
                raise InvalidInputError(f"min_quality must be within 0..1, got {quality:g}")
            j = self._target_index(targets, "defect_rate", "min_quality")
            if 1.0 - quality < limit_low[j]:
                raise InvalidInputError(
                    f"min_quality {quality:g} needs defect_rate <= {1.0 - quality:g}, but its "
                    f"constraint is >= {limit_low[j]:g}"
                )
            limit_high[j] = min(limit_high[j], 1.0 - quality)
        if max_energy is not None:
            energy = require_finite("max_energy", max_energy)
            j = self._target_index(targets, "energy_used", "max_energy")
            if energy < limit_low[j]:
                raise InvalidInputError(
                    f"max_energy {energy:g} is below the energy_used constraint's minimum "
                    f"{limit_low[j]:g}"
                )
            limit_high[j] = min(limit_high[j], energy)
        for j, name in enumerate(targets):
            if limit_low[j] > limit_high[j]:
                raise InvalidInputError(
                    f"outcome '{name}' must be at least {limit_low[j]:g} and at most "
                    f"{limit_high[j]:g}: the constraints contradict each other"
                )
        c_targets = np.zeros(len(targets))
        c_features = np.zeros(len(features))
        for name, weight in weights.items():
            if name in targets:
                c_targets[targets.index(name)] = weight
            elif name in features:
                c_features[features.index(name)] = weight
            else:
                raise InvalidInputError(
                    f"the objective weighs '{name}', which the model does not know"
                )
        scale = np.maximum(
            1.0,
            np.maximum(
                np.abs(np.nan_to_num(limit_low, posinf=0, neginf=0)),
                np.abs(np.nan_to_num(limit_high, posinf=0, neginf=0)),
            ),
        )
        return _Problem(
            features=features,
            targets=targets,
            free=free,
            low=np.array(low),
            high=np.array(high),
            start=start,
            c_targets=c_targets,
            c_features=c_features,
            limit_low=limit_low,
            limit_high=limit_high,
            tolerance=self.settings.constraint_tolerance * scale + 1e-12,
            notes=notes,
        )

    def _choose(
        self,
        problem: _Problem,
        rows: FloatArray,
        values: FloatArray,
        feasible: NDArray[np.bool_],
    ) -> int:
        """The feasible candidate closest to the start among those tied with the best.

        Ties: within ``tie_tolerance_sigma`` standard errors of the objective (from the model's
        cross-validated errors). The start comes first, so it wins any exact tie.
        """
        best_value = float(np.min(np.where(feasible, values, np.inf)))
        errors = self.model.target_uncertainty()
        sigma = math.sqrt(
            sum(
                (c * errors.get(t, 0.0)) ** 2
                for c, t in zip(problem.c_targets, problem.targets, strict=True)
            )
        )
        tolerance = self.settings.tie_tolerance_sigma * sigma + 1e-12 * max(1.0, abs(best_value))
        near = feasible & (values <= best_value + tolerance)
        if not problem.free:
            return int(np.argmax(near))
        span = problem.high - problem.low
        distance = np.sum(((rows[:, problem.free] - problem.start[problem.free]) / span) ** 2, 1)
        return int(np.argmin(np.where(near, distance, np.inf)))

    @staticmethod
    def _reversions(problem: _Problem, chosen: FloatArray) -> FloatArray:
        """``chosen`` with each non-empty proper subset of the moved controls reset."""
        moved = [i for i in problem.free if chosen[i] != problem.start[i]]
        if len(moved) < 2:
            return np.empty((0, len(chosen)))
        subsets: list[tuple[int, ...]] = []
        if len(moved) <= 4:
            for size in range(1, len(moved)):
                subsets.extend(itertools.combinations(moved, size))
        else:
            subsets = [(i,) for i in moved]
        rows = np.repeat(chosen[np.newaxis, :], len(subsets), axis=0)
        for row, subset in zip(rows, subsets, strict=True):
            row[list(subset)] = problem.start[list(subset)]
        return rows

    @staticmethod
    def _target_index(targets: Sequence[str], name: str, option: str) -> int:
        if name not in targets:
            raise InvalidInputError(f"{option} needs a model that predicts '{name}'")
        return list(targets).index(name)

    @staticmethod
    def _has_limits(problem: _Problem) -> bool:
        return bool(np.isfinite(problem.limit_low).any() or np.isfinite(problem.limit_high).any())

    @staticmethod
    def _feasible(problem: _Problem, predictions: FloatArray) -> NDArray[np.bool_]:
        ok = (predictions >= problem.limit_low - problem.tolerance) & (
            predictions <= problem.limit_high + problem.tolerance
        )
        return np.asarray(ok.all(axis=1), dtype=np.bool_)

    @staticmethod
    def _infeasible_reason(problem: _Problem, predictions: FloatArray) -> str:
        reasons = []
        low, high = predictions.min(axis=0), predictions.max(axis=0)
        for j, name in enumerate(problem.targets):
            lo, hi = problem.limit_low[j], problem.limit_high[j]
            if not (math.isfinite(lo) or math.isfinite(hi)):
                continue
            reasons.append(
                f"{name} in [{lo:g}, {hi:g}] (reachable within the bounds: "
                f"{low[j]:.4g} .. {high[j]:.4g})"
            )
        return (
            "infeasible: no parameters within the bounds meet all outcome constraints at "
            "once on the model: " + "; ".join(reasons)
        )

    # -- the model sampled over the box --------------------------------------------------------
    def _design(self, problem: _Problem) -> _Design:
        fixed = problem.start.copy()
        fixed[problem.free] = np.nan
        key = (
            self.model.version,
            tuple(problem.free),
            tuple(problem.low.tolist()),
            tuple(problem.high.tolist()),
            tuple(fixed.tolist()),
            self.settings.design_points_log2,
            self.settings.surrogate_degree,
        )
        with self._cache_lock:
            design = self._cache.get(key)
            if design is not None:
                self._cache.move_to_end(key)
                return design
        u = sobol_design(len(problem.free), self.settings.design_points_log2, self.random_state)
        x = np.repeat(problem.start[np.newaxis, :], u.shape[0], axis=0)
        x[:, problem.free] = problem.low + u * (problem.high - problem.low)
        y = self.model.predict_array(x)
        v = 2.0 * u - 1.0
        surrogate = PolynomialSurrogate.fit(v, y, self.settings.surrogate_degree)
        misfit = np.sqrt(np.mean((surrogate.predict(v) - y) ** 2, axis=0))
        design = _Design(v, x, y, surrogate, misfit)
        with self._cache_lock:
            self._cache[key] = design
            while len(self._cache) > _CACHE_SIZE:
                self._cache.popitem(last=False)
        return design

    def clear_cache(self) -> None:
        """Forget the sampled designs (they are also keyed by the model version)."""
        with self._cache_lock:
            self._cache.clear()

    def _solve_surrogate(self, problem: _Problem, design: _Design) -> list[FloatArray]:
        from scipy.optimize import minimize

        surrogate = design.surrogate
        c_t = problem.c_targets
        c_free = problem.c_features[problem.free]
        half_span = (problem.high - problem.low) / 2.0
        k = len(problem.free)

        def objective(v: FloatArray) -> tuple[float, FloatArray]:
            y, jac = surrogate.value_and_jacobian(v)
            value = float(y @ c_t + c_free @ (problem.low + (v + 1.0) * half_span))
            return value, jac.T @ c_t + c_free * half_span

        limited = [
            j
            for j in range(len(problem.targets))
            if math.isfinite(problem.limit_low[j]) or math.isfinite(problem.limit_high[j])
        ]
        constraints: list[dict[str, Any]] = []
        if limited:
            spread = np.maximum(design.y.max(axis=0) - design.y.min(axis=0), 1e-12)
            # The surrogate keeps its misfit away from each limit, so that its optimum is
            # feasible on the model too (the model has the final word either way).
            sides: list[tuple[int, float, float]] = []
            for j in limited:
                lo, hi = problem.limit_low[j], problem.limit_high[j]
                margin = float(design.misfit[j])
                if math.isfinite(lo) and math.isfinite(hi):
                    margin = min(margin, (hi - lo) / 2.0)
                if math.isfinite(lo):
                    sides.append((j, 1.0, lo + margin))
                if math.isfinite(hi):
                    sides.append((j, -1.0, hi - margin))

            def g(v: FloatArray) -> FloatArray:
                y = surrogate.predict(v)[0]
                return np.array([s * (y[j] - b) / spread[j] for j, s, b in sides])

            def g_jac(v: FloatArray) -> FloatArray:
                jac = surrogate.value_and_jacobian(v)[1]
                return np.array([s * jac[j] / spread[j] for j, s, _ in sides]).reshape(-1, k)

            constraints.append({"type": "ineq", "fun": g, "jac": g_jac})

        span = problem.high - problem.low
        start_v = 2.0 * (problem.start[problem.free] - problem.low) / span - 1.0
        design_values = design.y @ c_t + design.x @ problem.c_features
        feasible = self._feasible(problem, design.y)
        starts = [np.clip(start_v, -1.0, 1.0)]
        if feasible.any():
            starts.append(design.v[int(np.argmin(np.where(feasible, design_values, np.inf)))])
        starts.append(np.zeros(k))
        unique: list[FloatArray] = []
        for s in starts:
            if not any(np.allclose(s, u, atol=1e-9) for u in unique):
                unique.append(s)
        bounds = [(-1.0, 1.0)] * k
        solutions: list[FloatArray] = []
        for s in unique:
            if constraints:
                res = minimize(
                    lambda v: objective(v)[0],
                    s,
                    jac=lambda v: objective(v)[1],
                    method="SLSQP",
                    bounds=bounds,
                    constraints=constraints,
                    options={"maxiter": self.settings.max_iterations, "ftol": 1e-12},
                )
            else:
                res = minimize(
                    objective,
                    s,
                    jac=True,
                    method="L-BFGS-B",
                    bounds=bounds,
                    options={"maxiter": self.settings.max_iterations},
                )
            if np.all(np.isfinite(res.x)):
                solutions.append(np.clip(np.asarray(res.x, dtype=np.float64), -1.0, 1.0))
        return solutions
