"""Write-back: setpoint commands from the HMI to the devices, checked, confirmed and audited.

A :class:`SetpointService` knows the writable twin paths and their limits
(:class:`SetpointLimit`: path, min, max, the connector that owns the tag). A command

1. is checked against the limit (unknown path, wrong type, out of range: :class:`SetpointRejected`
   with the reason, nothing written);
2. is written through the owning connector (``await connector.write(path, value)``);
3. is read back to confirm: with ``await connector.read(path)`` when the connector has ``read``,
   otherwise by waiting (up to ``confirm_timeout_s``) for the twin state to show the value;
4. is recorded as a ``UserActionEvent`` (who, which path, old and new value, outcome).

Writes to the same path are serialized; writes to different paths run concurrently.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from numbers import Real
from typing import Any, Literal, Protocol, runtime_checkable

from circman5.errors import (
    ConnectorError,
    InvalidInputError,
    SetpointConfirmTimeout,
    SetpointRejected,
    SetpointUnavailable,
)
from circman5.manufacturing.digital_twin.event_notification.event_types import (
    Event,
    EventSeverity,
    UserActionEvent,
)
from circman5.state_paths import value_at

logger = logging.getLogger(__name__)

__all__ = [
    "ReadableConnector",
    "SetpointConfirmTimeout",
    "SetpointLimit",
    "SetpointRejected",
    "SetpointResult",
    "SetpointService",
    "SetpointUnavailable",
    "WritableConnector",
]

SetpointValue = float | int | bool
Kind = Literal["float", "int", "bool"]


class WritableConnector(Protocol):
    """What the service needs of a connector: an async write of a twin path."""

    async def write(self, path: str, value: SetpointValue) -> None: ...


@runtime_checkable
class ReadableConnector(Protocol):
    async def read(self, path: str) -> object: ...


@dataclass(frozen=True, slots=True)
class SetpointLimit:
    """A writable twin path: its range, the connector owning its tag, how to compare it."""

    path: str
    min: float | None
    max: float | None
    connector: str
    kind: Kind = "float"
    unit: str = ""
    description: str = ""
    tolerance: float = 1e-6

    def __post_init__(self) -> None:
        if not self.path or not self.connector:
            raise InvalidInputError("a setpoint limit needs a path and a connector")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise InvalidInputError(f"setpoint {self.path}: min {self.min} > max {self.max}")

    def check(self, value: object) -> SetpointValue:
        """The value normalised to the setpoint's kind; :class:`SetpointRejected` otherwise."""
        if self.kind == "bool":
            if not isinstance(value, bool):
                raise SetpointRejected(f"{self.path}: expects true or false, got {value!r}")
            return value
        if isinstance(value, bool) or not isinstance(value, Real):
            raise SetpointRejected(f"{self.path}: expects a number, got {value!r}")
        number = float(value)
        if not math.isfinite(number):
            raise SetpointRejected(f"{self.path}: {value!r} is not a finite number")
        if self.kind == "int" and number != int(number):
            raise SetpointRejected(f"{self.path}: expects an integer, got {value!r}")
        if self.min is not None and number < self.min:
            raise SetpointRejected(
                f"{self.path}: {value} is below the minimum {self.min}{_unit(self.unit)}"
            )
        if self.max is not None and number > self.max:
            raise SetpointRejected(
                f"{self.path}: {value} is above the maximum {self.max}{_unit(self.unit)}"
            )
        return int(number) if self.kind == "int" else number

    def matches(self, expected: SetpointValue, actual: object) -> bool:
        if self.kind == "bool":
            return isinstance(actual, bool) and actual is expected
        if isinstance(actual, bool) or not isinstance(actual, Real):
            return False
        return math.isclose(float(actual), float(expected), rel_tol=1e-6, abs_tol=self.tolerance)

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "min": self.min,
            "max": self.max,
            "connector": self.connector,
            "kind": self.kind,
            "unit": self.unit,
            "description": self.description,
        }


def _unit(unit: str) -> str:
    return f" {unit}" if unit else ""


@dataclass(frozen=True, slots=True)
class SetpointResult:
    """The outcome of one write."""

    path: str
    value: SetpointValue
    old_value: Any
    readback: Any
    confirmed: bool
    connector: str
    user: str
    duration_s: float
    confirmed_by: Literal["read", "twin", "none"] = "none"
    event_id: str | None = field(default=None)

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "value": self.value,
            "old_value": self.old_value,
            "readback": self.readback,
            "confirmed": self.confirmed,
            "confirmed_by": self.confirmed_by,
            "connector": self.connector,
            "user": self.user,
            "duration_s": self.duration_s,
            "event_id": self.event_id,
        }


_MISSING = object()


ConnectorSource = Mapping[str, WritableConnector] | Callable[[str], WritableConnector | None]


