"""The twin as a Sparkplug B edge node: twin updates out, host commands through the setpoints.

The glue between the twin and :class:`~circman5.connectors.sparkplug.edge_node.SparkplugEdgeNode`
(which knows no twin): every accepted twin update (the synchronization engine's update listener,
once per tick) hands its leaves by dotted path (``TwinUpdate.leaves()``) to the node, which
publishes what changed as one ``NDATA`` (per device: ``DDATA``); its births start from the whole
twin state.

A host's ``NCMD``/``DCMD`` write of a metric is a setpoint command: only for the paths in the
output's ``writable`` list, and then through the same
:class:`~circman5.api.setpoints.SetpointService` as the API (limits, write through the owning
connector, confirmation by read-back, a ``UserActionEvent`` with ``source = "sparkplug"``).
A refused command is logged and recorded as a ``UserActionEvent`` (``setpoint_rejected``),
never an error of the output. Each write runs as a task of the output's TaskGroup; leaving the
output publishes ``NDEATH`` first, then waits for the writes under way.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Mapping
from typing import Any

from circman5.api.setpoints import SetpointService
from circman5.connectors.sparkplug.edge_config import SparkplugEdgeSettings
from circman5.connectors.sparkplug.edge_node import Command, SparkplugEdgeNode
from circman5.errors import CommandRejected
from circman5.manufacturing.digital_twin.event_notification.event_types import (
    Event,
    EventSeverity,
    UserActionEvent,
)
from circman5.paths import data_path
from circman5.reporting import ProblemReporter
from circman5.state_paths import flatten
from circman5.twin_update import TwinUpdate

logger = logging.getLogger(__name__)

__all__ = ["SOURCE", "SparkplugOutput"]

SOURCE = "sparkplug"
MAX_PENDING_WRITES = 64
"""More writes under way than this (a host flooding commands) and further ones are refused."""


class SparkplugOutput:
    """``async with SparkplugOutput(...) as output:`` then ``output.on_update`` per twin update."""

    def __init__(
        self,
        settings: SparkplugEdgeSettings,
        state: Callable[[], Mapping[str, Any]],
        *,
        setpoints: SetpointService | None = None,
        units: Mapping[str, str] | None = None,
        publish_event: Callable[[Event], None] | None = None,
        reporter: ProblemReporter | None = None,
    ) -> None:
        self.settings = settings
        self._state = state
        self._setpoints = setpoints
        self._publish_event = publish_event
        self._writable = frozenset(settings.writable)
        self._user = f"{SOURCE}:{settings.group_id}/{settings.edge_node_id}"
        bd_seq_file = data_path("sparkplug", f"{settings.group_id}-{settings.edge_node_id}.bdseq")
        self.node = SparkplugEdgeNode(
            settings,
            units=units,
            on_command=self._on_command,
            reporter=reporter,
            bd_seq_file=bd_seq_file,
        )
        self._stack = contextlib.AsyncExitStack()
        self._tasks: asyncio.TaskGroup | None = None
        self.commands_written = 0
        self.commands_refused = 0
        self._pending = 0

    async def __aenter__(self) -> SparkplugOutput:
        async with contextlib.AsyncExitStack() as stack:
            self._tasks = await stack.enter_async_context(asyncio.TaskGroup())
            self.node.update(flatten(self._state()))  # the first birth carries the whole twin
            await stack.enter_async_context(self.node)
            self._stack = stack.pop_all()
        return self

    async def __aexit__(self, *exc: object) -> None:
        try:
            await self._stack.aclose()  # NDEATH first, then the writes under way finish
        finally:
            self._tasks = None

    @property
    def connected(self) -> bool:
        return self.node.connected.is_set()

    def on_update(self, update: TwinUpdate) -> None:
        """The engine's update listener: the paths this tick changed."""
        self.node.update(update.leaves())

    # -- commands ------------------------------------------------------------------------------

    def _on_command(self, command: Command) -> None:
        if command.name not in self._writable:
            self._refuse(command, "not writable from Sparkplug")
            return
        if self._setpoints is None or self._tasks is None:
            self._refuse(command, "no setpoint service")
            return
        if self._pending >= MAX_PENDING_WRITES:
            self._refuse(command, f"{MAX_PENDING_WRITES} writes are already under way")
            return
        self._pending += 1
        self._tasks.create_task(self._write(command), name=f"sparkplug write {command.name}")

    async def _write(self, command: Command) -> None:
        assert self._setpoints is not None
        try:
            await self._setpoints.write(command.name, command.value, self._user, source=SOURCE)
        except CommandRejected as err:  # audited by the setpoint service
            self.commands_refused += 1
            logger.warning("Sparkplug write of %s refused: %s", command.name, err)
            return
        except Exception:  # a write must never end the output
            self.commands_refused += 1
            logger.exception("Sparkplug write of %s failed", command.name)
            return
        finally:
            self._pending -= 1
        self.commands_written += 1

    def _refuse(self, command: Command, reason: str) -> None:
        self.commands_refused += 1
        logger.warning(
            "Sparkplug write of %s = %r refused: %s", command.name, command.value, reason
        )
        if self._publish_event is None:
            return
        event = UserActionEvent(
            user_id=self._user,
            action="setpoint_rejected",
            action_details={
                "path": command.name,
                "value": command.value,
                "reason": reason,
                "metric": command.metric,
                "device": command.device,
            },
            source=SOURCE,
            severity=EventSeverity.WARNING,
        )
        try:
            self._publish_event(event)
        except Exception as err:  # recording must not end the output
            logger.error("cannot record the refused Sparkplug write: %s", err)
