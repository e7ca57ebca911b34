"""The ``events`` table in PostgreSQL (see :mod:`circman5.storage.postgres` for the database).

A batch goes in by ``COPY ... FROM STDIN (FORMAT BINARY)`` (psycopg's C row writer; PostgreSQL
inserts copied rows several per page and WAL record, where ``INSERT`` writes one by one), and
the retention ``DELETE`` runs in the same transaction: one commit, one WAL flush per batch.
Commits are synchronous (``synchronous_commit`` as the server has it, ``on`` by default): a
batch the writer saw committed survives a crash of PostgreSQL or of its machine.

``COPY`` cannot replace a row, so a batch that holds an id stored before, or twice, fails with
a unique violation and is written again by an upsert: the JSON array of rows as ONE parameter,
taken apart by PostgreSQL, ``ON CONFLICT`` replacing the stored row. Batches PostgreSQL refuses
that way too (an id twice in the batch, NUL characters, lone surrogates) take a careful path:
decoded in Python, the last of a repeated id kept, NUL and lone surrogates stored as U+FFFD,
then one ``INSERT ... SELECT FROM unnest``. Measured by ``python -m benchmarks database``.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import orjson
import psycopg
import psycopg.errors

from circman5.errors import StorageError

from . import records
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
_COPY_EVENTS = (
    "COPY events (event_id, timestamp, ts_epoch, category, severity, source, message, details, "
    "acknowledged, event_type) FROM STDIN (FORMAT BINARY)"
)
_COPY_TYPES = ("text", "text", "float8", "text", "text", "text", "text", "text", "bool", "text")
# What sends a batch from the fast path to the careful one: an id twice in the batch (ON
# CONFLICT cannot touch a row twice), text PostgreSQL cannot hold (NUL, lone surrogates).
_CAREFUL_PATH_ERRORS = (
    psycopg.DataError,  # NUL in a text value (refused by psycopg before sending)
    psycopg.errors.CardinalityViolation,
    psycopg.errors.UntranslatableCharacter,
    psycopg.errors.InvalidTextRepresentation,
    psycopg.errors.CharacterNotInRepertoire,
    psycopg.errors.InvalidParameterValue,
)
# Retention: the id of the newest event beyond those kept (a backward walk of the primary key
# from the top), then a DELETE of the ids between the last such cutoff and this one. Bounded
# below, the DELETE walks only what it deletes: from the lowest id, it would walk every row
# deleted before but not yet vacuumed (the benchmark's 50,000 events: 50 times slower). Every
# _FULL_SWEEP_EVERY-th retention starts from 0, for rows another writer committed late below
# the bound.
_RETAIN_CUTOFF = "SELECT id FROM events ORDER BY id DESC LIMIT 1 OFFSET %s"
_RETAIN = "DELETE FROM events WHERE id > %s AND id <= %s"
_FULL_SWEEP_EVERY = 100
_ACKNOWLEDGE = records.for_postgres(records.ACKNOWLEDGE_EVENT)
_DELETE_BEFORE = records.for_postgres(records.DELETE_EVENTS_BEFORE)


def clean_text(value: object) -> str:
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
        self._retention_lock = threading.Lock()
        self._deleted_up_to = 0  # every id up to this one is deleted (committed)
        self._retentions = 0

    def _retain(self, conn: psycopg.Connection[Any], keep_newest: int | None) -> int | None:
        """Delete all but the newest ``keep_newest`` (in the caller's transaction); the new
        cutoff, for :meth:`_retained` once committed (None: nothing to delete)."""
        if keep_newest is None:
            return None
        row = conn.execute(_RETAIN_CUTOFF, (keep_newest,)).fetchone()
        if row is None:
            return None
        with self._retention_lock:
            self._retentions += 1
            lower = 0 if self._retentions % _FULL_SWEEP_EVERY == 0 else self._deleted_up_to
        conn.execute(_RETAIN, (min(lower, row[0]), row[0]))
        return int(row[0])

    def _retained(self, cutoff: int | None) -> None:
        if cutoff is not None:
            with self._retention_lock:
                self._deleted_up_to = max(self._deleted_up_to, cutoff)

    @property
    def location(self) -> str:
        return self._db.location

    def insert(
        self, rows: Sequence[bytes], keep_newest: int | None = None, acknowledge: str | None = None
    ) -> bool:
        batch = b"[" + b",".join(rows) + b"]"
        try:
            decoded: list[list[Any]] | None = orjson.loads(batch)
        except orjson.JSONDecodeError:  # a lone surrogate: the careful path
            decoded = None
        try:
            if decoded is not None:
                copied = self._copy(decoded, keep_newest, acknowledge)
                if copied is not None:
                    return copied
            with self._db.transaction_raw() as conn:
                conn.execute(_INSERT_JSON_EVENTS, (batch.decode(),))
                cutoff, found = self._finish(conn, keep_newest, acknowledge)
            self._retained(cutoff)
            return found
        except _CAREFUL_PATH_ERRORS:
            pass
        except psycopg.Error as err:
            raise StorageError(f"database {self.location}: {err}") from err
        return self._insert_carefully(rows, keep_newest, acknowledge)

    def _finish(
        self, conn: psycopg.Connection[Any], keep_newest: int | None, acknowledge: str | None
    ) -> tuple[int | None, bool]:
        """After a batch, in its transaction: retention, then the acknowledgement."""
        cutoff = self._retain(conn, keep_newest)
        if acknowledge is None:
            return cutoff, False
        return cutoff, conn.execute(_ACKNOWLEDGE, (True, clean_text(acknowledge))).rowcount > 0

    def _copy(
        self, rows: list[list[Any]], keep_newest: int | None, acknowledge: str | None
    ) -> bool | None:
        """COPY the rows in, retention and the acknowledgement, one transaction; None when an
        id was stored before or repeats in the batch (nothing written: the upsert's turn)."""
        try:
            with self._db.transaction_raw() as conn:
                with conn.cursor().copy(_COPY_EVENTS) as copy:
                    copy.set_types(_COPY_TYPES)
                    write_row = copy.write_row
                    for row in rows:
                        row[8] = row[8] != 0
                        write_row(row)
                cutoff, found = self._finish(conn, keep_newest, acknowledge)
        except (psycopg.errors.UniqueViolation, TypeError, ValueError, IndexError):
            return None  # an id stored before or twice; details not a string: the upsert
        self._retained(cutoff)
        return found

    def _insert_carefully(
        self, rows: Sequence[bytes], keep_newest: int | None, acknowledge: str | None
    ) -> bool:
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
            conn.execute(_INSERT_EVENTS, columns)
            cutoff, found = self._finish(conn, keep_newest, acknowledge)
        self._retained(cutoff)
        return found

    def retain(self, max_events: int) -> None:
        with self._db.transaction() as conn:
            cutoff = self._retain(conn, max_events)
        self._retained(cutoff)

    def select(
        self, category: str | None, severity: str | None, limit: int | None
    ) -> list[EventRow]:
        sql, params = records.select_events(category, severity)
        params.append(limit)  # None: LIMIT NULL, no limit
        with self._db.transaction() as conn:
            rows = conn.execute(records.for_postgres(sql).encode(), params).fetchall()
        return [records.event_record(r) for r in rows]

    def acknowledge(self, event_id: str) -> bool:
        with self._db.transaction() as conn:
            cursor = conn.execute(_ACKNOWLEDGE, (True, clean_text(event_id)))
            return cursor.rowcount > 0

    def delete(self, older_than_epoch: float | None) -> int:
        with self._db.transaction() as conn:
            if older_than_epoch is None:
                return conn.execute(records.DELETE_ALL_EVENTS).rowcount
            return conn.execute(_DELETE_BEFORE, (older_than_epoch,)).rowcount

    def count(self) -> int:
        with self._db.transaction() as conn:
            row = conn.execute(records.COUNT_EVENTS).fetchone()
        return int(row[0]) if row else 0

    def close(self) -> None:
        """The pool belongs to the :class:`PostgresDatabase`; closing it is its job."""
