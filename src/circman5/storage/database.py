"""Open the backend that ``[database]`` names (the composition root's one call).

The only module that imports the PostgreSQL driver on behalf of the service and the API; the
twin core receives the stores it returns.
"""

from __future__ import annotations

from typing import Protocol

from .config import DatabaseSettings
from .contracts import (
    CalibrationStore,
    EventStore,
    ModelRecords,
    ScenarioStore,
    StateStore,
    UserRecords,
)

__all__ = ["TwinDatabase", "open_database"]


class TwinDatabase(Protocol):
    """A shared database: its stores, where it is, and how to close it."""

    @property
    def events(self) -> EventStore: ...

    @property
    def scenarios(self) -> ScenarioStore: ...

    @property
    def users(self) -> UserRecords: ...

    @property
    def calibrations(self) -> CalibrationStore: ...

    @property
    def states(self) -> StateStore: ...

    @property
    def models(self) -> ModelRecords: ...

    @property
    def location(self) -> str: ...

    def close(self) -> None: ...


def open_database(settings: DatabaseSettings) -> TwinDatabase | None:
    """The PostgreSQL database of ``settings.url``, connected and migrated; None for the
    default SQLite files (the twin's classes open those themselves, under the data directory).

    Raises :class:`~circman5.errors.StorageError` when PostgreSQL cannot be reached and
    :class:`~circman5.errors.SchemaVersionError` for a schema newer than this release."""
    if settings.url is None:
        return None
    from .postgres import PostgresDatabase

    return PostgresDatabase(
        settings.url,
        settings.password.get_secret_value() if settings.password is not None else None,
        min_connections=settings.min_connections,
        max_connections=settings.max_connections,
        connect_timeout=settings.connect_timeout_s,
    )
