"""The ``events`` table in PostgreSQL (see :mod:`circman5.storage.postgres` for the database).

A batch goes in as ONE statement: the JSON array of rows the twin serialized, taken apart by
PostgreSQL (no Python per row). Batches PostgreSQL refuses that way (an id twice in the batch,
NUL characters, lone surrogates) take a careful path: decoded in Python, the last of a repeated
id kept, NUL and lone surrogates stored as U+FFFD, then one ``INSERT ... SELECT FROM unnest``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import orjson
import psycopg
import psycopg.errors

from circman5.errors import StorageError

from .contracts import EventRow

if TYPE_CHECKING:
    from .postgres import PostgresDatabase

__all__ = ["PostgresEventStore", "clean_text"]

_UPSERT = """
ON CONFLICT (event_id) DO UPDATE SET
    id = nextval(pg_get_serial_sequence('events', 'id')),
    timestamp = excluded.timestamp, ts_epoch = excluded.ts_epoch,
    category = excluded.category, severity = excluded.severity, source = excluded.source,
    message = excluded.message, details = excluded.details,
    acknowledged = excluded.acknowledged, event_type = excluded.event_type
"""
# The fast path: the batch as ONE parameter, the JSON array the twin serialized, parsed once by
# PostgreSQL (jsonb) and taken apart there (no Python per row); the details are a JSON string
# in the row, so their text is stored exactly as the twin wrote it.
_INSERT_JSON_EVENTS = (
    """
INSERT INTO events (event_id, timestamp, ts_epoch, category, severity, source, message,
                    details, acknowledged, event_type)
SELECT r->>0, r->>1, (r->>2)::float8, r->>3, r->>4, r->>5, r->>6, r->>7,
       (r->>8)::int <> 0, r->>9
FROM jsonb_array_elements(%s::jsonb) WITH ORDINALITY AS batch(r, n) ORDER BY n"""
    + _UPSERT
)
_INSERT_EVENTS = (
    """
INSERT INTO events (event_id, timestamp, ts_epoch, category, severity, source, message,
                    details, acknowledged, event_type)
