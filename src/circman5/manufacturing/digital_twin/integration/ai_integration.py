"""AIIntegration: the digital twin's connection to the ML model and the process optimizer.

Why this module is long: the spec's AIIntegration class (API 16.2.2) with its documented methods
(parameter extraction, prediction, optimization, applying results to the twin).

Technical manual 7.4 / API 16.2.2, architecture document 5.1 and 8.3 (optimization flow: state
-> AI integration -> optimization -> simulation -> state update -> events).

Parameters: ``PARAMETER_MAPPING`` maps a ``production_line`` field of the twin (or a dotted path
into the state) to a model parameter (``energy_consumption`` -> ``energy_used``, ...); model
parameters that the state holds under their own name (``efficiency``, ``defect_rate``) are taken
as they are. Missing ones come from ``DEFAULT_PARAMETERS`` when optimizing.

Applying a proposal (:meth:`AIIntegration.apply_optimized_parameters`) writes the twin's
*setpoints*, ``SETPOINT_MAPPING`` (default ``temperature`` -> ``production_line.
target_temperature``, ``cycle_time`` -> ``production_line.cycle_time``), never measured values.
It is applied only when

1. every setpoint is within its constraint (``DEFAULT_CONSTRAINTS`` updated with
   ``OPTIMIZATION_CONSTRAINTS``), its ``PARAMETER_THRESHOLDS`` range (a target temperature
   within the line temperature's) and the simulation engine's parameter range;
2. a what-if simulation of ``simulation_steps`` steps with the new setpoints crosses no
   threshold; and
3. its objective (the optimizer's weights, averaged over the simulated steps) is lower than
   that of the same simulation with the current setpoints (same seed, so the same noise) by
   more than ``MIN_IMPROVEMENT``, and not higher at the last simulated step (a setpoint that
   only helps while the line gets there, like an overshooting temperature target, is refused).

Then ``digital_twin.update({"production_line": {<setpoints>}})`` writes them and an
``OptimizationEvent`` is published (source ``ai_optimization``). Everything is synchronous and
thread-safe; the service calls it through ``asyncio.to_thread``.
"""

from __future__ import annotations

import datetime
import json
import logging
import os
import threading
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import pandas as pd

from circman5 import paths
from circman5.adapters.config.ai_integration import AIIntegrationConfig
from circman5.errors import InvalidInputError
from circman5.manufacturing.digital_twin.event_notification.event_types import (
    Event,
    EventSeverity,
    OptimizationEvent,
)
from circman5.manufacturing.optimization.model import ManufacturingModel
from circman5.manufacturing.optimization.optimizer import OptimizationResult, ProcessOptimizer
from circman5.quantities import finite_number
from circman5.state_paths import unflatten, value_at

if TYPE_CHECKING:
    from circman5.adapters.config.thresholds import ThresholdRule
    from circman5.adapters.services.constants_service import ConstantsService

logger = logging.getLogger(__name__)

__all__ = ["AIIntegration", "HistoryReader", "StateReader", "TwinLike"]

#: Reads stored twin states (newest last): ``reader(limit)`` -> nested state dicts, or flat dicts
#: keyed by dotted paths (``"production_line.temperature"``), e.g. from the embedded store.
HistoryReader = Callable[[int | None], Iterable[Mapping[str, Any]]]


class StateReader(Protocol):
    """An object form of :data:`HistoryReader`."""

    def read_states(self, limit: int | None) -> Iterable[Mapping[str, Any]]: ...


MAX_SIMULATION_STEPS = 100_000


class TwinLike(Protocol):
    """What AIIntegration needs of the DigitalTwin."""

    def get_current_state(self) -> dict[str, Any]: ...

    def get_state_history(self, limit: int | None = None) -> list[dict[str, Any]]: ...

    def update(self, external_data: Mapping[str, Any] | None = None) -> bool: ...

    def simulate(
        self, steps: int | None = None, parameters: Mapping[str, Any] | None = None
    ) -> list[dict[str, Any]]: ...


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).isoformat()


