"""The terminal view of the demo: twin state, alarms and service figures (rich)."""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Mapping
from typing import Any

from rich.console import Group
from rich.panel import Panel
from rich.table import Table

from circman5.manufacturing.digital_twin.event_notification.event_types import (
    Event,
    EventCategory,
    EventSeverity,
)

SEVERITY_STYLE = {
    EventSeverity.INFO: "green",
    EventSeverity.WARNING: "yellow",
    EventSeverity.ERROR: "red",
    EventSeverity.CRITICAL: "bold red",
}


class EventTape:
    """The last few threshold/error events, filled by an event-manager subscription."""

    def __init__(self, size: int = 8) -> None:
        self._events: deque[Event] = deque(maxlen=size)
        self._lock = threading.Lock()
        self.counts: dict[str, int] = {}

    def __call__(self, event: Event) -> None:
        with self._lock:
            key = event.category.value
            self.counts[key] = self.counts.get(key, 0) + 1
            if event.category in (EventCategory.THRESHOLD, EventCategory.ERROR) or (
                event.severity != EventSeverity.INFO
            ):
                self._events.append(event)

    def recent(self) -> list[Event]:
        with self._lock:
            return list(self._events)


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:,.3f}" if abs(value) < 10 else f"{value:,.1f}"
    return str(value)


def state_table(state: Mapping[str, Any], alarms: Mapping[str, str]) -> Table:
    table = Table(title=f"twin state  {state.get('timestamp', '')}", expand=True)
    table.add_column("path")
    table.add_column("value", justify="right")
    table.add_column("alarm")

    def add(prefix: str, branch: Mapping[str, Any]) -> None:
        for key, value in branch.items():
            path = f"{prefix}{key}"
            if isinstance(value, Mapping):
                add(path + ".", value)
            else:
                side = alarms.get(path)
                style = "bold red" if side else ""
                table.add_row(path, _fmt(value), f"[{style}]{side}[/]" if side else "", style=style)

    add("", {k: v for k, v in state.items() if k != "timestamp"})
    return table


def events_table(events: list[Event]) -> Table:
    table = Table(title="recent alarms and errors", expand=True)
    table.add_column("time")
    table.add_column("severity")
    table.add_column("message")
    for event in reversed(events):
        style = SEVERITY_STYLE.get(event.severity, "")
        table.add_row(event.timestamp[11:19], f"[{style}]{event.severity.value}[/]", event.message)
    return table


def figures_table(figures: Mapping[str, Any]) -> Table:
    table = Table(title="service", expand=True)
    table.add_column("figure")
    table.add_column("value", justify="right")
    for name, value in figures.items():
        table.add_row(name, _fmt(value))
    return table


def render(
    state: Mapping[str, Any],
    alarms: Mapping[str, str],
    tape: EventTape,
    figures: Callable[[], Mapping[str, Any]],
    footer: str,
) -> Panel:
    return Panel(
        Group(state_table(state, alarms), figures_table(figures()), events_table(tape.recent())),
        title="CIRCMAN5.0 edge twin",
        subtitle=footer,
    )
