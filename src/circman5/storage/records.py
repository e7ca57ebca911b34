"""The twin's tables as both backends read and write them, written once.

Each table's columns, its statements and the mapping of result rows to the records of
:mod:`.contracts` live here, so the SQLite and the PostgreSQL backend cannot drift apart. The
statements use ``?`` placeholders (SQLite's); :func:`for_postgres` gives psycopg's ``%s``
(none of these statements holds a literal ``?`` or ``%``). What the engines really do
differently stays in the backends: how a batch of events goes in, retention, the insertion-order
column (SQLite's ``rowid``, PostgreSQL's ``seq``), locking, NUL characters.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .contracts import EventRow, ScenarioRow, SimulationRow

__all__ = [
    "ACKNOWLEDGE_EVENT",
    "COUNT_EVENTS",
    "DELETE_ALL_EVENTS",
    "DELETE_EVENTS_BEFORE",
    "DELETE_SCENARIO",
    "GET_SCENARIO",
    "GET_SIMULATION",
    "INSERT_SCENARIO",
    "INSERT_SIMULATION",
    "SCENARIO_NAME_TAKEN",
    "SCENARIO_NAME_USED_ELSEWHERE",
    "UPDATE_SCENARIO",
    "event_record",
    "for_postgres",
    "list_scenarios",
    "list_simulations",
    "scenario_update",
    "select_events",
    "simulation_summary",
]

# -- events ------------------------------------------------------------------------------------

_EVENT_COLUMNS = (
    "event_id, timestamp, category, severity, source, message, details, acknowledged, event_type"
)
#: Parameters: acknowledged (True), event id.
ACKNOWLEDGE_EVENT = "UPDATE events SET acknowledged = ? WHERE event_id = ?"
DELETE_ALL_EVENTS = "DELETE FROM events"
DELETE_EVENTS_BEFORE = "DELETE FROM events WHERE ts_epoch < ?"
COUNT_EVENTS = "SELECT COUNT(*) FROM events"


def select_events(category: str | None, severity: str | None) -> tuple[str, list[Any]]:
    """Events newest first, of one category and/or severity: the statement (ending in
    ``LIMIT ?``: the caller appends its engine's "no limit") and the parameters before it."""
    where: list[str] = []
    params: list[Any] = []
    if category is not None:
        where.append("category = ?")
        params.append(category)
    if severity is not None:
        where.append("severity = ?")
        params.append(severity)
    sql = f"SELECT {_EVENT_COLUMNS} FROM events"
    if where:
        sql += " WHERE " + " AND ".join(where)
    return sql + " ORDER BY id DESC LIMIT ?", params


def event_record(row: Sequence[Any]) -> EventRow:
    """A row of :func:`select_events` (``acknowledged``: SQLite's 0/1 or PostgreSQL's bool)."""
    return EventRow(row[0], row[1], row[2], row[3], row[4], row[5], row[6], bool(row[7]), row[8])


# -- scenarios and simulations -----------------------------------------------------------------

_SCENARIO_COLUMNS = "id, name, description, parameters, created_at, updated_at"
_BY_NAME_OR_ID = "WHERE name = ? OR id = ? ORDER BY (name = ?) DESC LIMIT 1"
#: Parameters: the name or id three times (the name wins over an id).
GET_SCENARIO = f"SELECT {_SCENARIO_COLUMNS} FROM scenarios {_BY_NAME_OR_ID}"
DELETE_SCENARIO = f"DELETE FROM scenarios WHERE id = (SELECT id FROM scenarios {_BY_NAME_OR_ID})"
INSERT_SCENARIO = f"INSERT INTO scenarios ({_SCENARIO_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?)"
SCENARIO_NAME_TAKEN = "SELECT 1 FROM scenarios WHERE name = ?"
SCENARIO_NAME_USED_ELSEWHERE = "SELECT 1 FROM scenarios WHERE name = ? AND id <> ?"
#: Parameters: :func:`scenario_update`.
UPDATE_SCENARIO = (
    "UPDATE scenarios SET name = ?, description = ?, parameters = ?, updated_at = ? WHERE id = ?"
)
_SIMULATION_COLUMNS = "id, timestamp, parameters, results, duration, steps"
INSERT_SIMULATION = f"INSERT INTO simulations ({_SIMULATION_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?)"
GET_SIMULATION = f"SELECT {_SIMULATION_COLUMNS} FROM simulations WHERE id = ?"


def list_scenarios(insertion_order: str) -> str:
    """Every scenario, oldest first; ``insertion_order`` breaks ties (``rowid``, ``seq``)."""
    return f"SELECT {_SCENARIO_COLUMNS} FROM scenarios ORDER BY created_at, {insertion_order}"


def list_simulations(insertion_order: str) -> str:
    """The newest runs first, without their results (rows for :func:`simulation_summary`)."""
    return (
        "SELECT id, timestamp, parameters, duration, steps FROM simulations "
        f"ORDER BY timestamp DESC, {insertion_order} DESC LIMIT ?"
    )


def simulation_summary(row: Sequence[Any]) -> SimulationRow:
    return SimulationRow(row[0], row[1], row[2], "", row[3], row[4])


def scenario_update(row: ScenarioRow) -> tuple[str, str, str, str, str]:
    return (row.name, row.description, row.parameters, row.updated_at, row.id)


def for_postgres(sql: str) -> str:
    """The statement with psycopg's placeholders."""
    return sql.replace("?", "%s")
