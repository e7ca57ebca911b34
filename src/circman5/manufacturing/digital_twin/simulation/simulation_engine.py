"""SimulationEngine: what-if runs and Monte Carlo from a twin state (technical manual 5).

Why this module is long: the spec's SimulationEngine (technical manual 5) with its documented
methods; the equations, Monte Carlo statistics and custom-model adaptation are in their own
modules.

The engine never touches the live twin state: it reads ``state_manager.get_current_state()``
only when no ``initial_state`` is given, copies the starting state once, and builds new dicts
for everything it changes.

Parameters (``run_simulation(parameters=...)``) are dotted paths into the state with a new
value for the starting state. Known paths, with their accepted ranges:

==========================================  =============================================
``production_line.temperature``             -100 .. 500 (°C)
``production_line.target_temperature``      -100 .. 500 (°C; the regulation setpoint)
``production_line.cycle_time``              0.001 .. 1e6 (s per module; sets the rate)
``production_line.energy_consumption``      0 .. 1e6 (kW)
``production_line.production_rate``         0 .. 1e6 (modules per step)
``production_line.efficiency``              0 .. 1
``production_line.defect_rate``             0 .. 1
``production_line.status``                  one of :data:`LINE_STATUSES` (a string)
``materials.<name>.inventory``              0 .. 1e12
``materials.<name>.quality``                0 .. 1
``materials.<name>.consumption|waste|recycled``  0 .. 1e15 (running totals)
``environment.temperature``                 -60 .. 80 (°C)
``environment.humidity``                    0 .. 100 (%)
==========================================  =============================================

Any other path is accepted only when the starting state already holds a number there (no
range check), or when a custom model lists it in ``known_parameter_paths``. A value must be a
finite real number (not a bool); a bad path or value raises
:class:`~circman5.errors.InvalidInputError` (a ``ValueError``) before anything runs.

Limits: ``steps`` 0 .. :data:`MAX_STEPS` (1,000,000; each state is a few small dicts, roughly
2 KB); Monte Carlo ``iterations`` 1 .. :data:`MAX_ITERATIONS` (100,000); the list-of-dicts
Monte Carlo keeps at most :data:`MAX_MONTE_CARLO_STATES` states (1,000,000); the vectorized
summary allows ``steps`` up to :data:`MAX_SUMMARY_STEPS` (100,000) and ``steps * iterations`` up
to :data:`MAX_SUMMARY_WORK` (100,000,000); ``uncertainty`` 0 .. 1.

Parameter set: by default the engine uses ``SIMULATION_PARAMETERS`` with the active calibration
(:func:`~.calibration.load_active_calibration`, under the data directory) applied, re-read
whenever a new calibration is activated; :attr:`SimulationEngine.parameter_set` names what was
used (``calibration 3`` or ``built-in defaults``), and Monte Carlo summaries carry it. Explicit
``model_parameters`` or a registered model override the calibration.

Determinism: pass ``seed`` (an int or a ``numpy.random.Generator``) or ``rng``; the same seed
gives the same trajectory. Without one, the engine's own generator is used.
"""

from __future__ import annotations

import copy
import dataclasses
import logging
import math
import operator
from collections.abc import Iterator, Mapping
from numbers import Real
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from circman5.adapters.config.simulation_parameters import SimulationParameters
from circman5.adapters.config.thresholds import ThresholdRule
from circman5.errors import ConfigError, InvalidInputError
from circman5.manufacturing.digital_twin.simulation.calibration import (
    active_calibration_stamp,
    load_active_calibration,
)
from circman5.manufacturing.digital_twin.simulation.custom_models import StepFunction
from circman5.manufacturing.digital_twin.simulation.monte_carlo import (
    FloatArray,
    MonteCarloSummary,
    summarize,
)
from circman5.manufacturing.digital_twin.simulation.process_models import (
    LINE_STATUSES,
    PVManufacturingModel,
    _timestamps,
    as_step_function,
    load_simulation_parameters,
    parameter_bounds,
)

if TYPE_CHECKING:
    from circman5.adapters.services.constants_service import ConstantsService

logger = logging.getLogger(__name__)

__all__ = [
    "MAX_ITERATIONS",
    "MAX_MONTE_CARLO_STATES",
    "MAX_STEPS",
    "MAX_SUMMARY_STEPS",
    "MAX_SUMMARY_WORK",
    "SimulationEngine",
    "StateSource",
]

