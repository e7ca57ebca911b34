"""Calibrations in PostgreSQL: one row per version, one row naming the active one.

The same documents as the standalone files (:mod:`.calibration_files`): ``calibrations``
holds each version's JSON text as written; ``calibration_active`` its single row (``one`` is
always TRUE) the active version, with the time it was activated as the change marker the
simulation engines poll (one indexed read per run). Versions are numbered under a
transaction-scoped advisory lock, so two processes saving at once get consecutive numbers.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from .migrations import Migration

if TYPE_CHECKING:
    from .postgres import PostgresDatabase

__all__ = ["CALIBRATION_MIGRATIONS", "PostgresCalibrationStore"]

CALIBRATION_MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        1,
        "calibrations (one JSON document per version) and the active version",
        (
            """CREATE TABLE IF NOT EXISTS calibrations (
                version INTEGER PRIMARY KEY,
                document TEXT NOT NULL,
                created_at TIMESTAMPTZ NOT NULL DEFAULT now()
            )""",
            """CREATE TABLE IF NOT EXISTS calibration_active (
                one BOOLEAN PRIMARY KEY DEFAULT TRUE CHECK (one),
                version INTEGER NOT NULL REFERENCES calibrations (version),
                activated_at TIMESTAMPTZ NOT NULL DEFAULT clock_timestamp()
            )""",
        ),
    ),
)

#: Held (transaction-scoped) while numbering a new version.
_NUMBERING_LOCK = 0x43_4D_35_43_41_4C  # "CM5CAL"
_POINT_AT = (
    "INSERT INTO calibration_active (one, version) VALUES (TRUE, %s) ON CONFLICT (one) "
    "DO UPDATE SET version = excluded.version, activated_at = clock_timestamp()"
)


class PostgresCalibrationStore:
    """The ``calibrations`` tables of a :class:`~.postgres.PostgresDatabase`."""

    def __init__(self, database: PostgresDatabase) -> None:
        self._db = database

    @property
    def location(self) -> str:
        return self._db.location

    def versions(self) -> list[int]:
        with self._db.transaction() as conn:
            rows = conn.execute("SELECT version FROM calibrations ORDER BY version").fetchall()
        return [int(r[0]) for r in rows]

    def document(self, version: int) -> str | None:
        with self._db.transaction() as conn:
            row = conn.execute(
                "SELECT document FROM calibrations WHERE version = %s", (version,)
            ).fetchone()
        return None if row is None else str(row[0])

    def add(self, document_for: Callable[[int], str], activate: bool) -> int:
        with self._db.transaction() as conn:
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (_NUMBERING_LOCK,))
            row = conn.execute("SELECT coalesce(max(version), 0) + 1 FROM calibrations").fetchone()
            version = int(row[0]) if row else 1
            conn.execute(
                "INSERT INTO calibrations (version, document) VALUES (%s, %s)",
                (version, document_for(version)),
            )
            if activate:
                conn.execute(_POINT_AT, (version,))
        return version

    def activate(self, version: int) -> bool:
        with self._db.transaction() as conn:
            found = conn.execute(
                "SELECT 1 FROM calibrations WHERE version = %s", (version,)
            ).fetchone()
            if found is None:
                return False
            conn.execute(_POINT_AT, (version,))
        return True

    def active_version(self) -> int | None:
        with self._db.transaction() as conn:
            row = conn.execute("SELECT version FROM calibration_active").fetchone()
        return None if row is None else int(row[0])

    def active_stamp(self) -> object | None:
        with self._db.transaction() as conn:
            row = conn.execute("SELECT version, activated_at FROM calibration_active").fetchone()
        return None if row is None else (int(row[0]), row[1])

    def where(self, version: int) -> str:
        return f"{self._db.location} calibrations version {version}"