class AIIntegration:
    """Integration between the digital twin and the AI components.

    ``digital_twin``: the :class:`DigitalTwin` (or anything with its API, :class:`TwinLike`).
    ``model`` / ``optimizer``: default a :class:`ManufacturingModel` (trained on first use) and
    a :class:`ProcessOptimizer` on it. ``history_reader``: optional reader of stored states
    (e.g. the embedded time-series store), used by :meth:`train_model_from_digital_twin`.
    ``publish``: where events go (default the ``OptimizationPublisher`` on the event manager).
    """

    def __init__(
        self,
        digital_twin: TwinLike,
        model: ManufacturingModel | None = None,
        optimizer: ProcessOptimizer | None = None,
        *,
        history_reader: HistoryReader | StateReader | None = None,
        publish: Callable[[Event], None] | None = None,
        constants: ConstantsService | None = None,
    ) -> None:
        if constants is None:
            from circman5.adapters.services.constants_service import ConstantsService

            constants = ConstantsService()
        self.digital_twin = digital_twin
        self.constants = constants
        self.model = model if model is not None else ManufacturingModel(constants=constants)
        self.optimizer = (
            optimizer
            if optimizer is not None
            else ProcessOptimizer(self.model, constants=constants)
        )
        self.logger = logger
        #: The spec's ``self.config``: the ``AI_INTEGRATION`` section as a dict.
        self.config: dict[str, Any] = constants.get_digital_twin_config().get("AI_INTEGRATION", {})
        self.settings = AIIntegrationConfig.model_validate(self.config)
        self.parameter_mapping: dict[str, str] = dict(self.settings.PARAMETER_MAPPING)
        self.history_reader = history_reader
        self._publish = publish
        self._lock = threading.Lock()
        self.optimization_history: deque[dict[str, Any]] = deque(
            maxlen=self.settings.HISTORY_LENGTH
        )
        self.training_history: deque[dict[str, Any]] = deque(maxlen=self.settings.HISTORY_LENGTH)

    # -- parameters ----------------------------------------------------------------------------
    def extract_parameters_from_state(
        self, state: Mapping[str, Any] | None = None
    ) -> dict[str, float]:
        """Model parameters from a twin state (default: the current state); see module doc."""
        if state is None:
            state = self.digital_twin.get_current_state()
        if not isinstance(state, Mapping):
            raise InvalidInputError("state must be a mapping")
        line = state.get("production_line")
        line = line if isinstance(line, Mapping) else {}
        params: dict[str, float] = {}
        for twin_name, model_name in self.parameter_mapping.items():
            raw = value_at(state, twin_name) if "." in twin_name else line.get(twin_name)
            value = finite_number(raw)
            if value is not None:
                params[model_name] = value
        for name in (*self.model.features, *self.model.targets):
            if name not in params and name not in self.parameter_mapping:
                value = finite_number(line.get(name))
                if value is not None:
                    params[name] = value
        return params

    def _current_params(self) -> dict[str, float]:
        return {**self.settings.DEFAULT_PARAMETERS, **self.extract_parameters_from_state()}

    def predict_outcomes(self, parameters: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """The model's predictions for ``parameters`` (default: from the current state)."""
        if parameters is None:
            parameters = self.extract_parameters_from_state()
        return self.model.predict_batch_outcomes(parameters)

    def _run_optimizer(
        self, current_params: Mapping[str, Any], constraints: Mapping[str, Any]
    ) -> tuple[dict[str, float], OptimizationResult | None]:
        optimize = getattr(self.optimizer, "optimize", None)
        if callable(optimize):
            result = optimize(current_params, constraints)
            if isinstance(result, OptimizationResult):
                return dict(result.parameters), result
        return dict(self.optimizer.optimize_process_parameters(current_params, constraints)), None

    def optimize_parameters(
        self,
        current_params: Mapping[str, Any] | None = None,
        constraints: Mapping[str, Any] | None = None,
    ) -> dict[str, float]:
        """Optimized parameters (the optimizer's answer; see :class:`ProcessOptimizer`).

        ``current_params`` default: ``DEFAULT_PARAMETERS`` updated with the current state's;
        ``constraints`` default: ``OPTIMIZATION_CONSTRAINTS``. Infeasible constraints or bad
        parameters raise ``ValueError``; nothing is applied to the twin.
        """
        if current_params is None:
            current_params = self._current_params()
        if constraints is None:
            constraints = dict(self.settings.OPTIMIZATION_CONSTRAINTS)
        optimized, result = self._run_optimizer(current_params, constraints)
        record: dict[str, Any] = {
            "timestamp": _now(),
            "original_params": {k: v for k, v in current_params.items()},
            "optimized_params": optimized,
            "constraints": {k: v for k, v in constraints.items()},
            "applied": None,
            "model_provenance": self.model.provenance,
        }
        if result is not None:
            record.update(
                objective=result.objective,
                objective_start=result.objective_start,
                objective_value=result.objective_value,
                improvement=result.improvement,
                improvement_percent=result.improvement_percent,
                predicted_start=result.predicted_start,
                predicted=result.predicted,
                feasible_start=result.feasible_start,
                method=result.method,
            )
        with self._lock:
            self.optimization_history.append(record)
        return optimized

    # -- applying ------------------------------------------------------------------------------
    def _merged_constraints(self) -> dict[str, Any]:
        merged = dict(getattr(self.optimizer, "default_constraints", {}))
        merged.update(self.settings.OPTIMIZATION_CONSTRAINTS)
        return merged

    def _objective_weights(self) -> dict[str, float]:
        weights = getattr(self.optimizer, "objective_weights", None)
        if callable(weights):
            return dict(weights("process"))
        return {"efficiency": -100.0, "energy_used": 0.1, "defect_rate": 1000.0}

    def _check_limits(self, setpoints: Mapping[str, float], params: Mapping[str, str]) -> str:
        """Why the setpoints are not acceptable, or "" when they are."""
        from circman5.manufacturing.digital_twin.simulation.process_models import (
            parameter_bounds,
        )

        constraints = self._merged_constraints()
        thresholds = self._thresholds()
        for field, value in setpoints.items():
            name = params[field]
            bound = constraints.get(name)
            if bound is not None:
                low, high = (bound, bound) if finite_number(bound) is not None else bound
                if not low <= value <= high:
                    return f"{name} = {value:g} is outside its constraint [{low:g}, {high:g}]"
            path = f"production_line.{field}"
            measured = "production_line.temperature" if field == "target_temperature" else path
            rule = thresholds.get(path) or thresholds.get(measured)
            if rule is not None and rule.breach(value) is not None:
                return f"{path} = {value:g} is outside the threshold range of {rule.path}"
            engine_bounds = parameter_bounds(path)
            if engine_bounds is not None and not engine_bounds[0] <= value <= engine_bounds[1]:
                return f"{path} = {value:g} is outside {engine_bounds[0]:g} .. {engine_bounds[1]:g}"
        return ""

    def _thresholds(self) -> dict[str, ThresholdRule]:
        getter = getattr(self.constants, "get_parameter_thresholds", None)
        return dict(getter()) if callable(getter) else {}

    def _simulate(
        self, steps: int, state: Mapping[str, Any], parameters: Mapping[str, Any]
    ) -> list[dict[str, Any]]:
        engine = getattr(self.digital_twin, "simulation_engine", None)
        run = getattr(engine, "run_simulation", None)
        if callable(run):
            result: list[dict[str, Any]] = run(
                steps=steps,
                initial_state=state,
                parameters=dict(parameters) or None,
                seed=self.settings.VALIDATION_SEED,
            )
            return result
        return self.digital_twin.simulate(steps=steps, parameters=dict(parameters) or None)

    def _trajectory_objective(
        self, states: list[dict[str, Any]], weights: Mapping[str, float]
    ) -> float | None:
        """Mean over the simulated steps of the weighted outcomes (None without data)."""
        reverse = {model: twin for twin, model in self.parameter_mapping.items()}
        steps = states[1:] or states
        total = 0.0
        used = 0
        for name, weight in weights.items():
            twin_name = reverse.get(name, name)
            values = []
            for state in steps:
                line = state.get("production_line", {})
                value = value_at(state, twin_name) if "." in twin_name else line.get(twin_name)
                if finite_number(value) is not None:
                    values.append(float(value))
            if values:
                total += weight * sum(values) / len(values)
                used += 1
        return total if used else None

    def _breaches(self, states: list[dict[str, Any]]) -> list[str]:
        found = []
        for path, rule in self._thresholds().items():
            for state in states[1:]:
                value = value_at(state, path)
                if finite_number(value) is not None and rule.breach(float(value)) is not None:
                    found.append(f"{path} = {float(value):g}")
                    break
        return found

    def apply_optimized_parameters(
        self, optimized_params: Mapping[str, Any], simulation_steps: int = 10
    ) -> bool:
        """Validate a proposal by simulation and write its setpoints when it is better.

        True when the setpoints were written to the twin; False when the proposal was not
        applied (outside limits, crossing a threshold in simulation, not better than the
        current setpoints, no change, or the twin refused the update): the reason is logged
        and kept in the optimization history. Bad arguments raise ``ValueError``.
        """
        if not isinstance(optimized_params, Mapping):
            raise InvalidInputError("optimized_params must be a mapping of name -> number")
        if (
            isinstance(simulation_steps, bool)
            or not isinstance(simulation_steps, int)
            or not 1 <= simulation_steps <= MAX_SIMULATION_STEPS
        ):
            raise InvalidInputError(
                f"simulation_steps must be an integer 1..{MAX_SIMULATION_STEPS}, "
                f"got {simulation_steps!r}"
            )
        setpoints: dict[str, float] = {}
        params: dict[str, str] = {}
        for name, field in self.settings.SETPOINT_MAPPING.items():
            if name not in optimized_params:
                continue
            value = optimized_params[name]
            if finite_number(value) is None:
                raise InvalidInputError(f"'{name}' must be a finite number, got {value!r}")
            setpoints[field] = float(value)
            params[field] = name
        if not setpoints:
            raise InvalidInputError(
                "optimized_params holds none of the setpoints "
                f"{sorted(self.settings.SETPOINT_MAPPING)}"
            )
        record: dict[str, Any] = {
            "timestamp": _now(),
            "kind": "apply",
            "setpoints": {f"production_line.{k}": v for k, v in setpoints.items()},
            "simulation_steps": simulation_steps,
        }
        reason = self._check_limits(setpoints, params)
        state = self.digital_twin.get_current_state()
        line = state.get("production_line", {})
        if not reason and all(line.get(f) == v for f, v in setpoints.items()):
            reason = "the twin already runs at these setpoints"
        if not reason:
            proposal = {f"production_line.{f}": v for f, v in setpoints.items()}
            baseline_states = self._simulate(simulation_steps, state, {})
            proposal_states = self._simulate(simulation_steps, state, proposal)
            weights = self._objective_weights()
            before = self._trajectory_objective(baseline_states, weights)
            after = self._trajectory_objective(proposal_states, weights)
            final_before = self._trajectory_objective(baseline_states[-1:], weights)
            final_after = self._trajectory_objective(proposal_states[-1:], weights)
            breaches = self._breaches(proposal_states)
            if before is None or after is None or final_before is None or final_after is None:
                reason = "the simulation did not produce the objective's outcomes"
            elif breaches:
                reason = "the simulation crosses thresholds: " + ", ".join(breaches)
            else:
                improvement = before - after
                record.update(
                    simulated_objective_current=before,
                    simulated_objective_proposed=after,
                    simulated_improvement=improvement,
                    simulated_improvement_percent=(
                        improvement / abs(before) * 100.0 if before else 0.0
                    ),
                    simulated_final_objective_current=final_before,
                    simulated_final_objective_proposed=final_after,
                )
                if improvement <= self.settings.MIN_IMPROVEMENT:
                    reason = (
                        f"not better in simulation: objective {after:.6g} vs {before:.6g} "
                        "with the current setpoints"
                    )
                elif final_after > final_before:
                    # Better on average only while getting there (e.g. a setpoint that
                    # overshoots pulls the temperature faster through the optimum).
                    reason = (
                        f"worse at the end of the simulation: objective {final_after:.6g} vs "
                        f"{final_before:.6g} with the current setpoints"
                    )
        if not reason and not self.digital_twin.update({"production_line": dict(setpoints)}):
            reason = "the twin rejected the update"
        record["applied"] = not reason
        if reason:
            record["reason"] = reason
            self.logger.info("optimized parameters not applied: %s", reason)
        else:
            self.logger.info("applied optimized setpoints %s", record["setpoints"])
            self._publish_applied(record)
        with self._lock:
            self.optimization_history.append(record)
        return not reason

    def _publish_applied(self, record: Mapping[str, Any]) -> None:
        publish = self._publish
        if publish is None:
            from circman5.manufacturing.digital_twin.event_notification.publishers import (
                OptimizationPublisher,
            )

            publish = OptimizationPublisher().publish
        action = ", ".join(f"{k}={v:g}" for k, v in record["setpoints"].items())
        event = OptimizationEvent(
            optimization_type="process_setpoints",
            potential_improvement=float(record.get("simulated_improvement_percent", 0.0)),
            recommended_action=f"applied {action}",
            severity=EventSeverity.INFO,
            source="ai_optimization",
            details={
                "setpoints": dict(record["setpoints"]),
                "simulated_objective_current": record.get("simulated_objective_current"),
                "simulated_objective_proposed": record.get("simulated_objective_proposed"),
                "simulation_steps": record.get("simulation_steps"),
                "applied": True,
            },
        )
        publish(event)

    # -- reporting -----------------------------------------------------------------------------
    def generate_optimization_report(
        self, save: bool = False, output_dir: str | os.PathLike[str] | None = None
    ) -> dict[str, Any]:
        """Summary of the optimizations and applications so far.

        ``save``: also write it as JSON under ``output_dir`` (default ``<data dir>/reports``);
        the path is in ``report["report_path"]``.
        """
        with self._lock:
            history = [dict(r) for r in self.optimization_history]
            training = [dict(r) for r in self.training_history]
        runs = [r for r in history if r.get("kind") != "apply"]
        applies = [r for r in history if r.get("kind") == "apply"]
        predicted = [r["improvement_percent"] for r in runs if "improvement_percent" in r]
        simulated = [
            r["simulated_improvement_percent"]
            for r in applies
            if r.get("applied") and "simulated_improvement_percent" in r
        ]
        report: dict[str, Any] = {
            "generated_at": _now(),
            "total_optimizations": len(runs),
            "applied": sum(1 for r in applies if r.get("applied")),
            "rejected": sum(1 for r in applies if not r.get("applied")),
            "average_improvement_percent": sum(predicted) / len(predicted) if predicted else 0.0,
            "best_improvement_percent": max(predicted) if predicted else 0.0,
            "average_applied_improvement_percent": (
                sum(simulated) / len(simulated) if simulated else 0.0
            ),
            "latest_optimization": runs[-1] if runs else None,
            "latest_application": applies[-1] if applies else None,
            "history": history,
            "model": {
                "trained": self.model.is_trained,
                "source": getattr(self.model, "training_source", None),
                "metrics": getattr(self.model, "metrics", {}),
                "provenance": self.model.provenance,
            },
            "training": training,
        }
        if save:
            directory = Path(output_dir) if output_dir is not None else paths.data_dir() / "reports"
            directory.mkdir(parents=True, exist_ok=True)
            stamp = datetime.datetime.now(datetime.UTC).strftime("%Y%m%dT%H%M%S%fZ")
            path = directory / f"optimization_report_{stamp}.json"
            path.write_text(json.dumps(report, indent=2, default=str), encoding="utf-8")
            report["report_path"] = str(path)
        return report

    def plot_optimization_history(self, output_path: str | os.PathLike[str] | None = None) -> Path:
        """PNG of the objective before/after each optimization (default under the data dir)."""
        from circman5.manufacturing.optimization.charts import plot_optimization_history

        with self._lock:
            history = [dict(r) for r in self.optimization_history]
        return plot_optimization_history(history, output_path)

    # -- training ------------------------------------------------------------------------------
    def model_info(self) -> dict[str, Any]:
        """The model's features, targets and provenance (trains it first when untrained)."""
        self.model.ensure_trained()
        return {
            "features": list(self.model.features),
            "targets": list(self.model.targets),
            "version": self.model.version,
            "provenance": self.model.provenance,
        }

    def train_model_from_line_history(
        self, arrays: Mapping[str, Any], source: str = "history"
    ) -> dict[str, Any]:
        """Train on the line's recorded batches (``{path: (times_s, values)}``, see
        :mod:`~circman5.manufacturing.optimization.line_history`), or on synthetic data when
        there are too few; returns the provenance (saved with the model)."""
        from circman5.manufacturing.optimization.line_history import train_from_line_history

        provenance = train_from_line_history(self.model, arrays, source)
        if self.settings.SAVE_TRAINED_MODEL:
            self.model.save_model()
        with self._lock:
            self.training_history.append(
                {"timestamp": _now(), "metrics": self.model.metrics, "provenance": provenance}
            )
        return provenance

    def _training_frames(
        self, states: Iterable[Mapping[str, Any]]
    ) -> tuple[pd.DataFrame, pd.DataFrame]:
        rows = []
        for state in states:
            line = state.get("production_line")
            if isinstance(line, Mapping) and line.get("status", "running") != "running":
                continue
            rows.append(self.extract_parameters_from_state(state))
        frame = pd.DataFrame(rows)
        features = list(self.model.settings.MODEL_CONFIG.features)
        for name in features:
            default = self.settings.DEFAULT_PARAMETERS.get(name)
            if name not in frame.columns and default is not None:
                frame[name] = default
        frame.insert(0, "batch_id", [f"state_{i:07d}" for i in range(len(frame))])
        quality = [c for c in ("efficiency", "defect_rate") if c in frame.columns]
        production = frame[[c for c in frame.columns if c not in quality]]
        return production, frame[["batch_id", *quality]]

    def train_model_from_digital_twin(self, history_limit: int | None = None) -> bool:
        """Retrain the model on the twin's state history (and the history reader's states).

        Uses the states whose line is running (or has no status). True when the model was
        trained (and, with ``SAVE_TRAINED_MODEL``, saved as the default model); False when
        the history is too short or lacks a feature or target (logged). The metrics are in
        ``training_history`` and the report.
        """
        if history_limit is not None and (
            isinstance(history_limit, bool) or not isinstance(history_limit, int)
        ):
            raise InvalidInputError(f"history_limit must be an int or None, got {history_limit!r}")
        states: list[Mapping[str, Any]] = []
        reader = self.history_reader
        if reader is not None:
            records = (
                reader(history_limit) if callable(reader) else reader.read_states(history_limit)
            )
            states.extend(unflatten(r) for r in records)
        states.extend(self.digital_twin.get_state_history(history_limit))
        production, quality = self._training_frames(states)
        try:
            metrics = self.model.train_optimization_model(
                production, quality, source="digital_twin"
            )
        except InvalidInputError as err:
            self.logger.warning("model not trained from the twin's history: %s", err)
            return False
        if self.settings.SAVE_TRAINED_MODEL:
            self.model.save_model()
        with self._lock:
            self.training_history.append(
                {"timestamp": _now(), "states": len(states), "metrics": metrics}
            )
        return True
