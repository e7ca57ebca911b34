"""The spec's ``states`` table in PostgreSQL: twin states saved by ``save_state()``.

Each save is a row (id, the state's timestamp, its JSON text, the batch it was saved in, the
format version), so the database keeps every saved state where the standalone file keeps the
last one.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .contracts import StateRow
from .migrations import Migration

if TYPE_CHECKING:
    from .postgres import PostgresDatabase

__all__ = ["STATE_MIGRATIONS", "PostgresStateStore"]

STATE_MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        1,
        "states table (technical manual 11.2)",
        (
            """CREATE TABLE IF NOT EXISTS states (
                id BIGSERIAL PRIMARY KEY,
                timestamp TEXT NOT NULL,
                state_data TEXT NOT NULL,
                batch_id TEXT,
                version INTEGER NOT NULL,
                saved_at TIMESTAMPTZ NOT NULL DEFAULT now()
            )""",
        ),
    ),
)

_COLUMNS = "id, timestamp, state_data, batch_id, version"


class PostgresStateStore:
    """The ``states`` table of a :class:`~.postgres.PostgresDatabase`."""

    def __init__(self, database: PostgresDatabase) -> None:
        self._db = database

    @property
    def location(self) -> str:
        return self._db.location

    def save(self, timestamp: str, state_data: str, batch_id: str | None, version: int) -> int:
        with self._db.transaction() as conn:
            row = conn.execute(
                "INSERT INTO states (timestamp, state_data, batch_id, version) "
                "VALUES (%s, %s, %s, %s) RETURNING id",
                (timestamp, state_data, batch_id, version),
            ).fetchone()
        assert row is not None  # INSERT ... RETURNING returns the row
        return int(row[0])

    def latest(self) -> StateRow | None:
        with self._db.transaction() as conn:
            row = conn.execute(f"SELECT {_COLUMNS} FROM states ORDER BY id DESC LIMIT 1").fetchone()
        return None if row is None else StateRow(*row)

    def get(self, state_id: int) -> StateRow | None:
        with self._db.transaction() as conn:
            row = conn.execute(
                f"SELECT {_COLUMNS} FROM states WHERE id = %s", (state_id,)
            ).fetchone()
        return None if row is None else StateRow(*row)

    def count(self) -> int:
        with self._db.transaction() as conn:
            row = conn.execute("SELECT count(*) FROM states").fetchone()
        return int(row[0]) if row else 0
