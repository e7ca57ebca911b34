"""Versioned schemas: numbered steps per component, applied at open, never run backwards.

Each backend keeps, per component (``events``, ``scenarios``, ...), a list of
:class:`Migration` numbered 1, 2, 3, ... and a ``schema_version`` table with the version each
component's tables are at. Opening a store applies the steps above that version in one
transaction; a database at a *higher* version than the code knows (migrated by a newer release)
is refused with :class:`~circman5.errors.SchemaVersionError` naming both versions.

A release that changes a table appends a step; steps already released are never edited.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from circman5.errors import SchemaVersionError

__all__ = ["Migration", "pending"]


@dataclass(frozen=True)
class Migration:
    """One schema step: its version number, what it does, and its SQL statements."""

    version: int
    description: str
    statements: tuple[str, ...]


def _check_numbering(component: str, migrations: Sequence[Migration]) -> None:
    expected = list(range(1, len(migrations) + 1))
    if [m.version for m in migrations] != expected:
        raise ValueError(f"{component} migrations must be numbered 1..{len(migrations)}")


def pending(
    location: str, component: str, migrations: Sequence[Migration], current: int
) -> list[Migration]:
    """The steps to apply to a component at version ``current`` (0: no tables yet).

    Raises :class:`SchemaVersionError` when ``current`` is newer than the last step."""
    _check_numbering(component, migrations)
    known = len(migrations)
    if current > known:
        raise SchemaVersionError(location, component, current, known)
    return list(migrations[current:])
