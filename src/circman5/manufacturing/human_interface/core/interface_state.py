"""InterfaceState: the HMI's global view state (technical manual 9.1), thread-safe."""

from __future__ import annotations

import threading
from typing import Any

from circman5.json_types import JsonValue

__all__ = ["VIEWS", "InterfaceState"]

#: The views of the web HMI.
VIEWS: tuple[str, ...] = ("main", "alerts", "control", "scenarios", "lca", "users", "diagnostics")


class InterfaceState:
    """Which view is active, which parameters are selected and which alert filter is set."""

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._active_view = "main"
        self._selected_parameters: list[str] = [
            "production_line.temperature",
            "production_line.energy_consumption",
            "production_line.production_rate",
            "production_line.efficiency",
        ]
        self._alert_filters: dict[str, Any] = {"severity": None, "acknowledged": False}

    @property
    def active_view(self) -> str:
        return self._active_view

    def set_active_view(self, view_name: str) -> None:
        if view_name not in VIEWS:
            raise ValueError(f"unknown view {view_name!r}; views: {', '.join(VIEWS)}")
        with self._lock:
            self._active_view = view_name

    @property
    def selected_parameters(self) -> list[str]:
        with self._lock:
            return list(self._selected_parameters)

    def set_selected_parameters(self, parameters: list[str]) -> None:
        if not all(isinstance(p, str) and p for p in parameters):
            raise ValueError("selected parameters are non-empty dotted paths")
        with self._lock:
            self._selected_parameters = list(dict.fromkeys(parameters))

    @property
    def alert_filters(self) -> dict[str, Any]:
        with self._lock:
            return dict(self._alert_filters)

    def set_alert_filters(self, **filters: JsonValue) -> None:
        with self._lock:
            self._alert_filters.update(filters)

    def to_dict(self) -> dict[str, Any]:
        with self._lock:
            return {
                "active_view": self._active_view,
                "selected_parameters": list(self._selected_parameters),
                "alert_filters": dict(self._alert_filters),
            }
