"""System diagnostics (technical manual 14.1).

``run_system_diagnostics()`` checks the digital twin, the event system, the state manager, the
simulation engine and the interface manager, plus any ``extra_checks`` the caller adds (the API
adds the connectors, the user store and the live-push broadcaster). Each entry is
``{"status": "ok" | "warning" | "error", "details": ...}``; a check that raises reports
``"error"`` with the reason instead of failing the whole run.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from circman5.manufacturing.digital_twin.core.twin_core import DigitalTwin
    from circman5.manufacturing.digital_twin.event_notification.event_manager import (
        EventManager,
    )
    from circman5.manufacturing.human_interface.core.interface_manager import InterfaceManager

logger = logging.getLogger(__name__)

__all__ = ["CheckResult", "overall_status", "run_system_diagnostics"]

CheckResult = dict[str, Any]
Check = Callable[[], CheckResult]


def _status(flags: Mapping[str, bool]) -> str:
    return "ok" if all(flags.values()) else "error"


def _check_twin(twin: DigitalTwin) -> CheckResult:
    details = {
        "initialized": bool(twin.initialized),
        "running": bool(twin.is_running),
        "state": bool(twin.get_current_state()),
    }
    result: CheckResult = {"status": _status(details), "details": details}
    details_extra: dict[str, Any] = {
        "updates": twin.update_count,
        "rejected_updates": twin.rejected_updates,
        "active_alarms": len(twin.active_alarms),
        "thresholds": len(twin.thresholds),
    }
    result["details"] = {**details, **details_extra}
    return result


def _check_state_manager(twin: DigitalTwin) -> CheckResult:
    manager = twin.state_manager
    history = len(manager.history_snapshots())
    details = {
        "has_state": bool(manager.snapshot()),
        "history_length": manager.history_length,
        "history_size": history,
        "validation_level": manager.validation_level,
    }
    return {"status": "ok" if details["has_state"] else "error", "details": details}


def _check_events(events: EventManager) -> CheckResult:
    recent = events.get_events(limit=1)
    details = {
        "initialized": bool(getattr(events, "_initialized", False)),
        "events_accessible": recent is not None,
    }
    extra = {"handler_errors": events.handler_errors, "persistence": events.persistence_enabled}
    return {"status": _status(details), "details": {**details, **extra}}


def _check_simulation(twin: DigitalTwin) -> CheckResult:
    engine = twin.simulation_engine
    if engine is None:
        return {"status": "error", "details": "the simulation engine is not running"}
    states = engine.run_simulation(steps=1, initial_state=twin.get_current_state(), seed=0)
    details = {"model": type(engine.model).__name__, "one_step": len(states) == 2}
    return {"status": "ok" if details["one_step"] else "error", "details": details}


def _check_interface(manager: InterfaceManager) -> CheckResult:
    details = {
        "components": sorted(manager.components),
        "commands": len(manager.command_roles),
        "active_view": manager.state.active_view,
    }
    return {"status": "ok", "details": details}


def _run(name: str, check: Check) -> CheckResult:
    try:
        result = check()
    except Exception as err:  # a diagnostic reports a failing component, it does not fail
        logger.warning("diagnostic check %s failed: %s", name, err)
        return {"status": "error", "details": f"{type(err).__name__}: {err}"}
    if not isinstance(result, Mapping) or result.get("status") not in ("ok", "warning", "error"):
        return {"status": "error", "details": f"check returned {result!r}"}
    return dict(result)


def run_system_diagnostics(
    twin: DigitalTwin | None = None,
    events: EventManager | None = None,
    interface: InterfaceManager | None = None,
    extra_checks: Mapping[str, Check] | None = None,
) -> dict[str, CheckResult]:
    """Run comprehensive system diagnostics (every component, see the module docstring).

    Without arguments it checks the ``DigitalTwin`` singleton, the ``event_manager`` and the
    ``interface_manager``, as in the technical manual.
    """

    def the_twin() -> DigitalTwin:
        if twin is not None:
            return twin
        from circman5.manufacturing.digital_twin.core.twin_core import DigitalTwin

        return DigitalTwin()

    def the_events() -> EventManager:
        if events is not None:
            return events
        from circman5.manufacturing.digital_twin.event_notification.event_manager import (
            event_manager,
        )

        return event_manager

    def the_interface() -> InterfaceManager:
        if interface is not None:
            return interface
        from circman5.manufacturing.human_interface.core.interface_manager import (
            interface_manager,
        )

        return interface_manager

    checks: dict[str, Check] = {
        "digital_twin": lambda: _check_twin(the_twin()),
        "event_system": lambda: _check_events(the_events()),
        "state_manager": lambda: _check_state_manager(the_twin()),
        "simulation_engine": lambda: _check_simulation(the_twin()),
        "interface_manager": lambda: _check_interface(the_interface()),
    }
    checks.update(extra_checks or {})
    return {name: _run(name, check) for name, check in checks.items()}


def overall_status(results: Mapping[str, CheckResult]) -> Literal["ok", "warning", "error"]:
    """``error`` if any check failed, else ``warning`` if any warned, else ``ok``."""
    statuses = {r.get("status") for r in results.values()}
    if "error" in statuses:
        return "error"
    return "warning" if "warning" in statuses else "ok"
