"""ScenarioManager: named what-if parameter sets, their runs and side-by-side comparison.

Scenarios and simulation runs live in SQLite (``<data dir>/twin/scenarios.db`` unless
``db_path`` is given), or in the :class:`~circman5.storage.contracts.ScenarioStore` given as
``store`` (PostgreSQL when ``[database] url`` is set; see :mod:`circman5.storage`), in the
``scenarios`` and ``simulations`` tables of technical manual 11.2:

* ``scenarios``: id (uuid hex), name (unique), description, parameters (JSON), created_at,
  updated_at (ISO 8601, UTC);
* ``simulations``: id (uuid hex), timestamp, parameters (JSON: the scenario's parameters),
  results (JSON: scenario name and id, seed, KPIs, final state, and every state when there
  are at most ``store_states_limit``), duration (s), steps.

Scenario parameters are the engine's dotted paths (see
:mod:`~circman5.manufacturing.digital_twin.simulation.simulation_engine`), checked when a
scenario is created or updated. At most ``max_scenarios`` scenarios are kept: creating one more
raises :class:`ScenarioLimitError`.

Comparisons run every scenario from the same starting state with the same seed (common random
numbers), so the differences in the KPI table come from the parameters, not from the noise.

Why this module is long: the spec documents ``ScenarioManager`` and its result types (Scenario,
ScenarioRun, ScenarioComparison, the KPI helpers) at this import path; the storage itself is in
:mod:`circman5.storage`.
"""

from __future__ import annotations

import datetime
import json
import logging
import threading
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from circman5.errors import (
    InvalidInputError,
    ScenarioLimitError,
    ScenarioNotFoundError,
    ScenarioStoreError,
    SchemaVersionError,
    StorageError,
)
from circman5.manufacturing.digital_twin.simulation.simulation_engine import SimulationEngine
from circman5.quantities import finite_number
from circman5.storage.contracts import ScenarioRow, ScenarioStore, SimulationRow
from circman5.storage.sqlite import SqliteScenarioStore

logger = logging.getLogger(__name__)

__all__ = [
    "KPI_NAMES",
    "Scenario",
    "ScenarioComparison",
    "ScenarioLimitError",
    "ScenarioManager",
    "ScenarioNotFoundError",
    "ScenarioRun",
    "ScenarioStoreError",
    "trajectory_kpis",
]

_T = TypeVar("_T")

MAX_NAME_LENGTH = 200
MAX_DESCRIPTION_LENGTH = 10_000


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).isoformat()


@dataclass(frozen=True)
class Scenario:
    """A named set of simulation parameters."""

    id: str
    name: str
    description: str
    parameters: dict[str, Any]
    created_at: str
    updated_at: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "description": self.description,
            "parameters": dict(self.parameters),
            "created_at": self.created_at,
            "updated_at": self.updated_at,
        }


@dataclass(frozen=True)
class ScenarioRun:
    """One stored run of a scenario: its states and KPIs."""

    simulation_id: str
    scenario: Scenario
    timestamp: str
    steps: int
    seed: int
    duration: float
    states: list[dict[str, Any]] = field(repr=False)
    kpis: dict[str, Any]
    #: The model parameters used: ``calibration <version>`` or ``built-in defaults``.
    parameter_set: str = "built-in defaults"


#: The KPIs of :func:`trajectory_kpis` (material KPIs are per material).
KPI_NAMES: tuple[str, ...] = (
    "final_temperature",
    "final_energy_consumption",
    "total_energy",
    "total_output",
    "good_output",
    "mean_defect_rate",
    "final_efficiency",
    "material_use",
    "material_waste",
    "material_recycled",
    "final_inventory",
)


