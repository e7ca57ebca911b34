"""The DigitalTwin: the central coordinator of the twin (technical manual 3, API 16.2.1).

Why this module is long: the spec's DigitalTwin class (API 16.2.1) with its documented methods; the
threshold checks and the forecast hand-over live elsewhere.

Every update is merged into the :class:`StateManager`'s state and runs the threshold checks on
the paths it changed. Alarm flood control: a value that leaves its range raises one
``ThresholdEvent``; it raises a ``ThresholdClearedEvent`` once it is back inside by the rule's
deadband; nothing in between. A ``SystemStateEvent`` is published when ``system_status``
changes, not on every update. A forecast check (rate-limited) may warn before a limit is
crossed. The twin knows nothing of protocols: the synchronization engine calls :meth:`update`.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from circman5.adapters.config.thresholds import ThresholdRule
from circman5.adapters.services.constants_service import ConstantsService
from circman5.errors import InvalidInputError
from circman5.manufacturing.digital_twin.core.state_manager import StateManager
from circman5.manufacturing.digital_twin.event_notification.event_types import (
    EventCategory,
    EventSeverity,
    ThresholdClearedEvent,
    ThresholdEvent,
    now_iso,
)
from circman5.manufacturing.digital_twin.event_notification.publishers import (
    DigitalTwinPublisher,
)
from circman5.singleton import Singleton
from circman5.state_paths import flatten
from circman5.twin_update import TwinUpdate

if TYPE_CHECKING:
    from circman5.manufacturing.digital_twin.simulation.forecast import ForecastChecker
    from circman5.manufacturing.digital_twin.simulation.simulation_engine import SimulationEngine

logger = logging.getLogger(__name__)

Side = Literal["high", "low"]
#: Hands a sample to the forecaster: ``enqueue(path, t, value)``.
Observe = Callable[[str, float, Any], object]


@dataclass(frozen=True)
class DigitalTwinConfig:
    """``DIGITAL_TWIN_CONFIG`` as a typed value; ``from_constants()`` reads the ConstantsService."""

    name: str = "SoliTek_DigitalTwin"
    update_frequency: float = 1.0
    history_length: int = 1000
    simulation_steps: int = 10
    data_sources: tuple[str, ...] = ("sensors", "manual_input", "manufacturing_system")
    synchronization_mode: str = "real_time"
    log_level: str = "INFO"
    publish_state_changes: bool = True
    publish_threshold_breaches: bool = True
    publish_simulation_results: bool = True
    thresholds: Mapping[str, ThresholdRule] = field(default_factory=dict)

    @classmethod
    def from_constants(cls, constants: ConstantsService | None = None) -> DigitalTwinConfig:
        model = (constants or ConstantsService()).get_digital_twin_model()
        core, events = model.DIGITAL_TWIN_CONFIG, model.EVENT_NOTIFICATION
        return cls(
            name=core.name,
            update_frequency=core.update_frequency,
            history_length=core.history_length,
            simulation_steps=core.simulation_steps,
            data_sources=tuple(core.data_sources),
            synchronization_mode=core.synchronization_mode,
            log_level=core.log_level,
            publish_state_changes=events.publish_state_changes,
            publish_threshold_breaches=events.publish_threshold_breaches,
            publish_simulation_results=events.publish_simulation_results,
            thresholds=model.threshold_rules(),
        )


def default_initial_state(timestamp: str) -> dict[str, Any]:
    """The spec's state structure (state-management document 3.1) with nominal values."""
    return {
        "timestamp": timestamp,
        "system_status": "initializing",
        "production_line": {
            "status": "idle",
            "temperature": 22.5,
            "energy_consumption": 0.0,
            "production_rate": 0.0,
            "efficiency": 0.9,
            "defect_rate": 0.02,
        },
        "materials": {
            "silicon_wafer": {"inventory": 1000.0, "quality": 0.95},
            "solar_glass": {"inventory": 500.0, "quality": 0.98},
        },
        "environment": {"temperature": 22.0, "humidity": 45.0},
    }


