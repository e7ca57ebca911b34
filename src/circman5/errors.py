"""The one exception hierarchy of circman5.

Library exceptions are converted at the connector/sink boundary with ``raise ... from err``.
Where the spec documents ``ValueError`` for bad input, the error also derives from it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # for mypy only: every class here at run time is an exception
    from typing import Protocol

    class _ReportsAsDict(Protocol):
        def to_dict(self) -> dict[str, Any]: ...


class Circman5Error(Exception):
    """Base of every error raised by circman5."""


class ConfigError(Circman5Error):
    """Invalid configuration: names the file, the key and the reason."""

    def __init__(self, file: str, key: str, reason: str) -> None:
        self.file = file
        self.key = key
        self.reason = reason
        super().__init__(f"{file}: {key}: {reason}")


class InvalidInputError(Circman5Error, ValueError):
    """A caller passed a value the twin cannot use (unknown path, non-numeric value, ...)."""


class StateValidationError(InvalidInputError):
    """A twin state failed validation."""


class ConnectorError(Circman5Error):
    """A device or broker could not be reached or answered with an error."""


class DeviceUnavailable(ConnectorError):
    """The device is not connected (timeout, refused, closed session)."""


class SessionLost(DeviceUnavailable):
    """The connection or session to a device ended (watchdog, status change, closed socket);
    the connector marks its tags stale and reconnects."""


class SessionRefused(DeviceUnavailable):
    """The device (or our own configuration) refused the session for a reason the operator can
    fix; ``kind`` names the reason's kind (e.g. the constants of
    :mod:`circman5.connectors.opcua.refusals`), ``reason`` says it in words (also ``str()``)."""

    def __init__(self, kind: str, reason: str) -> None:
        super().__init__(reason)
        self.kind = kind
        self.reason = reason


class TagWriteError(ConnectorError):
    """A write to a device tag failed or was refused."""


class MalformedPayload(Circman5Error):
    """One MQTT message cannot be decoded for one tag (counted and reported, never raised out
    of the connector)."""


class MetricRejected(Circman5Error):
    """One Sparkplug B metric's value cannot be used for its tag (counted and reported, never
    raised out of the connector)."""


class SinkError(Circman5Error):
    """A sink could not store a batch."""


class SinkUnavailable(SinkError):
    """Transient: the server is down, overloaded or timed out. Retry later.

    ``retry_after`` is the server's requested wait in seconds (``Retry-After``), if any.
    ``overloaded``: the server is there but cannot keep up (it answered 429/503/5xx or timed
    out): retry with backoff. Otherwise it is absent (connection refused, not connected): probe
    it at a short interval, so delivery resumes within seconds of its return.
    """

    def __init__(
        self, message: str, retry_after: float | None = None, *, overloaded: bool = False
    ) -> None:
        super().__init__(message)
        self.retry_after = retry_after
        self.overloaded = overloaded


class FluxNotSupported(SinkError):
    """The server accepts the v2 write API but has no Flux query endpoint (VictoriaMetrics)."""


class SinkRejected(SinkError):
    """Permanent: the server refused this batch (4xx other than 429). Quarantine it."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class TooFewPoints(Circman5Error):
    """A calibration window holds fewer than three usable points of a path (``count``)."""

    def __init__(self, count: int) -> None:
        super().__init__(f"{count} points in the window")
        self.count = count


class AuthError(Circman5Error):
    """Authentication or authorization failed."""


class CommandRejected(Circman5Error):
    """A setpoint command violates its limits or the user's role."""


class SingletonConflict(Circman5Error):
    """A documented singleton was constructed again with other arguments than the first time.

    ``Cls()`` returns the one instance; passing different dependencies to a second call would be
    silently ignored, so it is refused instead (``Cls._reset_instance()`` in tests).
    """


# -- the API and HMI ---------------------------------------------------------------------------


class UserStoreError(InvalidInputError):
    """A user operation was refused (unknown user, taken name, weak password, ...)."""


class UserFileError(Circman5Error):
    """The user file cannot be read (damaged or unreadable): nobody can log in until fixed."""


class RateLimited(AuthError):
    """Too many failed logins; retry after ``retry_after`` seconds."""

    def __init__(self, retry_after: float) -> None:
        super().__init__("too many failed login attempts; try again later")
        self.retry_after = retry_after


class SetpointRejected(CommandRejected, InvalidInputError):
    """The command breaks the setpoint's limits (or names no setpoint): nothing was written."""

    def __init__(self, message: str, status: int = 422) -> None:
        super().__init__(message)
        self.status = status


class SetpointUnavailable(CommandRejected):
    """The owning connector is missing, down or refused the write."""

    def __init__(self, message: str, status: int = 503) -> None:
        super().__init__(message)
        self.status = status


class SetpointConfirmTimeout(CommandRejected):
    """The write was sent but the read-back did not confirm it in time (``result``: the
    :class:`circman5.api.setpoints.SetpointResult` so far)."""

    def __init__(self, message: str, result: _ReportsAsDict) -> None:
        super().__init__(message)
        self.status = 504
        self.result = result


class FeatureUnavailable(Circman5Error, RuntimeError):
    """An optional part of the service (AI, LCA, setpoints) is not available."""


# -- the twin's database -------------------------------------------------------------------------


class StorageError(SinkError):
    """The twin's database (SQLite file or PostgreSQL) could not be read or written."""


class ScenarioLimitError(InvalidInputError):
    """Creating a scenario would exceed ``max_scenarios``."""


class ScenarioNotFoundError(InvalidInputError, LookupError):
    """No scenario (or simulation) with that name (or id)."""


class ScenarioStoreError(StorageError):
    """The scenario database could not be read or written."""


class SchemaVersionError(StorageError):
    """The database's schema is newer than this version of circman5 knows.

    Raised at start, before anything is written: an older release must not run against a schema
    a newer release migrated (it could misread or damage the data)."""

    def __init__(self, location: str, component: str, found: int, known: int) -> None:
        super().__init__(
            f"{location}: the '{component}' schema is at version {found}, newer than the "
            f"version {known} this circman5 knows; upgrade circman5 (or point it at another "
            "database)"
        )
        self.location = location
        self.component = component
        self.found = found
        self.known = known
