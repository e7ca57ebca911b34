"""The supervisor: runs the service's components and restarts the ones that fail.

A component is a name and a coroutine function that runs until cancelled. When it raises, the
failure is logged once, reported (an error event through the injected reporter) and the component
is restarted after an exponential backoff; a component that stayed up for ``stable_after`` seconds
starts again from the shortest backoff. Only the supervisor catches broadly: a failure never ends
the service. Cancellation (shutdown) propagates.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Protocol

logger = logging.getLogger(__name__)


class FailureReporter(Protocol):
    def __call__(self, component: str, error: BaseException, restarts: int) -> None: ...


@dataclass
class ComponentStatus:
    name: str
    running: bool = False
    restarts: int = 0
    last_error: str | None = None
    started_at: float | None = None


@dataclass
class Component:
    name: str
    run: Callable[[], Awaitable[None]]
    status: ComponentStatus = field(init=False)

    def __post_init__(self) -> None:
        self.status = ComponentStatus(self.name)
        self.finished = asyncio.Event()


def _log_failure(component: str, error: BaseException, restarts: int) -> None:
    logger.error("component %s failed (restart %d): %r", component, restarts, error)


class Supervisor:
    """Runs components in one TaskGroup; restarts failures with capped exponential backoff."""

    def __init__(
        self,
        report: FailureReporter = _log_failure,
        initial_backoff: float = 0.5,
        max_backoff: float = 30.0,
        stable_after: float = 60.0,
    ) -> None:
        self._components: list[Component] = []
        self._stopping = False
        self._report = report
        self.initial_backoff = initial_backoff
        self.max_backoff = max_backoff
        self.stable_after = stable_after

    def add(self, name: str, run: Callable[[], Awaitable[None]]) -> Component:
        component = Component(name, run)
        self._components.append(component)
        return component

    @property
    def statuses(self) -> list[ComponentStatus]:
        return [c.status for c in self._components]

    def component(self, name: str) -> Component:
        return next(c for c in self._components if c.name == name)

    def request_stop(self) -> None:
        """Shutdown has begun: a component that returns now is done, not restarted."""
        self._stopping = True

    async def run(self) -> None:
        """Run every component until cancelled."""
        async with asyncio.TaskGroup() as group:
            for component in self._components:
                group.create_task(self._keep_running(component), name=component.name)

    async def _keep_running(self, component: Component) -> None:
        try:
            await self._restart_loop(component)
        finally:
            component.status.running = False
            component.finished.set()

    async def _restart_loop(self, component: Component) -> None:
        status = component.status
        backoff = self.initial_backoff
        while True:
            status.running = True
            status.started_at = time.monotonic()
            try:
                await component.run()
            except asyncio.CancelledError:
                status.running = False
                raise
            except Exception as err:  # the supervisor is the one place that catches broadly
                error: BaseException = err
            else:
                if self._stopping:
                    return
                error = RuntimeError(f"component {component.name} returned unexpectedly")
            status.running = False
            if time.monotonic() - status.started_at >= self.stable_after:
                backoff = self.initial_backoff
            status.restarts += 1
            status.last_error = repr(error)
            try:
                self._report(component.name, error, status.restarts)
            except Exception:
                logger.exception("failure reporter raised for %s", component.name)
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, self.max_backoff)
