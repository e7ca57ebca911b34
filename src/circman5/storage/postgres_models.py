"""Model metadata in PostgreSQL: a ``models`` row for every manufacturing model saved.

The artifact (a joblib file) stays where :meth:`ManufacturingModel.save_model` wrote it; the
row says where, when, what it predicts from what, how well (cross-validated metrics) and from
which data (provenance), so every process sharing the database can list the models.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .contracts import ModelRow
from .migrations import Migration

if TYPE_CHECKING:
    from .postgres import PostgresDatabase

__all__ = ["MODEL_MIGRATIONS", "PostgresModelRecords"]

MODEL_MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        1,
        "models: metadata of every saved manufacturing model",
        (
            """CREATE TABLE IF NOT EXISTS models (
                id BIGSERIAL PRIMARY KEY,
                saved_at TEXT NOT NULL,
                artifact TEXT NOT NULL,
                features TEXT NOT NULL,
                targets TEXT NOT NULL,
                metrics TEXT NOT NULL,
                source TEXT NOT NULL,
                trained_at TEXT NOT NULL,
                provenance TEXT NOT NULL
            )""",
        ),
    ),
)

_COLUMNS = "saved_at, artifact, features, targets, metrics, source, trained_at, provenance"


class PostgresModelRecords:
    """The ``models`` table of a :class:`~.postgres.PostgresDatabase`."""

    def __init__(self, database: PostgresDatabase) -> None:
        self._db = database

    @property
    def location(self) -> str:
        return self._db.location

    def record(self, row: ModelRow) -> int:
        with self._db.transaction() as conn:
            found = conn.execute(
                f"INSERT INTO models ({_COLUMNS}) VALUES (%s, %s, %s, %s, %s, %s, %s, %s) "
                "RETURNING id",
                tuple(row[1:]),
            ).fetchone()
        assert found is not None  # INSERT ... RETURNING returns the row
        return int(found[0])

    def list_recent(self, limit: int) -> list[ModelRow]:
        with self._db.transaction() as conn:
            rows = conn.execute(
                f"SELECT id, {_COLUMNS} FROM models ORDER BY id DESC LIMIT %s", (limit,)
            ).fetchall()
        return [ModelRow(*r) for r in rows]