MAX_STEPS = 1_000_000
MAX_ITERATIONS = 100_000
MAX_MONTE_CARLO_STATES = 1_000_000
MAX_SUMMARY_STEPS = 100_000
MAX_SUMMARY_WORK = 100_000_000
MAX_UNCERTAINTY = 1.0
#: The name of the parameter set without a calibration.
BUILT_IN = "built-in defaults"

Seed = int | np.random.Generator | None
_MISSING = object()


class StateSource(Protocol):
    """What the engine needs of the StateManager."""

    def get_current_state(self) -> dict[str, Any]: ...


# -- input checks ------------------------------------------------------------------------------
def _count(name: str, value: Any, low: int, high: int) -> int:
    if isinstance(value, bool):
        raise InvalidInputError(f"{name} must be an integer, got {value!r}")
    try:
        number = operator.index(value)
    except TypeError:
        raise InvalidInputError(f"{name} must be an integer, got {value!r}") from None
    if not low <= number <= high:
        raise InvalidInputError(f"{name} must be between {low:,} and {high:,}, got {number:,}")
    return number


def _fraction(name: str, value: Any, high: float) -> float:
    if isinstance(value, bool) or not isinstance(value, Real):
        raise InvalidInputError(f"{name} must be a number, got {value!r}")
    number = float(value)
    if not math.isfinite(number) or not 0.0 <= number <= high:
        raise InvalidInputError(f"{name} must be between 0 and {high}, got {value!r}")
    return number


def _real(path: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, Real):
        raise InvalidInputError(f"parameter '{path}': {value!r} is not a number")
    number = float(value)
    if not math.isfinite(number):
        raise InvalidInputError(f"parameter '{path}': {value!r} is not a finite number")
    return number


def _lookup(state: Mapping[str, Any] | None, parts: list[str]) -> Any:
    node: Any = state
    for part in parts:
        if not isinstance(node, Mapping) or part not in node:
            return _MISSING
        node = node[part]
    return node


def _is_number(value: Any) -> bool:
    return isinstance(value, Real) and not isinstance(value, bool)