class DigitalTwin(Singleton):
    """Singleton digital twin of the PV-module line; ``_reset_instance()`` for tests."""

    def __init__(
        self,
        config: DigitalTwinConfig | None = None,
        state_manager: StateManager | None = None,
        publisher: DigitalTwinPublisher | None = None,
        constants: ConstantsService | None = None,
    ) -> None:
        with self._init_lock:
            if self._constructed:
                return
            # the spec's entry point: DigitalTwin() without arguments reads the constants
            # singleton; the service hands in the ConstantsService of its settings
            self.constants = constants if constants is not None else ConstantsService()
            self.config = config or DigitalTwinConfig.from_constants(self.constants)
            self.state_manager = state_manager or StateManager(
                history_length=self.config.history_length
            )
            self.event_publisher = publisher or DigitalTwinPublisher()
            self.logger = logger
            self.simulation_engine: SimulationEngine | None = None
            self.forecast_checker: ForecastChecker | None = None
            #: Paths whose calibrated process model is accepted for forecasting. None (the
            #: default): those of the active calibration (``circman5 calibrate``), followed as
            #: new calibrations are activated; or set before ``initialize()``, or later through
            #: ``forecast_checker.set_model_paths``.
            self.forecast_model_paths: frozenset[str] | None = None
            self.thresholds: dict[str, ThresholdRule] = dict(self.config.thresholds)
            self._alarms: dict[str, Side] = {}
            self._alarm_lock = threading.Lock()
            self._system_status: str | None = None
            self._forecast_pool: ThreadPoolExecutor | None = None
            self._forecast_future: Future[None] | None = None
            self.rejected_updates = 0
            self.update_count = 0
            self.is_running = False
            self._initialized = False
            # subclasses that override the collection hooks are polled on every update
            self._pulls_data = (
                type(self)._collect_sensor_data is not DigitalTwin._collect_sensor_data
                or type(self)._collect_system_data is not DigitalTwin._collect_system_data
            )
            self._constructed = True

    @classmethod
    def _reset_instance(cls) -> None:
        """Forget the twin and its state manager (tests only)."""
        with cls._init_lock:
            if cls._instance is not None and cls._instance._constructed:
                cls._instance.close()
            cls._instance = None
            StateManager._reset_instance()

    _reset = _reset_instance

    # -- lifecycle ----------------------------------------------------------------------------
    def initialize(self, initial_state: Mapping[str, Any] | None = None) -> bool:
        """Set the initial state, start the simulation engine, publish the start events."""
        if self._initialized:
            self.logger.warning("Digital twin already initialized")
            return True
        try:
            state = dict(initial_state) if initial_state else self._get_initial_state()
            state["system_status"] = state.get("system_status") or "initializing"
            if state["system_status"] == "initializing":
                state["system_status"] = "running"
            self.state_manager.set_state(state)
            if self.state_manager.get_current_state().get("timestamp") != state["timestamp"]:
                raise InvalidInputError("the initial state was rejected by validation")
            self._system_status = state["system_status"]
            self._init_integrations()
            self._initialized = True
            self.is_running = True
            self.event_publisher.publish_event(
                category=EventCategory.SYSTEM,
                message="Digital twin initialized",
                severity=EventSeverity.INFO,
                details={"name": self.config.name},
            )
            if self.config.publish_state_changes:
                self.event_publisher.publish_state_update(
                    {"system_status": "initializing"}, {"system_status": state["system_status"]}
                )
            self._check_all_thresholds(state)
            return True
        except Exception as err:  # the documented API reports failure as False
            self.logger.error("Error initializing digital twin: %s", err)
            self.event_publisher.publish_error_event(
                error_type="InitializationError", error_message=str(err)
            )
            return False

    @property
    def initialized(self) -> bool:
        return self._initialized

    def _get_initial_state(self) -> dict[str, Any]:
        return default_initial_state(now_iso())

    def _init_integrations(self) -> None:
        """Create the simulation engine and the forecast check (simulation package)."""
        from circman5.manufacturing.digital_twin.simulation.simulation_engine import (
            SimulationEngine,
        )

        self.simulation_engine = SimulationEngine(self.state_manager, constants=self.constants)
        model = self.constants.get_digital_twin_model()
        forecast_config = model.FORECAST_CHECK
        if forecast_config.enabled and self.thresholds:
            from circman5.manufacturing.digital_twin.simulation.forecast import ForecastChecker

            checker = ForecastChecker(
                self.simulation_engine,
                self.thresholds,
                forecast_config,
                self.event_publisher.publish,
                model_paths=self.forecast_model_paths,
                step_s=model.SIMULATION_PARAMETERS.time_step_s,
                wall_clock=time.time,
            )
            # learn from the history the twin already keeps: no blind start after a restart
            # (not from the initial state just set, whose values are defaults, not samples)
            checker.warm_start(self.state_manager.history_snapshots())
            self.forecast_checker = checker

    # -- updates ------------------------------------------------------------------------------
    def update(self, external_data: Mapping[str, Any] | TwinUpdate | None = None) -> bool:
        """Merge ``external_data`` into the state; run threshold and forecast checks.

        ``external_data`` is the spec's nested dict or the synchronization engine's
        :class:`~circman5.twin_update.TwinUpdate`. Returns False (and publishes an error event)
        when the data is invalid; the current state is then left untouched. The caller's dict is
        neither changed nor kept (the state holds copies of what it takes from it).
        """
        if not self._initialized:
            self.logger.warning("Digital twin not initialized")
            return False
        changed: dict[str, Any] = {}
        values: Mapping[str, Any] = changed  # the leaves the update set, by dotted path
        data: Mapping[str, Any]
        if type(external_data) is TwinUpdate and not self._pulls_data:
            data, values = external_data.nested, external_data.flat
        elif self._pulls_data:
            data = {**(external_data or {})}
            data.update(self._collect_sensor_data())
            data.update(self._collect_system_data())
        else:  # the spec's nested dict, merged as it is (the state manager copies what it keeps)
            data = external_data if external_data is not None else {}
        # one walk of the update: the state manager validates and merges it, stamps it (now,
        # when it has no timestamp) and records every leaf it set in ``changed``
        applied = self.state_manager.commit(data, changed)
        if applied is None:
            self.rejected_updates += 1
            self.event_publisher.publish_error_event(
                error_type="InvalidUpdate",
                error_message="state update rejected by validation",
                severity=EventSeverity.WARNING,
            )
            return False
        snapshot, epoch = applied
        self.update_count += 1
        checker = self.forecast_checker
        if self.thresholds:
            self._check_paths(
                values,
                snapshot["timestamp"],
                # learned in the forecast thread
                checker.enqueue
                if checker is not None and checker.statistical is not None
                else None,
                epoch,
            )
        status = values.get("system_status")
        if status is not None and status != self._system_status:
            previous = self._system_status
            self._system_status = status
            if self.config.publish_state_changes:
                self.event_publisher.publish_state_update(
                    {"system_status": previous or "unknown"}, {"system_status": status}
                )
        if checker is not None and checker.take_due():
            self._start_forecast(snapshot)
        return True

    def _start_forecast(self, state: Mapping[str, Any]) -> None:
        """Run a due forecast check on the forecast worker, off the ingestion path."""
        if self._forecast_future is not None and not self._forecast_future.done():
            return  # the previous check is still running: skip this slot
        if self._forecast_pool is None:
            self._forecast_pool = ThreadPoolExecutor(1, thread_name_prefix="twin-forecast")
        self._forecast_future = self._forecast_pool.submit(self._forecast, state)

    def _forecast(self, state: Mapping[str, Any]) -> None:
        checker = self.forecast_checker
        if checker is None:
            return
        try:
            checker.check(state)
        except Exception as err:  # a failed forecast must never disturb the twin
            self.logger.warning("forecast check failed: %s", err)

    def wait_for_forecast(self, timeout: float | None = None) -> None:
        """Block until a running forecast check has finished (tests and shutdown)."""
        if self._forecast_future is not None:
            self._forecast_future.result(timeout)

    def close(self) -> None:
        """Stop the forecast worker; the twin stays usable (a new worker starts on demand)."""
        pool, self._forecast_pool = self._forecast_pool, None
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)

    def _collect_sensor_data(self) -> dict[str, Any]:
        """Hook for pull-style sources; the synchronization engine pushes through update()."""
        return {}

    def _collect_system_data(self) -> dict[str, Any]:
        return {}

    # -- thresholds ---------------------------------------------------------------------------
    def _check_paths(
        self,
        values: Mapping[str, Any],
        timestamp: str,
        observe: Observe | None = None,
        epoch: float = 0.0,
    ) -> None:
        """Check the values of dotted paths (only those an update changed); ``observe`` (the
        forecaster's) gets every monitored value with the update's ``epoch``."""
        thresholds = self.thresholds
        alarms = self._alarms
        for path, value in values.items():
            rule = thresholds.get(path)
            if rule is None:
                continue
            if observe is not None:
                observe(path, epoch, value)  # ignores what is not a number
            if type(value) is not float:
                if isinstance(value, bool) or not isinstance(value, int | float):
                    continue
                value = float(value)
            if path not in alarms:  # no alarm and inside the limits: nothing to do
                high, low = rule.high, rule.low
                if (high is None or value <= high) and (low is None or value >= low):
                    continue
            self._evaluate(rule, value, timestamp)

    def _check_all_thresholds(self, state: Mapping[str, Any]) -> None:
        self._check_paths(flatten(state), str(state.get("timestamp", now_iso())))

    def _evaluate(self, rule: ThresholdRule, value: float, timestamp: str) -> None:
        if math.isnan(value):
            return
        with self._alarm_lock:
            active = self._alarms.get(rule.path)
            breach = rule.breach(value)
            if active is not None:
                if breach is not None and breach[0] != active:
                    self._alarms[rule.path] = breach[0]  # jumped to the other limit
                elif rule.cleared(active, value):
                    del self._alarms[rule.path]
                    breach = None
                    limit = rule.high if active == "high" else rule.low
                    self._publish_cleared(rule, float(limit or 0.0), value, timestamp)
                    return
                else:
                    return
            elif breach is not None:
                self._alarms[rule.path] = breach[0]
            else:
                return
        self._publish_breach(rule, breach[0], breach[1], value, timestamp)

    def _publish_breach(
        self, rule: ThresholdRule, side: Side, limit: float, value: float, timestamp: str
    ) -> None:
        if not self.config.publish_threshold_breaches:
            return
        event = ThresholdEvent(
            parameter=rule.path,
            threshold=limit,
            actual_value=value,
            unit=rule.unit,
            decimals=rule.shown_decimals,
            severity=EventSeverity(rule.severity),
            source="digital_twin",
            details={"parameter_path": rule.path, "limit": side, "state_timestamp": timestamp},
        )
        if side == "low":
            event.message = (
                f"Threshold breach: {rule.path} fell below {rule.format(limit)} "
                f"with value {rule.format(value)}"
            )
        self.event_publisher.publish(event)

    def _publish_cleared(
        self, rule: ThresholdRule, limit: float, value: float, timestamp: str
    ) -> None:
        if not self.config.publish_threshold_breaches:
            return
        self.event_publisher.publish(
            ThresholdClearedEvent(
                parameter=rule.path,
                threshold=limit,
                actual_value=value,
                unit=rule.unit,
                decimals=rule.shown_decimals,
                source="digital_twin",
                details={"parameter_path": rule.path, "state_timestamp": timestamp},
            )
        )

    def set_units(self, units: Mapping[str, str]) -> None:
        """Units of twin paths (from the tag map) for the threshold messages.

        A rule that names its own ``unit`` keeps it; the others take the path's unit here.
        """
        for path, rule in list(self.thresholds.items()):
            unit = units.get(path)
            if unit and not rule.unit:
                self.thresholds[path] = dataclasses.replace(rule, unit=unit)

    @property
    def active_alarms(self) -> dict[str, Side]:
        """Paths currently out of range, with the limit they broke."""
        with self._alarm_lock:
            return dict(self._alarms)

    # -- simulation ---------------------------------------------------------------------------
    def simulate(
        self, steps: int | None = None, parameters: Mapping[str, Any] | None = None
    ) -> list[dict[str, Any]]:
        """Run a what-if simulation from the current state; the live state is not touched.

        Bad input (unknown path, non-numeric value, absurd step count) raises ``ValueError``.
        """
        if not self._initialized or self.simulation_engine is None:
            self.logger.warning("Digital twin not initialized")
            return []
        steps = steps if steps is not None else self.config.simulation_steps
        try:
            results = self.simulation_engine.run_simulation(
                steps=steps,
                initial_state=self.state_manager.get_current_state(),
                parameters=dict(parameters) if parameters else None,
            )
        except ValueError:
            raise
        except Exception as err:
            self.logger.error("Error in simulation: %s", err)
            self.event_publisher.publish_error_event(
                error_type="SimulationError", error_message=str(err)
            )
            return []
        if self.config.publish_simulation_results and results:
            self.event_publisher.publish_simulation_result(
                simulation_id=str(uuid.uuid4()),
                parameters=dict(parameters) if parameters else {},
                results={
                    **_summarize(results),
                    "parameter_set": self.simulation_engine.parameter_set,
                },
                improvement=_improvement(results),
            )
        return results

    # -- state access -------------------------------------------------------------------------
    def get_current_state(self) -> dict[str, Any]:
        return self.state_manager.get_current_state()

    def get_state_history(self, limit: int | None = None) -> list[dict[str, Any]]:
        return self.state_manager.get_history(limit)

    def save_state(self, file_path: str | Path | None = None) -> bool:
        """Export the current state as JSON (atomically); without a path: to the ``states``
        table with ``[database] url``, else the default file under the data dir."""
        return bool(self.state_manager.export_state(file_path))

    def load_state(self, file_path: str | Path | None = None) -> bool:
        """Import a state exported before (without a path: the one ``save_state()`` saved last,
        in the database or the default file); on any failure the current state is kept."""
        ok = bool(self.state_manager.import_state(file_path))
        if ok:
            state = self.state_manager.get_current_state()
            self._system_status = state.get("system_status", self._system_status)
            self._check_all_thresholds(state)
        return ok


def _summarize(results: list[dict[str, Any]]) -> dict[str, Any]:
    """A compact summary of a trajectory for the simulation-result event."""
    final = results[-1]
    line = final.get("production_line", {})
    return {
        "steps": len(results) - 1,
        "final_timestamp": final.get("timestamp"),
        "final_production_line": {k: v for k, v in line.items() if not isinstance(v, dict)},
    }


def _improvement(results: list[dict[str, Any]]) -> float:
    """Relative change of efficiency from the first to the last state, in percent."""
    first = results[0].get("production_line", {}).get("efficiency")
    last = results[-1].get("production_line", {}).get("efficiency")
    if isinstance(first, int | float) and isinstance(last, int | float) and first:
        return (float(last) - float(first)) / float(first) * 100.0
    return 0.0
