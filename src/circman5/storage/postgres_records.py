"""The ``scenarios``, ``simulations`` and ``users`` tables in PostgreSQL (see
:mod:`circman5.storage.postgres` for the database)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import psycopg.errors

from circman5.errors import StorageError

from . import records
from .contracts import ScenarioRow, SimulationRow, UserRow, WriteOutcome
from .postgres_events import clean_text

if TYPE_CHECKING:
    from .postgres import PostgresDatabase

__all__ = ["PostgresScenarioStore", "PostgresUserRecords"]

# -- scenarios and simulations -----------------------------------------------------------------

_pg = records.for_postgres
_GET_SCENARIO = _pg(records.GET_SCENARIO)
_DELETE_SCENARIO = _pg(records.DELETE_SCENARIO)
_INSERT_SCENARIO = _pg(records.INSERT_SCENARIO)
_NAME_TAKEN = _pg(records.SCENARIO_NAME_TAKEN)
_NAME_USED_ELSEWHERE = _pg(records.SCENARIO_NAME_USED_ELSEWHERE)
_UPDATE_SCENARIO = _pg(records.UPDATE_SCENARIO)
_LIST_SCENARIOS = records.list_scenarios("seq")
_INSERT_SIMULATION = _pg(records.INSERT_SIMULATION)
_LIST_SIMULATIONS = _pg(records.list_simulations("seq"))
_GET_SIMULATION = _pg(records.GET_SIMULATION)


class PostgresScenarioStore:
    """The ``scenarios`` and ``simulations`` tables of a :class:`PostgresDatabase`.

    Creating a scenario locks the table against other creators for the transaction, so the
    ``max_scenarios`` check holds with several API processes."""

    def __init__(self, database: PostgresDatabase) -> None:
        self._db = database

    @property
    def location(self) -> str:
        return self._db.location

    def create(self, row: ScenarioRow, max_scenarios: int) -> WriteOutcome:
        with self._db.transaction() as conn:
            conn.execute("LOCK TABLE scenarios IN SHARE ROW EXCLUSIVE MODE")
            count = conn.execute("SELECT COUNT(*) FROM scenarios").fetchone()
            if count is not None and count[0] >= max_scenarios:
                return "limit"
            if conn.execute(_NAME_TAKEN, (row.name,)).fetchone():
                return "duplicate"
            conn.execute(_INSERT_SCENARIO, tuple(row))
        return "ok"

    def list_all(self) -> list[ScenarioRow]:
        with self._db.transaction() as conn:
            rows = conn.execute(_LIST_SCENARIOS).fetchall()
        return [ScenarioRow(*r) for r in rows]

    def get(self, name_or_id: str) -> ScenarioRow | None:
        key = clean_text(name_or_id)
        with self._db.transaction() as conn:
            row = conn.execute(_GET_SCENARIO, (key,) * 3).fetchone()
        return ScenarioRow(*row) if row else None

    def update(self, row: ScenarioRow) -> WriteOutcome:
        try:
            with self._db.transaction() as conn:
                if conn.execute(_NAME_USED_ELSEWHERE, (row.name, row.id)).fetchone():
                    return "duplicate"
                cursor = conn.execute(_UPDATE_SCENARIO, records.scenario_update(row))
                return "ok" if cursor.rowcount == 1 else "missing"
        except StorageError as err:
            if isinstance(err.__cause__, psycopg.errors.UniqueViolation):
                return "duplicate"  # renamed concurrently by another process
            raise

    def delete(self, name_or_id: str) -> bool:
        key = clean_text(name_or_id)
        with self._db.transaction() as conn:
            cursor = conn.execute(_DELETE_SCENARIO, (key,) * 3)
            return cursor.rowcount > 0

    def save_simulation(self, row: SimulationRow) -> None:
        with self._db.transaction() as conn:
            conn.execute(_INSERT_SIMULATION, tuple(row))

    def list_simulations(self, limit: int) -> list[SimulationRow]:
        with self._db.transaction() as conn:
            rows = conn.execute(_LIST_SIMULATIONS, (limit,)).fetchall()
        return [records.simulation_summary(r) for r in rows]

    def get_simulation(self, simulation_id: str) -> SimulationRow | None:
        with self._db.transaction() as conn:
            row = conn.execute(_GET_SIMULATION, (clean_text(simulation_id),)).fetchone()
        return SimulationRow(*row) if row else None

    def close(self) -> None:
        """The pool belongs to the :class:`PostgresDatabase`."""


# -- users -------------------------------------------------------------------------------------

_USER_COLUMNS = "username, role, password_hash, created_at, updated_at, sites"


class PostgresUserRecords:
    """The ``users`` table of a :class:`PostgresDatabase`: every API instance sees the same
    users, and a change is one row (two instances adding different users both succeed)."""

    def __init__(self, database: PostgresDatabase) -> None:
        self._db = database

    @property
    def location(self) -> str:
        return self._db.location

    def list_all(self) -> list[UserRow]:
        with self._db.transaction() as conn:
            rows = conn.execute(f"SELECT {_USER_COLUMNS} FROM users ORDER BY username").fetchall()
        return [UserRow(*r) for r in rows]

    def get(self, username: str) -> UserRow | None:
        with self._db.transaction() as conn:
            row = conn.execute(
                f"SELECT {_USER_COLUMNS} FROM users WHERE username = %s", (clean_text(username),)
            ).fetchone()
        return UserRow(*row) if row else None

    def insert(self, row: UserRow) -> WriteOutcome:
        with self._db.transaction() as conn:
            cursor = conn.execute(
                f"INSERT INTO users ({_USER_COLUMNS}) VALUES (%s, %s, %s, %s, %s, %s) "
                "ON CONFLICT (username) DO NOTHING",
                tuple(row),
            )
            return "ok" if cursor.rowcount == 1 else "duplicate"

    def update(self, row: UserRow) -> WriteOutcome:
        with self._db.transaction() as conn:
            cursor = conn.execute(
                "UPDATE users SET role = %s, password_hash = %s, updated_at = %s, sites = %s "
                "WHERE username = %s",
                (row.role, row.password_hash, row.updated_at, row.sites, row.username),
            )
            return "ok" if cursor.rowcount == 1 else "missing"

    def delete(self, username: str) -> bool:
        with self._db.transaction() as conn:
            cursor = conn.execute("DELETE FROM users WHERE username = %s", (clean_text(username),))
            return cursor.rowcount > 0