class SimulationEngine:
    """Core simulation engine of the digital twin (technical manual 5, architecture 4.3).

    ``state_manager``: anything with ``get_current_state()`` (or None when every call passes
    ``initial_state``). ``constants``: the :class:`ConstantsService` (default: the singleton).
    ``model``: the process model, default :class:`PVManufacturingModel` on the configured
    ``SIMULATION_PARAMETERS``; a custom model is any object with ``simulate_step(state)`` or
    ``simulate_step(state, rng)``. ``rng``: the generator used when a call gives no seed.
    ``model_parameters``: explicit model constants (a ``SimulationParameters`` or a mapping of
    its keys), used instead of the active calibration. ``use_calibration``: apply the active
    calibration of ``data_dir`` (default: the configured data directory) when nothing explicit
    is given.
    """

    def __init__(
        self,
        state_manager: StateSource | None,
        constants: ConstantsService | None = None,
        model: object | None = None,
        rng: np.random.Generator | None = None,
        model_parameters: SimulationParameters | Mapping[str, Any] | None = None,
        use_calibration: bool = True,
        data_dir: Path | None = None,
    ) -> None:
        if constants is None:
            from circman5.adapters.services.constants_service import ConstantsService

            constants = ConstantsService()
        self.state_manager = state_manager
        self.constants = constants
        self.logger = logger
        twin_model = constants.get_digital_twin_model()
        self._configured: SimulationParameters = twin_model.SIMULATION_PARAMETERS
        self.parameters: SimulationParameters = self._configured
        #: The spec's ``simulation_config``: ``SIMULATION_PARAMETERS`` as a dict.
        self.simulation_config: dict[str, Any] = self.parameters.model_dump()
        if rng is not None and not isinstance(rng, np.random.Generator):
            raise InvalidInputError(f"rng must be a numpy.random.Generator, got {rng!r}")
        self._rng = rng if rng is not None else np.random.default_rng()
        self._use_calibration = use_calibration
        self._data_dir = data_dir
        self._calibration_stamp: object | None = None
        self._calibrated_paths: frozenset[str] = frozenset()
        self._parameter_set = BUILT_IN
        #: Why the engine does not follow the calibration (None while it does).
        self._pinned: str | None = None
        if model_parameters is not None:
            self.parameters = load_simulation_parameters(model_parameters, self._configured)
            self._pinned = self._parameter_set = "explicit parameters"
        self._model: object = PVManufacturingModel(self.parameters, rng=self._rng)
        self._step: StepFunction | None = None
        if model is not None:
            self.register_model(model)
        self._refresh_parameters()

    # -- the model ----------------------------------------------------------------------------
    @property
    def model(self) -> object:
        """The process model in use."""
        return self._model

    def register_model(self, model: object) -> None:
        """Use ``model`` for every following run (``TypeError`` without ``simulate_step``);
        the calibration no longer applies."""
        if isinstance(model, PVManufacturingModel):
            self._model, self._step = model, None
            self._pinned = self._parameter_set = "explicit model"
            return
        step = as_step_function(model)
        self._model, self._step = model, step
        self._pinned = self._parameter_set = f"custom model {type(model).__name__}"
        logger.info("simulation model: %s", type(model).__name__)

    @property
    def parameter_set(self) -> str:
        """The parameters the next run uses: ``calibration <version>``, ``built-in defaults``,
        ``explicit parameters`` or the registered model."""
        self._refresh_parameters()
        return self._parameter_set

    def _refresh_parameters(self) -> None:
        """Follow the active calibration (a stat per run; re-read only when it changed)."""
        if self._pinned is not None or not self._use_calibration:
            return
        data_dir = self._data_dir
        if data_dir is None:
            from circman5 import paths

            data_dir = paths.data_dir(create=False)
        stamp = active_calibration_stamp(data_dir)
        if stamp == self._calibration_stamp:
            return
        label = BUILT_IN
        parameters = self._configured
        accepted: frozenset[str] = frozenset()
        try:
            calibration = load_active_calibration(data_dir)
        except ConfigError as err:
            logger.error("the active calibration is not usable (%s): built-in defaults", err)
            calibration = None
        if calibration is not None:
            parameters = calibration.simulation_parameters(self._configured)
            label = calibration.label
            accepted = calibration.accepted_paths
        self._calibrated_paths = accepted
        self._model = PVManufacturingModel(parameters, rng=self._rng)
        self.parameters = parameters
        self._calibration_stamp = stamp
        if label != self._parameter_set:
            logger.info("simulation parameters: %s", label)
        self._parameter_set = label

    @property
    def calibrated_paths(self) -> frozenset[str]:
        """The twin paths the active calibration's process model explains (empty without one,
        and while explicit parameters or a registered model are used)."""
        self._refresh_parameters()
        if self._pinned is not None or not self._use_calibration:
            return frozenset()
        return self._calibrated_paths

    @property
    def _pv_model(self) -> PVManufacturingModel | None:
        return self._model if isinstance(self._model, PVManufacturingModel) else None

    # -- single runs --------------------------------------------------------------------------
    def run_simulation(
        self,
        steps: int | None = 10,
        initial_state: Mapping[str, Any] | None = None,
        parameters: Mapping[str, Any] | None = None,
        seed: Seed = None,
        rng: np.random.Generator | None = None,
    ) -> list[dict[str, Any]]:
        """``steps + 1`` states: the starting state (with ``parameters`` applied) first.

        ``steps=None`` uses ``SIMULATION_PARAMETERS.default_simulation_steps``. The returned
        states share sub-objects the model did not change; treat them as read-only.
        """
        self._refresh_parameters()
        count = self._steps(steps)
        generator = self._generator(seed, rng)
        state = self._start(initial_state, parameters)
        return [state, *self._trajectory(state, count, generator)]

    def _trajectory(
        self,
        state: dict[str, Any],
        steps: int,
        generator: np.random.Generator,
        gain_factors: list[float] | None = None,
    ) -> list[dict[str, Any]]:
        pv = self._pv_model
        if pv is not None:
            return pv.run_trajectory(state, steps, generator, gain_factors)
        step = self._step
        assert step is not None
        stamps = _timestamps(state.get("timestamp"), steps, self.parameters.time_step_s)
        states: list[dict[str, Any]] = []
        current = state
        for k in range(steps):
            current = step(current, generator)
            current["timestamp"] = stamps[k]
            states.append(current)
        return states

    def _simulate_next_state(self, current_state: Mapping[str, Any]) -> dict[str, Any]:
        """The state one step after ``current_state`` (which is not modified)."""
        return self._trajectory(dict(current_state), 1, self._rng)[0]

    # -- parameters ---------------------------------------------------------------------------
    def validate_parameters(
        self, parameters: Mapping[str, Any], state: Mapping[str, Any] | None = None
    ) -> dict[str, float | str]:
        """Check ``parameters`` (see the module doc); return them normalized (floats).

        ``state``: the starting state, whose existing numeric paths are accepted too.
        """
        if not isinstance(parameters, Mapping):
            raise InvalidInputError(
                f"parameters must be a mapping of dotted paths, got {type(parameters).__name__}"
            )
        extra = getattr(self._model, "known_parameter_paths", ())
        normalized: dict[str, float | str] = {}
        for path, value in parameters.items():
            if not isinstance(path, str):
                raise InvalidInputError(f"parameter path {path!r} is not a string")
            parts = path.split(".")
            if len(parts) < 2 or not all(part.isidentifier() for part in parts):
                raise InvalidInputError(
                    f"parameter path '{path}' is not a dotted path "
                    "like 'production_line.temperature'"
                )
            if path == "production_line.status":
                if not isinstance(value, str) or value not in LINE_STATUSES:
                    raise InvalidInputError(
                        f"parameter '{path}' must be one of {', '.join(LINE_STATUSES)}; "
                        f"got {value!r}"
                    )
                normalized[path] = value
                continue
            number = _real(path, value)
            bounds = parameter_bounds(path)
            if bounds is None:
                if path not in extra and not _is_number(_lookup(state, parts)):
                    raise InvalidInputError(
                        f"unknown parameter path '{path}': not a modelled path and not a "
                        "number in the starting state"
                    )
            elif not bounds[0] <= number <= bounds[1]:
                raise InvalidInputError(
                    f"parameter '{path}' = {number} is outside {bounds[0]:g} .. {bounds[1]:g}"
                )
            normalized[path] = number
        return normalized

    def _apply_parameters(
        self, state: Mapping[str, Any], parameters: Mapping[str, Any]
    ) -> dict[str, Any]:
        """A new state with ``parameters`` set; ``state`` is not modified.

        Copies only the dicts along each changed path. Everything is validated before any
        change: a bad path or value raises :class:`InvalidInputError`.
        """
        values = self.validate_parameters(parameters, state)
        result = dict(state)
        copied: set[tuple[str, ...]] = set()
        for path, value in values.items():
            parts = path.split(".")
            node = result
            for depth, part in enumerate(parts[:-1]):
                key = tuple(parts[: depth + 1])
                child = node.get(part, _MISSING)
                if child is _MISSING:
                    child = {}
                elif not isinstance(child, Mapping):
                    raise InvalidInputError(
                        f"parameter '{path}': '{'.'.join(key)}' is {type(child).__name__}, "
                        "not a section"
                    )
                if key not in copied:
                    child = dict(child)
                    node[part] = child
                    copied.add(key)
                node = child
            node[parts[-1]] = value
        return result

    def _create_parameter_variation(
        self,
        parameters: Mapping[str, Any],
        uncertainty: float,
        rng: np.random.Generator | None = None,
    ) -> dict[str, Any]:
        """Each numeric value times ``1 + uncertainty * U(-1, 1)``, kept within its range.

        ``parameters`` are checked by the caller (:meth:`validate_parameters`); strings (the line
        status) are kept. Draws one uniform number per numeric parameter, in order, even at zero
        uncertainty, so a seed gives the same stream whatever the uncertainty.
        """
        u = _fraction("uncertainty", uncertainty, MAX_UNCERTAINTY)
        numeric = [p for p, v in parameters.items() if not isinstance(v, str)]
        draws = (rng or self._rng).uniform(-1.0, 1.0, size=len(numeric)).tolist()
        varied: dict[str, Any] = dict(parameters)
        for path, draw in zip(numeric, draws, strict=True):
            varied[path] = _clip(path, _real(path, parameters[path]) * (1.0 + u * draw))
        return varied

    # -- Monte Carlo --------------------------------------------------------------------------
    def run_monte_carlo_simulation(
        self,
        steps: int | None = 10,
        initial_state: Mapping[str, Any] | None = None,
        parameters: Mapping[str, Any] | None = None,
        iterations: int = 100,
        uncertainty: float = 0.1,
        seed: Seed = None,
        rng: np.random.Generator | None = None,
    ) -> list[dict[str, Any]]:
        """``iterations`` runs: ``[{"iteration": i, "parameters": varied, "states": [...]}]``.

        Per iteration, each numeric parameter is varied by ``1 ± uncertainty`` (uniform), and so
        are the model's gains (:data:`~.process_models.GAIN_NAMES` and the consumption rates;
        built-in model only). ``parameters`` of an entry is None when none were given.
        """
        self._refresh_parameters()
        count = self._steps(steps)
        n = _count("iterations", iterations, 1, MAX_ITERATIONS)
        u = _fraction("uncertainty", uncertainty, MAX_UNCERTAINTY)
        if (count + 1) * n > MAX_MONTE_CARLO_STATES:
            raise InvalidInputError(
                f"(steps + 1) * iterations = {(count + 1) * n:,} states exceeds "
                f"{MAX_MONTE_CARLO_STATES:,}; use run_monte_carlo_summary for large runs"
            )
        generator = self._generator(seed, rng)
        state = self._start(initial_state, None)
        values = self.validate_parameters(parameters, state) if parameters else None
        pv = self._pv_model
        results: list[dict[str, Any]] = []
        for i in range(n):
            varied = self._create_parameter_variation(values, u, generator) if values else None
            start = self._apply_parameters(state, varied) if varied else state
            factors = None
            if pv is not None:
                draws = generator.uniform(-1.0, 1.0, size=pv.n_gains)
                factors = (1.0 + u * draws).tolist()
            states = [start, *self._trajectory(start, count, generator, factors)]
            results.append({"iteration": i, "parameters": varied, "states": states})
        return results

    def run_monte_carlo_summary(
        self,
        steps: int | None = 10,
        initial_state: Mapping[str, Any] | None = None,
        parameters: Mapping[str, Any] | None = None,
        iterations: int = 100,
        uncertainty: float = 0.1,
        seed: Seed = None,
        rng: np.random.Generator | None = None,
        thresholds: Mapping[str, ThresholdRule] | None = None,
    ) -> MonteCarloSummary:
        """The vectorized Monte Carlo: statistics of all iterations, computed at once.

        Same variation as :meth:`run_monte_carlo_simulation` (with one iteration and the same
        seed, the very same trajectory), but on numpy arrays over the iterations, keeping only
        per-step statistics: mean, 5/50/95 percentiles per path, and per threshold (default:
        ``ConstantsService().get_parameter_thresholds()``) the breach probabilities.
        """
        self._refresh_parameters()
        label = self._parameter_set
        count = self._steps(steps, MAX_SUMMARY_STEPS)
        n = _count("iterations", iterations, 1, MAX_ITERATIONS)
        u = _fraction("uncertainty", uncertainty, MAX_UNCERTAINTY)
        if count * n > MAX_SUMMARY_WORK:
            raise InvalidInputError(
                f"steps * iterations = {count * n:,} exceeds {MAX_SUMMARY_WORK:,}"
            )
        rules = dict(thresholds) if thresholds is not None else self._thresholds()
        generator = self._generator(seed, rng)
        source = self._source(initial_state)
        values = self.validate_parameters(parameters, source) if parameters else None
        pv = self._pv_model
        if pv is None:
            summary = self._summary_from_runs(source, values, count, n, u, generator, rules)
            return dataclasses.replace(summary, parameter_set=label)
        base = self._apply_parameters(source, values) if values else dict(source)
        overrides: dict[str, FloatArray] = {}
        if values:
            numeric = [p for p, v in values.items() if not isinstance(v, str)]
            draws = generator.uniform(-1.0, 1.0, size=(n, len(numeric)))
            for j, path in enumerate(numeric):
                overrides[path] = _clip_array(path, float(values[path]) * (1.0 + u * draws[:, j]))
        factors = 1.0 + u * generator.uniform(-1.0, 1.0, size=(n, pv.n_gains))
        frames = pv.simulate_ensemble(base, count, n, generator, factors, overrides)
        constants = {p: overrides.get(p, v) for p, v in _static_values(base, rules).items()}
        summary = summarize(frames, count, n, u, rules, constants)
        return dataclasses.replace(summary, parameter_set=label)

    def _summary_from_runs(
        self,
        source: Mapping[str, Any],
        values: Mapping[str, Any] | None,
        steps: int,
        iterations: int,
        uncertainty: float,
        generator: np.random.Generator,
        rules: Mapping[str, ThresholdRule],
    ) -> MonteCarloSummary:
        """A custom model's summary: run the trajectories one by one, then reduce."""
        if (steps + 1) * iterations > MAX_MONTE_CARLO_STATES:
            raise InvalidInputError(
                f"a custom model keeps every state: (steps + 1) * iterations = "
                f"{(steps + 1) * iterations:,} exceeds {MAX_MONTE_CARLO_STATES:,}"
            )
        runs = self.run_monte_carlo_simulation(
            steps, source, values, iterations, uncertainty, seed=generator
        )
        paths = _numeric_paths(runs[0]["states"][0])
        for path in rules:
            if path not in paths and _is_number(_lookup(source, path.split("."))):
                paths.append(path)
        split = [p.split(".") for p in paths]

        def frames() -> Iterator[dict[str, FloatArray]]:
            for k in range(steps + 1):
                frame: dict[str, FloatArray] = {}
                for path, parts in zip(paths, split, strict=True):
                    column = [_lookup(run["states"][k], parts) for run in runs]
                    frame[path] = np.array([float(v) if _is_number(v) else np.nan for v in column])
                yield frame

        return summarize(frames(), steps, iterations, uncertainty, rules, allow_nan=True)

    # -- helpers ------------------------------------------------------------------------------
    def _thresholds(self) -> dict[str, ThresholdRule]:
        return self.constants.get_parameter_thresholds()

    def _steps(self, steps: Any, limit: int = MAX_STEPS) -> int:
        if steps is None:
            return self.parameters.default_simulation_steps
        return _count("steps", steps, 0, limit)

    def _generator(self, seed: Any, rng: Any) -> np.random.Generator:
        if seed is not None and rng is not None:
            raise InvalidInputError("give either seed or rng, not both")
        if rng is not None:
            if not isinstance(rng, np.random.Generator):
                raise InvalidInputError(f"rng must be a numpy.random.Generator, got {rng!r}")
            return rng
        if seed is None:
            return self._rng
        if isinstance(seed, np.random.Generator):
            return seed
        if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
            raise InvalidInputError(f"seed must be a non-negative int or a Generator, got {seed!r}")
        return np.random.default_rng(int(seed))

    def starting_state(self, initial_state: Mapping[str, Any] | None = None) -> Mapping[str, Any]:
        """``initial_state``, or the state manager's current state when None (not copied)."""
        return self._source(initial_state)

    def _source(self, initial_state: Mapping[str, Any] | None) -> Mapping[str, Any]:
        """The starting state, not copied (for read-only use)."""
        if initial_state is None:
            if self.state_manager is None:
                raise InvalidInputError("no initial_state given and no state manager to ask")
            initial_state = self.state_manager.get_current_state()
        if not isinstance(initial_state, Mapping):
            raise InvalidInputError(
                f"initial_state must be a mapping, got {type(initial_state).__name__}"
            )
        return initial_state

    def _start(
        self, initial_state: Mapping[str, Any] | None, parameters: Mapping[str, Any] | None
    ) -> dict[str, Any]:
        """A private copy of the starting state with ``parameters`` applied."""
        source = self._source(initial_state)
        if parameters:
            self.validate_parameters(parameters, source)  # fail before copying anything
        state: dict[str, Any] = copy.deepcopy(dict(source))
        if parameters:
            state = self._apply_parameters(state, parameters)
        return state


def _clip(path: str, value: float) -> float:
    bounds = parameter_bounds(path)
    if bounds is None:
        return value
    return min(max(value, bounds[0]), bounds[1])


def _clip_array(path: str, values: FloatArray) -> FloatArray:
    bounds = parameter_bounds(path)
    if bounds is None:
        return values
    return np.clip(values, bounds[0], bounds[1])


def _static_values(
    state: Mapping[str, Any], rules: Mapping[str, ThresholdRule]
) -> dict[str, float]:
    """Threshold paths with a number in ``state`` (the model keeps them or leaves them alone)."""
    values: dict[str, float] = {}
    for path in rules:
        value = _lookup(state, path.split("."))
        if _is_number(value) and math.isfinite(float(value)):
            values[path] = float(value)
    return values


def _numeric_paths(state: Mapping[str, Any], prefix: str = "", depth: int = 0) -> list[str]:
    paths: list[str] = []
    for key, value in state.items():
        path = f"{prefix}{key}"
        if isinstance(value, Mapping) and depth < 3:
            paths.extend(_numeric_paths(value, f"{path}.", depth + 1))
        elif prefix and _is_number(value):
            paths.append(path)
    return paths