@dataclass(frozen=True)
class ScenarioComparison:
    """KPIs of several scenarios run from the same state with the same seed."""

    scenarios: tuple[str, ...]
    steps: int
    seed: int
    kpis: dict[str, dict[str, Any]]
    runs: dict[str, ScenarioRun] = field(repr=False)

    def rows(self) -> list[dict[str, Any]]:
        """The side-by-side table: one row per KPI (material KPIs as ``kpi.material``)."""
        flat = {name: _flatten(k) for name, k in self.kpis.items()}
        names: list[str] = []
        for values in flat.values():
            names.extend(n for n in values if n not in names)
        return [
            {"kpi": kpi, **{name: flat[name].get(kpi) for name in self.scenarios}} for kpi in names
        ]

    def to_dict(self) -> dict[str, Any]:
        return {
            "scenarios": list(self.scenarios),
            "steps": self.steps,
            "seed": self.seed,
            "parameter_set": sorted({run.parameter_set for run in self.runs.values()}),
            "kpis": self.kpis,
            "table": self.rows(),
        }


def _flatten(kpis: Mapping[str, Any]) -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in kpis.items():
        if isinstance(value, Mapping):
            for sub, v in value.items():
                flat[f"{key}.{sub}"] = v
        else:
            flat[key] = value
    return flat