class SetpointService:
    """Check, write, confirm and audit setpoint commands (see the module docstring).

    ``limits``: the writable paths. ``connectors``: connector by name (a mapping, or a function
    for connectors that come and go). ``state``: returns the twin's current state (for the old
    value and the confirmation without ``read``). ``publish``: where the ``UserActionEvent`` goes
    (the event manager's ``publish``). ``write_timeout_s`` bounds the write itself,
    ``confirm_timeout_s`` the read-back.
    """

    def __init__(
        self,
        limits: Iterable[SetpointLimit],
        connectors: ConnectorSource,
        state: Callable[[], Mapping[str, Any]],
        publish: Callable[[Event], None] | None = None,
        write_timeout_s: float = 5.0,
        confirm_timeout_s: float = 5.0,
        poll_interval_s: float = 0.02,
    ) -> None:
        self._limits: dict[str, SetpointLimit] = {}
        for limit in limits:
            if limit.path in self._limits:
                raise InvalidInputError(f"setpoint {limit.path} is configured twice")
            self._limits[limit.path] = limit
        self._connectors = connectors
        self._state = state
        self._publish = publish
        self.write_timeout_s = write_timeout_s
        self.confirm_timeout_s = confirm_timeout_s
        self.poll_interval_s = poll_interval_s
        self._locks: dict[str, asyncio.Lock] = {}
        self.writes = 0
        self.rejected = 0

    @property
    def limits(self) -> dict[str, SetpointLimit]:
        return dict(self._limits)

    def limit(self, path: str) -> SetpointLimit:
        limit = self._limits.get(path)
        if limit is None:
            known = ", ".join(sorted(self._limits)) or "none configured"
            raise SetpointRejected(f"'{path}' is not a writable setpoint (writable: {known})", 404)
        return limit

    def current_values(self) -> dict[str, Any]:
        state = self._state()
        return {path: value_at(state, path) for path in self._limits}

    def _connector(self, name: str) -> WritableConnector | None:
        source = self._connectors
        if callable(source) and not isinstance(source, Mapping):
            return source(name)
        return source.get(name)

    def check(self, path: str, value: object) -> SetpointValue:
        """Validate a command without writing it."""
        return self.limit(path).check(value)

    async def write(
        self, path: str, value: object, user: str, source: str = "api"
    ) -> SetpointResult:
        """Check, write, confirm and record a setpoint command (see the module docstring).

        ``source``: where the command came from, the audit event's ``source`` (``api``,
        ``sparkplug``).
        """
        try:
            limit = self.limit(path)
            checked = limit.check(value)
        except SetpointRejected as err:
            self.rejected += 1
            self._audit(user, "setpoint_rejected", {"path": path, "value": value}, str(err), source)
            raise
        connector = self._connector(limit.connector)
        if connector is None:
            self._audit(
                user,
                "setpoint_failed",
                {"path": path, "value": checked},
                "connector missing",
                source,
            )
            raise SetpointUnavailable(
                f"{path}: connector '{limit.connector}' is not available; nothing was written"
            )
        lock = self._locks.setdefault(path, asyncio.Lock())
        async with lock:
            return await self._write(limit, connector, checked, user, source)

    async def _write(
        self,
        limit: SetpointLimit,
        connector: WritableConnector,
        value: SetpointValue,
        user: str,
        source: str,
    ) -> SetpointResult:
        started = time.perf_counter()
        old_value = value_at(self._state(), limit.path)
        try:
            async with asyncio.timeout(self.write_timeout_s):
                await connector.write(limit.path, value)
        except (ConnectorError, TimeoutError, OSError) as err:
            reason = "timed out" if isinstance(err, TimeoutError) else str(err)
            self._audit(
                user,
                "setpoint_failed",
                {"path": limit.path, "value": value, "old_value": old_value},
                reason,
                source,
            )
            raise SetpointUnavailable(
                f"{limit.path}: the write through '{limit.connector}' failed: {reason}", 502
            ) from err
        self.writes += 1
        readback, confirmed, how = await self._confirm(limit, connector, value)
        details = {
            "path": limit.path,
            "old_value": old_value,
            "new_value": value,
            "readback": readback,
            "confirmed": confirmed,
            "connector": limit.connector,
        }
        event_id = self._audit(
            user, "write_setpoint", details, None if confirmed else "unconfirmed", source
        )
        result = SetpointResult(
            path=limit.path,
            value=value,
            old_value=old_value,
            readback=readback,
            confirmed=confirmed,
            connector=limit.connector,
            user=user,
            duration_s=time.perf_counter() - started,
            confirmed_by=how,
            event_id=event_id,
        )
        logger.info(
            "setpoint %s = %r by %s (was %r, confirmed=%s)",
            limit.path,
            value,
            user,
            old_value,
            confirmed,
        )
        if not confirmed:
            raise SetpointConfirmTimeout(
                f"{limit.path}: written, but the read-back showed {readback!r} instead of "
                f"{value!r} within {self.confirm_timeout_s} s",
                result,
            )
        return result

    async def _confirm(
        self, limit: SetpointLimit, connector: WritableConnector, value: SetpointValue
    ) -> tuple[Any, bool, Literal["read", "twin", "none"]]:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.confirm_timeout_s
        if isinstance(connector, ReadableConnector):
            readback: Any = None
            while True:
                try:
                    async with asyncio.timeout(max(0.0, deadline - loop.time())):
                        readback = await connector.read(limit.path)
                except (ConnectorError, TimeoutError, OSError) as err:
                    logger.warning("read-back of %s failed: %s", limit.path, err)
                    return readback, False, "read"
                if limit.matches(value, readback):
                    return readback, True, "read"
                if loop.time() >= deadline:
                    return readback, False, "read"
                await asyncio.sleep(self.poll_interval_s)
        seen: Any = None
        while True:
            seen = value_at(self._state(), limit.path)
            if limit.matches(value, seen):
                return seen, True, "twin"
            if loop.time() >= deadline:
                return seen, False, "twin"
            await asyncio.sleep(self.poll_interval_s)

    def _audit(
        self,
        user: str,
        action: str,
        details: dict[str, Any],
        problem: str | None,
        source: str = "api",
    ) -> str | None:
        if self._publish is None:
            return None
        if problem is not None:
            details = {**details, "reason": problem}
        event = UserActionEvent(
            user_id=user,
            action=action,
            action_details=details,
            source=source,
            severity=EventSeverity.INFO if problem is None else EventSeverity.WARNING,
        )
        try:
            self._publish(event)
        except Exception as err:  # auditing must not turn a done write into an error
            logger.error("cannot record the setpoint event: %s", err)
            return None
        return event.event_id
