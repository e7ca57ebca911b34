"""DigitalTwinAdapter: the HMI's access to the digital twin (technical manual 9.3).

``digital_twin_adapter`` is the singleton (``DigitalTwinAdapter()`` returns it;
``_reset_instance()`` for tests). Creating it is free: the twin is looked up when first needed
and the scenario store opens on first use. ``initialize()`` binds the current ``DigitalTwin``
singleton (initializing it when nobody has), so after ``DigitalTwin._reset_instance()`` a new
``initialize()`` follows the new twin::

    from circman5.manufacturing.human_interface.adapters.digital_twin_adapter import (
        digital_twin_adapter,
    )

    digital_twin_adapter.initialize()
    states = digital_twin_adapter.run_simulation(steps=5, parameters={
        "production_line.temperature": 24.0,
    })
    assert len(states) == 6  # the starting state and 5 steps

Every call is thread-safe (the twin's and the engine's own locks); the API calls the CPU-heavy
ones (simulation, Monte Carlo, scenarios) from worker threads.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from circman5.singleton import Singleton

if TYPE_CHECKING:
    from circman5.adapters.config.thresholds import ThresholdRule
    from circman5.manufacturing.digital_twin.core.state_manager import StateManager
    from circman5.manufacturing.digital_twin.core.twin_core import DigitalTwin
    from circman5.manufacturing.digital_twin.simulation.scenario_manager import ScenarioManager
    from circman5.manufacturing.digital_twin.simulation.simulation_engine import (
        SimulationEngine,
    )

logger = logging.getLogger(__name__)

__all__ = ["DigitalTwinAdapter", "digital_twin_adapter"]


def _int(params: Mapping[str, Any], key: str, default: int | None) -> int | None:
    value = params.get(key, default)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{key} must be an integer, got {value!r}")
    return int(value)


class DigitalTwinAdapter(Singleton):
    """Adapter for Digital Twin access from the HMI."""

    #: Commands this component handles, with their minimum role (technical manual 12.2).
    command_roles: ClassVar[dict[str, str]] = {
        "get_current_state": "viewer",
        "get_state_history": "viewer",
        "get_active_alarms": "viewer",
        "run_simulation": "engineer",
        "save_state": "engineer",
    }

    def __init__(
        self,
        digital_twin: DigitalTwin | None = None,
        scenario_manager: ScenarioManager | None = None,
    ) -> None:
        with self._init_lock:
            if self._constructed:
                if digital_twin is not None or scenario_manager is not None:
                    self.attach(digital_twin, scenario_manager)
                return
            self.logger = logger
            self._twin = digital_twin
            self._scenario_manager = scenario_manager
            self._lock = threading.RLock()
            self._initialized = False
            self._constructed = True

    @classmethod
    def _reset_instance(cls) -> None:
        """Tests: unbind the twin and the scenario store, keeping the same object."""
        with cls._init_lock:
            instance = cls._instance
            if instance is not None and instance._constructed:
                instance._twin = None
                instance._scenario_manager = None
                instance._initialized = False

    # -- wiring -------------------------------------------------------------------------------
    def attach(
        self,
        digital_twin: DigitalTwin | None = None,
        scenario_manager: ScenarioManager | None = None,
    ) -> None:
        """Use this twin and/or scenario manager (the service's composition root calls it)."""
        with self._lock:
            if digital_twin is not None:
                self._twin = digital_twin
            if scenario_manager is not None:
                self._scenario_manager = scenario_manager

    def initialize(self, digital_twin: DigitalTwin | None = None) -> bool:
        """Bind the twin (default: the current ``DigitalTwin`` singleton) and make sure it is
        initialized. Returns whether the twin is ready."""
        from circman5.manufacturing.digital_twin.core.twin_core import DigitalTwin

        with self._lock:
            twin = digital_twin or DigitalTwin()
            self._twin = twin
            ready = twin.initialized or twin.initialize()
            self._initialized = bool(ready)
        if not ready:
            self.logger.error("the digital twin could not be initialized")
        return bool(ready)

    @property
    def initialized(self) -> bool:
        return self._initialized

    @property
    def digital_twin(self) -> DigitalTwin:
        """The bound twin; the ``DigitalTwin`` singleton when none is bound (or the bound one
        was reset away)."""
        from circman5.manufacturing.digital_twin.core.twin_core import DigitalTwin

        twin = self._twin
        if twin is None or (
            DigitalTwin._instance is not None and twin is not DigitalTwin._instance
        ):
            twin = DigitalTwin()
            self._twin = twin
        return twin

    @property
    def state_manager(self) -> StateManager:
        return self.digital_twin.state_manager

    @property
    def simulation_engine(self) -> SimulationEngine:
        twin = self.digital_twin
        engine = twin.simulation_engine
        if engine is None:
            from circman5.manufacturing.digital_twin.simulation.simulation_engine import (
                SimulationEngine,
            )

            with self._lock:
                engine = twin.simulation_engine
                if engine is None:
                    engine = SimulationEngine(twin.state_manager)
                    twin.simulation_engine = engine
        return engine

    @property
    def scenario_manager(self) -> ScenarioManager:
        """The scenario store (``ScenarioManager()`` on the data dir, created on first use)."""
        manager = self._scenario_manager
        if manager is None:
            from circman5.manufacturing.digital_twin.simulation.scenario_manager import (
                ScenarioManager,
            )

            with self._lock:
                manager = self._scenario_manager
                if manager is None:
                    manager = ScenarioManager(engine=self.simulation_engine)
                    self._scenario_manager = manager
        return manager

    # -- state --------------------------------------------------------------------------------
    def get_current_state(self) -> dict[str, Any]:
        return self.digital_twin.get_current_state()

    def get_state_snapshot(self) -> Mapping[str, Any]:
        """The current state without copying (read-only; for the live push)."""
        snapshot: Mapping[str, Any] = self.digital_twin.state_manager.snapshot()
        return snapshot

    def get_state_history(self, limit: int | None = None) -> list[dict[str, Any]]:
        return self.digital_twin.get_state_history(limit)

    def get_state_at_time(self, timestamp: str | float) -> dict[str, Any] | None:
        result: dict[str, Any] | None = self.digital_twin.state_manager.get_state_at_time(timestamp)
        return result

    def get_thresholds(self) -> dict[str, ThresholdRule]:
        return dict(self.digital_twin.thresholds)

    def get_active_alarms(self) -> dict[str, str]:
        return dict(self.digital_twin.active_alarms)

    def save_state(self, file_path: str | Path | None = None) -> bool:
        return self.digital_twin.save_state(file_path)

    # -- simulation ---------------------------------------------------------------------------
    def run_simulation(
        self, steps: int | None = None, parameters: Mapping[str, Any] | None = None
    ) -> list[dict[str, Any]]:
        """``steps + 1`` states from the current state (the live state is not touched).

        ``parameters`` are dotted paths with new starting values. Bad input raises
        ``ValueError``. The twin publishes the simulation-result event.
        """
        twin = self.digital_twin
        if not twin.initialized:
            self.initialize(twin)
        return twin.simulate(steps=steps, parameters=parameters)

    def run_monte_carlo(
        self,
        steps: int | None = 10,
        iterations: int = 100,
        uncertainty: float = 0.1,
        parameters: Mapping[str, Any] | None = None,
        seed: int | None = None,
    ) -> dict[str, Any]:
        """The vectorized Monte Carlo summary (percentile bands, breach probabilities)."""
        twin = self.digital_twin
        summary = self.simulation_engine.run_monte_carlo_summary(
            steps=steps,
            initial_state=twin.get_current_state(),
            parameters=parameters,
            iterations=iterations,
            uncertainty=uncertainty,
            seed=seed,
            thresholds=twin.thresholds,
        )
        result: dict[str, Any] = summary.to_dict()
        return result

    # -- commands -----------------------------------------------------------------------------
    def handle_command(self, command: str, params: dict[str, Any]) -> dict[str, Any]:
        """Commands of the twin (see :attr:`command_roles`); others are not handled."""
        if command == "get_current_state":
            return {"handled": True, "success": True, "state": self.get_current_state()}
        if command == "get_state_history":
            limit = _int(params, "limit", 100)
            if limit is not None and not 0 <= limit <= 1000:
                raise ValueError("limit must be between 0 and 1000")
            history = self.get_state_history(limit)
            return {"handled": True, "success": True, "history": history}
        if command == "get_active_alarms":
            return {"handled": True, "success": True, "alarms": self.get_active_alarms()}
        if command == "run_simulation":
            steps = _int(params, "steps", None)
            if steps is not None and not 0 <= steps <= 1000:
                raise ValueError("steps must be between 0 and 1000")
            parameters = params.get("parameters") or {}
            if not isinstance(parameters, Mapping):
                raise ValueError("parameters must be an object of dotted paths")
            states = self.run_simulation(steps=steps, parameters=parameters)
            return {"handled": True, "success": bool(states), "states": states}
        if command == "save_state":
            return {"handled": True, "success": self.save_state()}
        return {"handled": False}


#: The adapter singleton of the implementation guide (5.1, 6.3).
digital_twin_adapter = DigitalTwinAdapter()