def trajectory_kpis(states: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The comparison KPIs of one trajectory (``states[0]`` is the starting state).

    ``total_energy`` is the sum of ``energy_consumption`` over the simulated steps (kW x step);
    ``total_output`` the sum of ``production_rate`` (modules); ``good_output`` the same weighted
    by ``1 - defect_rate``; material KPIs are the change of each material's running totals
    over the run (``material_use`` from ``consumption``). A KPI the states lack is None.
    """
    if not states:
        raise InvalidInputError("no states to compute KPIs from")
    first, last = states[0], states[-1]
    simulated = states[1:]

    def line(state: Mapping[str, Any], key: str) -> float | None:
        section = state.get("production_line")
        return finite_number(section.get(key)) if isinstance(section, Mapping) else None

    def series(key: str) -> list[float] | None:
        values = [line(s, key) for s in simulated]
        clean = [v for v in values if v is not None]
        return clean if len(clean) == len(values) else None

    energy, rates, defects = series("energy_consumption"), series("production_rate"), None
    defects = series("defect_rate")
    good = None
    if rates is not None and defects is not None:
        good = sum(r * (1.0 - d) for r, d in zip(rates, defects, strict=True))

    def materials(state: Mapping[str, Any]) -> Mapping[str, Any]:
        section = state.get("materials")
        return section if isinstance(section, Mapping) else {}

    def change(key: str) -> dict[str, float]:
        out: dict[str, float] = {}
        for name, entry in materials(last).items():
            if not isinstance(entry, Mapping):
                continue
            end = finite_number(entry.get(key))
            if end is None:
                continue
            start_entry = materials(first).get(name)
            start = (
                finite_number(start_entry.get(key)) if isinstance(start_entry, Mapping) else None
            )
            out[name] = end - (start or 0.0)
        return out

    return {
        "steps": len(simulated),
        "final_temperature": line(last, "temperature"),
        "final_energy_consumption": line(last, "energy_consumption"),
        "total_energy": sum(energy) if energy is not None else None,
        "total_output": sum(rates) if rates is not None else None,
        "good_output": good,
        "mean_defect_rate": (sum(defects) / len(defects)) if defects else None,
        "final_efficiency": line(last, "efficiency"),
        "material_use": change("consumption"),
        "material_waste": change("waste"),
        "material_recycled": change("recycled"),
        "final_inventory": {
            name: v
            for name, entry in materials(last).items()
            if isinstance(entry, Mapping)
            and (v := finite_number(entry.get("inventory"))) is not None
        },
    }


class _LiveTwinState:
    """Reads the live state from the StateManager singleton when a run needs it."""

    def get_current_state(self) -> dict[str, Any]:
        from circman5.manufacturing.digital_twin.core.state_manager import StateManager

        return StateManager().get_current_state()


class ScenarioManager:
    """Create, list, get, update, delete, run and compare scenarios (stored in SQLite).

    ``engine``: the :class:`SimulationEngine` (default: one on the live twin state, created on
    first use). ``db_path``: the SQLite file (default ``<data dir>/twin/scenarios.db``).
    ``max_scenarios``: how many scenarios may exist. ``store_states_limit``: runs with at most
    this many states store all of them; longer runs store KPIs and the final state.
    ``store``: where scenarios and runs live instead of the SQLite file (owned by the caller).
    """

    def __init__(
        self,
        engine: SimulationEngine | None = None,
        db_path: str | Path | None = None,
        max_scenarios: int = 100,
        store_states_limit: int = 1000,
        store: ScenarioStore | None = None,
    ) -> None:
        if isinstance(max_scenarios, bool) or not isinstance(max_scenarios, int):
            raise InvalidInputError(f"max_scenarios must be an int, got {max_scenarios!r}")
        if max_scenarios < 1:
            raise InvalidInputError(f"max_scenarios must be at least 1, got {max_scenarios}")
        self.max_scenarios = max_scenarios
        self.store_states_limit = max(0, int(store_states_limit))
        self._engine = engine
        self._engine_lock = threading.Lock()
        self._write_lock = threading.Lock()
        self.db_path: Path | None = None
        if store is None:
            if db_path is None:
                from circman5.paths import data_path

                db_path = data_path("twin", "scenarios.db")
            self.db_path = Path(db_path)
            store = self._store_call(SqliteScenarioStore, self.db_path)
        self.store: ScenarioStore = store

    # -- plumbing -----------------------------------------------------------------------------
    @property
    def engine(self) -> SimulationEngine:
        """The simulation engine (created on first use when none was given)."""
        if self._engine is None:
            with self._engine_lock:
                if self._engine is None:
                    self._engine = SimulationEngine(_LiveTwinState())
        return self._engine

    @staticmethod
    def _row(row: ScenarioRow) -> Scenario:
        return Scenario(
            id=row.id,
            name=row.name,
            description=row.description,
            parameters=json.loads(row.parameters),
            created_at=row.created_at,
            updated_at=row.updated_at,
        )

    def _check_parameters(self, parameters: Any) -> dict[str, Any]:
        if parameters is None:
            return {}
        return dict(self.engine.validate_parameters(parameters))

    @staticmethod
    def _check_name(name: Any) -> str:
        if not isinstance(name, str) or not name.strip():
            raise InvalidInputError(f"a scenario name must be a non-empty string, got {name!r}")
        clean: str = name.strip()
        if len(clean) > MAX_NAME_LENGTH:
            raise InvalidInputError(f"a scenario name has at most {MAX_NAME_LENGTH} characters")
        return clean

    @staticmethod
    def _check_description(description: Any) -> str:
        if not isinstance(description, str):
            raise InvalidInputError(f"a description must be a string, got {description!r}")
        if len(description) > MAX_DESCRIPTION_LENGTH:
            raise InvalidInputError(
                f"a description has at most {MAX_DESCRIPTION_LENGTH} characters"
            )
        return description

    # -- CRUD ---------------------------------------------------------------------------------
    def create_scenario(
        self, name: str, parameters: Mapping[str, Any] | None = None, description: str = ""
    ) -> Scenario:
        """Store a new scenario (``InvalidInputError`` for a taken name or bad parameters,
        :class:`ScenarioLimitError` when ``max_scenarios`` exist)."""
        name = self._check_name(name)
        description = self._check_description(description)
        values = self._check_parameters(parameters)
        now = _now()
        scenario = Scenario(uuid.uuid4().hex, name, description, values, now, now)
        row = ScenarioRow(scenario.id, name, description, json.dumps(values), now, now)
        with self._write_lock:
            outcome = self._store_call(self.store.create, row, self.max_scenarios)
        if outcome == "limit":
            raise ScenarioLimitError(
                f"cannot create scenario '{name}': the limit of {self.max_scenarios} "
                "scenarios is reached; delete one first"
            )
        if outcome == "duplicate":
            raise InvalidInputError(f"a scenario named '{name}' already exists")
        logger.info("scenario created: %s", name)
        return scenario

    def list_scenarios(self) -> list[Scenario]:
        """Every scenario, oldest first."""
        return [self._row(r) for r in self._store_call(self.store.list_all)]

    def get_scenario(self, name: str) -> Scenario:
        """The scenario called ``name`` (or with id ``name``); :class:`ScenarioNotFoundError`."""
        row = self._store_call(self.store.get, name)
        if row is None:
            raise ScenarioNotFoundError(f"no scenario named '{name}'")
        return self._row(row)

    def update_scenario(
        self,
        name: str,
        parameters: Mapping[str, Any] | None = None,
        description: str | None = None,
        new_name: str | None = None,
    ) -> Scenario:
        """Replace the parameters, description and/or name of a scenario (None: keep)."""
        values = self._check_parameters(parameters) if parameters is not None else None
        description = self._check_description(description) if description is not None else None
        new_name = self._check_name(new_name) if new_name is not None else None
        with self._write_lock:
            current = self.get_scenario(name)
            updated = Scenario(
                id=current.id,
                name=new_name if new_name is not None else current.name,
                description=description if description is not None else current.description,
                parameters=values if values is not None else current.parameters,
                created_at=current.created_at,
                updated_at=_now(),
            )
            outcome = self._store_call(
                self.store.update,
                ScenarioRow(
                    updated.id,
                    updated.name,
                    updated.description,
                    json.dumps(updated.parameters),
                    updated.created_at,
                    updated.updated_at,
                ),
            )
        if outcome == "duplicate":
            raise InvalidInputError(f"a scenario named '{updated.name}' already exists")
        if outcome != "ok":
            raise ScenarioNotFoundError(f"no scenario named '{name}'")
        logger.info("scenario updated: %s", updated.name)
        return updated

    def delete_scenario(self, name: str) -> None:
        """Delete a scenario (its stored runs stay); :class:`ScenarioNotFoundError`."""
        with self._write_lock:
            deleted = self._store_call(self.store.delete, name)
        if not deleted:
            raise ScenarioNotFoundError(f"no scenario named '{name}'")
        logger.info("scenario deleted: %s", name)

    # -- running ------------------------------------------------------------------------------
    def run_scenario(
        self,
        name: str,
        steps: int | None = None,
        initial_state: Mapping[str, Any] | None = None,
        seed: int | None = None,
    ) -> ScenarioRun:
        """Simulate a scenario from ``initial_state`` (default: the live twin state) and store
        the run in ``simulations``. ``seed`` defaults to a fresh random one (stored)."""
        scenario = self.get_scenario(name)
        return self._run(scenario, steps, initial_state, _seed(seed))

    def _run(
        self,
        scenario: Scenario,
        steps: int | None,
        initial_state: Mapping[str, Any] | None,
        seed: int,
    ) -> ScenarioRun:
        started = time.perf_counter()
        parameter_set = self.engine.parameter_set
        states = self.engine.run_simulation(
            steps=steps,
            initial_state=initial_state,
            parameters=scenario.parameters or None,
            seed=seed,
        )
        duration = time.perf_counter() - started
        kpis = trajectory_kpis(states)
        results = {
            "scenario": scenario.name,
            "scenario_id": scenario.id,
            "seed": seed,
            "parameter_set": parameter_set,
            "kpis": kpis,
            "final_state": states[-1],
            "states": states if len(states) <= self.store_states_limit else None,
        }
        simulation_id = self.save_simulation(
            scenario.parameters, results, duration, len(states) - 1
        )
        return ScenarioRun(
            simulation_id=simulation_id,
            scenario=scenario,
            timestamp=_now(),
            steps=len(states) - 1,
            seed=seed,
            duration=duration,
            states=states,
            kpis=kpis,
            parameter_set=parameter_set,
        )

    def compare_scenarios(
        self,
        scenario_names: Sequence[str],
        metrics: Sequence[str] | None = None,
        steps: int | None = None,
        initial_state: Mapping[str, Any] | None = None,
        seed: int | None = None,
    ) -> ScenarioComparison:
        """Run each scenario from the same state with the same seed; KPIs side by side.

        ``metrics`` keeps only those KPIs (names from :data:`KPI_NAMES`). Unknown scenario
        names raise :class:`ScenarioNotFoundError` before anything runs.
        """
        if isinstance(scenario_names, str) or not scenario_names:
            raise InvalidInputError("give a non-empty list of scenario names")
        if metrics is not None:
            unknown = [m for m in metrics if m not in KPI_NAMES]
            if unknown:
                raise InvalidInputError(f"unknown KPI(s) {unknown}; known: {list(KPI_NAMES)}")
        scenarios = [self.get_scenario(n) for n in scenario_names]
        names = tuple(s.name for s in scenarios)
        if len(set(names)) != len(names):
            raise InvalidInputError(f"scenario listed twice: {list(scenario_names)}")
        engine = self.engine
        start = dict(engine.starting_state(initial_state))  # one snapshot for every scenario
        common_seed = _seed(seed)
        runs = {s.name: self._run(s, steps, start, common_seed) for s in scenarios}
        kpis = {
            name: {k: v for k, v in run.kpis.items() if metrics is None or k in metrics}
            for name, run in runs.items()
        }
        steps_run = next(iter(runs.values())).steps
        return ScenarioComparison(names, steps_run, common_seed, kpis, runs)

    # -- stored simulations -------------------------------------------------------------------
    def save_simulation(
        self,
        parameters: Mapping[str, Any] | None,
        results: Mapping[str, Any],
        duration: float,
        steps: int,
    ) -> str:
        """Store one simulation run; returns its id."""
        simulation_id = uuid.uuid4().hex
        row = SimulationRow(
            simulation_id,
            _now(),
            json.dumps(dict(parameters or {})),
            json.dumps(dict(results), default=str),
            float(duration),
            int(steps),
        )
        with self._write_lock:
            self._store_call(self.store.save_simulation, row)
        return simulation_id

    def list_simulations(self, limit: int = 50) -> list[dict[str, Any]]:
        """The most recent stored runs (without their results), newest first."""
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
            raise InvalidInputError(f"limit must be a positive int, got {limit!r}")
        rows = self._store_call(self.store.list_simulations, limit)
        return [
            {
                "id": r.id,
                "timestamp": r.timestamp,
                "parameters": json.loads(r.parameters),
                "duration": r.duration,
                "steps": r.steps,
            }
            for r in rows
        ]

    def get_simulation(self, simulation_id: str) -> dict[str, Any]:
        """One stored run with its results; :class:`ScenarioNotFoundError` when unknown."""
        row = self._store_call(self.store.get_simulation, simulation_id)
        if row is None:
            raise ScenarioNotFoundError(f"no simulation with id '{simulation_id}'")
        return {
            "id": row.id,
            "timestamp": row.timestamp,
            "parameters": json.loads(row.parameters),
            "results": json.loads(row.results),
            "duration": row.duration,
            "steps": row.steps,
        }

    @staticmethod
    def _store_call(method: Callable[..., _T], *args: Any) -> _T:
        """Call the store, raising :class:`ScenarioStoreError` for a database failure."""
        try:
            return method(*args)
        except (ScenarioStoreError, SchemaVersionError):
            raise
        except StorageError as err:
            raise ScenarioStoreError(str(err)) from err


def _seed(seed: Any) -> int:
    if seed is None:
        return int(np.random.default_rng().integers(0, 2**63 - 1))
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
        raise InvalidInputError(f"seed must be a non-negative int, got {seed!r}")
    return int(seed)