SELECT * FROM unnest(%s::text[], %s::text[], %s::float8[], %s::text[], %s::text[], %s::text[],
                     %s::text[], %s::text[], %s::bool[], %s::text[])"""
    + _UPSERT
)
# Event batches commit without waiting for the WAL flush (at most ~3 x wal_writer_delay of
# events are lost if the PostgreSQL server crashes; never corruption): the same bargain as the
# SQLite file's synchronous=NORMAL. Acknowledgements, scenarios and runs commit synchronously.
_ASYNC_COMMIT = "SET LOCAL synchronous_commit = off"
# What sends a batch from the fast path to the careful one: an id twice in the batch (ON
# CONFLICT cannot touch a row twice), text PostgreSQL cannot hold (NUL, lone surrogates).
_CAREFUL_PATH_ERRORS = (
    psycopg.errors.CardinalityViolation,
    psycopg.errors.UntranslatableCharacter,
    psycopg.errors.InvalidTextRepresentation,
    psycopg.errors.CharacterNotInRepertoire,
    psycopg.errors.InvalidParameterValue,
)
_RETAIN = (
    "DELETE FROM events WHERE id <= (SELECT id FROM events ORDER BY id DESC LIMIT 1 OFFSET %s)"
)
_EVENT_COLUMNS = (
    "event_id, timestamp, category, severity, source, message, details, acknowledged, event_type"
)


def clean_text(value: Any) -> str:
    """Text PostgreSQL can hold: NUL characters become U+FFFD."""
    text = value if isinstance(value, str) else str(value)
    if "\x00" in text:
        text = text.replace("\x00", "\ufffd")
    return text


def _decode_rows(rows: Sequence[bytes]) -> list[Any]:
    batch = b"[" + b",".join(rows) + b"]"
    try:
        decoded: list[Any] = orjson.loads(batch)
    except orjson.JSONDecodeError:  # a lone surrogate, written by the json fallback
        decoded = json.loads(batch)
        for row in decoded:
            for i in (0, 1, 3, 4, 5, 6, 9):
                row[i] = row[i].encode("utf-8", "replace").decode("utf-8")
    return decoded


def _details_text(details: Any) -> str:
    if isinstance(details, str):  # the twin's rows carry the details' JSON text
        return clean_text(details)
    try:
        return orjson.dumps(details).decode()
    except TypeError:  # integers beyond 64 bits, lone surrogates
        return json.dumps(details)


class PostgresEventStore:
    """The ``events`` table of a :class:`PostgresDatabase`."""

    def __init__(self, database: PostgresDatabase) -> None:
        self._db = database

    @property
    def location(self) -> str:
        return self._db.location

    def insert(self, rows: Sequence[bytes]) -> None:
        batch = b"[" + b",".join(rows) + b"]"
        try:
            with self._db.transaction_raw() as conn:
                conn.execute(_ASYNC_COMMIT)
                conn.execute(_INSERT_JSON_EVENTS, (batch.decode(),))
            return
        except _CAREFUL_PATH_ERRORS:
            pass
        except psycopg.Error as err:
            raise StorageError(f"database {self.location}: {err}") from err
        self._insert_carefully(rows)

    def _insert_carefully(self, rows: Sequence[bytes]) -> None:
        """Decode in Python: the last of a repeated id wins, NUL and lone surrogates become
        U+FFFD, then one ``INSERT ... SELECT FROM unnest(arrays)``."""
        latest: dict[str, list[Any]] = {}
        for row in _decode_rows(rows):  # an id twice in one batch: the last one wins
            latest.pop(row[0], None)
            latest[row[0]] = row
        values = list(latest.values())
        columns = (
            [clean_text(r[0]) for r in values],
            [clean_text(r[1]) for r in values],
            [float(r[2]) for r in values],
            [clean_text(r[3]) for r in values],
            [clean_text(r[4]) for r in values],
            [clean_text(r[5]) for r in values],
            [clean_text(r[6]) for r in values],
            [_details_text(r[7]) for r in values],
            [bool(r[8]) for r in values],
            [clean_text(r[9]) for r in values],
        )
        with self._db.transaction() as conn:
            conn.execute(_ASYNC_COMMIT)
            conn.execute(_INSERT_EVENTS, columns)

    def retain(self, max_events: int) -> None:
        with self._db.transaction() as conn:
            conn.execute(_RETAIN, (max_events,))

    def select(
        self, category: str | None, severity: str | None, limit: int | None
    ) -> list[EventRow]:
        where: list[str] = []
        params: list[Any] = []
        if category is not None:
            where.append("category = %s")
            params.append(category)
        if severity is not None:
            where.append("severity = %s")
            params.append(severity)
        sql = f"SELECT {_EVENT_COLUMNS} FROM events"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY id DESC LIMIT %s"
        params.append(limit)  # None: LIMIT NULL, no limit
        with self._db.transaction() as conn:
            rows = conn.execute(sql.encode(), params).fetchall()
        return [EventRow(*r) for r in rows]

    def acknowledge(self, event_id: str) -> bool:
        with self._db.transaction() as conn:
            cursor = conn.execute(
                "UPDATE events SET acknowledged = TRUE WHERE event_id = %s", (clean_text(event_id),)
            )
            return cursor.rowcount > 0

    def delete(self, older_than_epoch: float | None) -> int:
        with self._db.transaction() as conn:
            if older_than_epoch is None:
                return conn.execute("DELETE FROM events").rowcount
            return conn.execute(
                "DELETE FROM events WHERE ts_epoch < %s", (older_than_epoch,)
            ).rowcount

    def count(self) -> int:
        with self._db.transaction() as conn:
            row = conn.execute("SELECT COUNT(*) FROM events").fetchone()
        return int(row[0]) if row else 0

    def close(self) -> None:
        """The pool belongs to the :class:`PostgresDatabase`; closing it is its job."""
