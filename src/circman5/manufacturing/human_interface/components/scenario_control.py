"""ScenarioControl: scenario management from the HMI (technical manual 9.1)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    from circman5.manufacturing.digital_twin.simulation.scenario_manager import ScenarioManager

__all__ = ["MAX_SCENARIO_STEPS", "ScenarioControl"]

MAX_SCENARIO_STEPS = 1000


class ScenarioControl:
    """List, create, run and compare scenarios through the ``ScenarioManager``."""

    command_roles: ClassVar[dict[str, str]] = {
        "list_scenarios": "viewer",
        "create_scenario": "engineer",
        "run_scenario": "engineer",
        "compare_scenarios": "engineer",
    }

    def __init__(self, scenarios: Callable[[], ScenarioManager]) -> None:
        self._scenarios = scenarios

    @staticmethod
    def _steps(params: Mapping[str, Any]) -> int | None:
        steps = params.get("steps")
        if steps is None:
            return None
        if isinstance(steps, bool) or not isinstance(steps, int):
            raise ValueError("steps must be an integer")
        if not 0 <= steps <= MAX_SCENARIO_STEPS:
            raise ValueError(f"steps must be between 0 and {MAX_SCENARIO_STEPS}")
        return int(steps)

    def handle_command(self, command: str, params: dict[str, Any]) -> dict[str, Any]:
        if command not in self.command_roles:
            return {"handled": False}
        manager = self._scenarios()
        if command == "list_scenarios":
            scenarios = [s.to_dict() for s in manager.list_scenarios()]
            return {"handled": True, "success": True, "scenarios": scenarios}
        if command == "create_scenario":
            parameters = params.get("parameters") or {}
            if not isinstance(parameters, Mapping):
                raise ValueError("parameters must be an object of dotted paths")
            scenario = manager.create_scenario(
                str(params.get("name", "")), parameters, str(params.get("description", ""))
            )
            return {"handled": True, "success": True, "scenario": scenario.to_dict()}
        if command == "run_scenario":
            run = manager.run_scenario(str(params.get("name", "")), steps=self._steps(params))
            return {
                "handled": True,
                "success": True,
                "simulation_id": run.simulation_id,
                "kpis": run.kpis,
                "steps": run.steps,
            }
        names = params.get("scenarios")
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise ValueError("scenarios must be a list of scenario names")
        comparison = manager.compare_scenarios(names, steps=self._steps(params))
        return {"handled": True, "success": True, "comparison": comparison.to_dict()}
