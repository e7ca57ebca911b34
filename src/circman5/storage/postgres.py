"""The distributed backend: the twin's tables in PostgreSQL, through psycopg 3 and its pool.

Why psycopg 3 (with ``psycopg_pool``) rather than asyncpg: the twin's persistence is called from
threads today (the event manager's writer thread, the API's worker threads running
``ScenarioManager`` through ``to_thread``), and psycopg 3 offers the same maintained driver with
both a thread-safe synchronous pool (used here) and an asyncio one (``AsyncConnectionPool``)
for async code, while asyncpg is asyncio-only and would need an event loop per calling thread.
Batches of events go in as one ``INSERT ... SELECT FROM unnest(arrays)`` (one round trip,
binary parameters), which is about as fast as ``COPY`` and, unlike it, supports the upsert that
"saving an event id again replaces it" needs.

Tables are those of technical manual 11.2 (``events``, ``scenarios``, ``simulations``) with the
same columns as the SQLite backend; JSON columns are ``TEXT`` holding the JSON exactly as the
twin wrote it (PostgreSQL's ``json`` types refuse the ``NaN`` and ``\\u0000`` the SQLite
backend keeps). PostgreSQL text cannot hold NUL characters: a NUL in an event's message, source
or other text column is stored as U+FFFD. A ``seq`` column stands in for SQLite's ``rowid``
where the order of insertion breaks ties.
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
from collections.abc import Iterator, Sequence
from typing import Any

import orjson
import psycopg
import psycopg.errors
from psycopg_pool import ConnectionPool, PoolTimeout

from circman5.errors import StorageError

from .contracts import EventRow, ScenarioRow, SimulationRow, UserRow, WriteOutcome
from .migrations import Migration, pending

logger = logging.getLogger(__name__)

__all__ = [
    "EVENT_MIGRATIONS",
    "SCENARIO_MIGRATIONS",
    "PostgresDatabase",
    "PostgresEventStore",
    "PostgresScenarioStore",
    "PostgresUserRecords",
]

_VERSION_TABLE = (
    "CREATE TABLE IF NOT EXISTS schema_version (component TEXT PRIMARY KEY, "
    "version INTEGER NOT NULL, applied_at TIMESTAMPTZ NOT NULL DEFAULT now())"
)
#: Held (transaction-scoped) while migrating: two processes starting at once migrate in turn.
_MIGRATION_LOCK = 0x43_49_52_43_4D_35  # "CIRCM5"

EVENT_MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        1,
        "events table (technical manual 11.2) with a unique event id",
        (
            """CREATE TABLE IF NOT EXISTS events (
                id BIGSERIAL PRIMARY KEY,
                event_id TEXT COLLATE "C" NOT NULL UNIQUE,
                timestamp TEXT NOT NULL,
                ts_epoch DOUBLE PRECISION NOT NULL,
                category TEXT NOT NULL,
                severity TEXT NOT NULL,
                source TEXT NOT NULL,
                message TEXT NOT NULL,
                details TEXT NOT NULL,
                acknowledged BOOLEAN NOT NULL DEFAULT FALSE,
                event_type TEXT NOT NULL DEFAULT 'Event'
            )""",
        ),
    ),
)

SCENARIO_MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        1,
        "scenarios and simulations tables (technical manual 11.2)",
        (
            """CREATE TABLE IF NOT EXISTS scenarios (
                id TEXT PRIMARY KEY,
                name TEXT NOT NULL UNIQUE,
                description TEXT NOT NULL DEFAULT '',
                parameters TEXT NOT NULL,
                created_at TEXT NOT NULL,
                updated_at TEXT NOT NULL,
                seq BIGSERIAL NOT NULL
            )""",
            """CREATE TABLE IF NOT EXISTS simulations (
                id TEXT PRIMARY KEY,
                timestamp TEXT NOT NULL,
                parameters TEXT NOT NULL,
                results TEXT NOT NULL,
                duration DOUBLE PRECISION NOT NULL,
                steps INTEGER NOT NULL,
                seq BIGSERIAL NOT NULL
            )""",
            "CREATE INDEX IF NOT EXISTS simulations_timestamp ON simulations (timestamp)",
        ),
    ),
)

USER_MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        1,
        "users of the API and HMI (argon2 hashes)",
        (
            """CREATE TABLE IF NOT EXISTS users (
                username TEXT COLLATE "C" PRIMARY KEY,
                role TEXT NOT NULL,
                password_hash TEXT NOT NULL,
                created_at TEXT NOT NULL,
                updated_at TEXT NOT NULL
            )""",
        ),
    ),
)

COMPONENTS: dict[str, tuple[Migration, ...]] = {
    "events": EVENT_MIGRATIONS,
    "scenarios": SCENARIO_MIGRATIONS,
    "users": USER_MIGRATIONS,
}


def redact(url: str) -> str:
    """The DSN without a password, for messages."""
    return re.sub(r"(://[^:/@]+):[^@]*@", r"\1:***@", url)


class PostgresDatabase:
    """One PostgreSQL database: a connection pool and the schemas, migrated at open.

    ``url``: a ``postgresql://user@host:port/dbname`` DSN; ``password``: given separately (from
    ``CIRCMAN5_DATABASE__PASSWORD``), never in the URL. ``min_connections``/``max_connections``
    size the pool. Opening migrates every component (see :mod:`~circman5.storage.migrations`)
    and raises :class:`~circman5.errors.SchemaVersionError` for a newer schema.
    """

    def __init__(
        self,
        url: str,
        password: str | None = None,
        *,
        min_connections: int = 1,
        max_connections: int = 8,
        connect_timeout: float = 10.0,
    ) -> None:
        self.url = url
        self.location = redact(url)
        kwargs: dict[str, Any] = {"connect_timeout": max(1, int(connect_timeout))}
        if password is not None:
            kwargs["password"] = password
        self._pool = ConnectionPool(
            url,
            min_size=min_connections,
            max_size=max_connections,
            kwargs=kwargs,
            timeout=connect_timeout,
            open=False,
            name="circman5",
        )
        try:
            self._pool.open(wait=True, timeout=connect_timeout)
            for component, migrations in COMPONENTS.items():
                self._migrate(component, migrations)
        except BaseException as err:
            self._pool.close()
            if isinstance(err, psycopg.Error | PoolTimeout):
                raise StorageError(f"database {self.location}: {err}") from err
            raise
        self.events = PostgresEventStore(self)
        self.scenarios = PostgresScenarioStore(self)
        self.users = PostgresUserRecords(self)

    @contextlib.contextmanager
    def transaction_raw(self) -> Iterator[psycopg.Connection[Any]]:
        """Like :meth:`transaction`, leaving psycopg's and the pool's errors as they are."""
        with self._pool.connection() as conn:
            yield conn

    @contextlib.contextmanager
    def transaction(self) -> Iterator[psycopg.Connection[Any]]:
        """A pooled connection in one transaction (committed on success, else rolled back)."""
        try:
            with self._pool.connection() as conn:
                yield conn
        except (psycopg.Error, PoolTimeout) as err:
            raise StorageError(f"database {self.location}: {err}") from err

    def migrate(self, component: str, migrations: Sequence[Migration]) -> None:
        """Bring another component's tables up to date (the job queue's, ...)."""
        try:
            self._migrate(component, migrations)
        except psycopg.Error as err:
            raise StorageError(f"database {self.location}: {err}") from err

    def _migrate(self, component: str, migrations: Sequence[Migration]) -> None:
        with self._pool.connection() as conn:
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (_MIGRATION_LOCK,))
            conn.execute(_VERSION_TABLE)
            row = conn.execute(
                "SELECT version FROM schema_version WHERE component = %s", (component,)
            ).fetchone()
            steps = pending(self.location, component, migrations, int(row[0]) if row else 0)
            for step in steps:
                for statement in step.statements:
                    conn.execute(statement.encode())
                logger.info(
                    "%s: %s schema migrated to version %d", self.location, component, step.version
                )
            if steps:
                conn.execute(
                    "INSERT INTO schema_version (component, version) VALUES (%s, %s) "
                    "ON CONFLICT (component) DO UPDATE SET version = excluded.version, "
                    "applied_at = now()",
                    (component, steps[-1].version),
                )

    def schema_version(self, component: str) -> int:
        with self.transaction() as conn:
            row = conn.execute(
                "SELECT version FROM schema_version WHERE component = %s", (component,)
            ).fetchone()
        return int(row[0]) if row else 0

    def close(self) -> None:
        self._pool.close()

    def __enter__(self) -> PostgresDatabase:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# -- events ------------------------------------------------------------------------------------

_UPSERT = """
ON CONFLICT (event_id) DO UPDATE SET
    id = nextval(pg_get_serial_sequence('events', 'id')),
    timestamp = excluded.timestamp, ts_epoch = excluded.ts_epoch,
    category = excluded.category, severity = excluded.severity, source = excluded.source,
    message = excluded.message, details = excluded.details,
    acknowledged = excluded.acknowledged, event_type = excluded.event_type
"""
# The fast path: the batch as ONE parameter, the JSON array the twin serialized, taken apart by
# PostgreSQL (no Python per row). ``json`` keeps each row's details text exactly as written.
_INSERT_JSON_EVENTS = (
    """
INSERT INTO events (event_id, timestamp, ts_epoch, category, severity, source, message,
                    details, acknowledged, event_type)
SELECT r->>0, r->>1, (r->>2)::float8, r->>3, r->>4, r->>5, r->>6, (r->7)::text,
       (r->>8)::int <> 0, r->>9
FROM json_array_elements(%s::json) WITH ORDINALITY AS batch(r, n) ORDER BY n"""
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


def _text(value: Any) -> str:
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
            [_text(r[0]) for r in values],
            [_text(r[1]) for r in values],
            [float(r[2]) for r in values],
            [_text(r[3]) for r in values],
            [_text(r[4]) for r in values],
            [_text(r[5]) for r in values],
            [_text(r[6]) for r in values],
            [_details_text(r[7]) for r in values],
            [bool(r[8]) for r in values],
            [_text(r[9]) for r in values],
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
                "UPDATE events SET acknowledged = TRUE WHERE event_id = %s", (_text(event_id),)
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


# -- scenarios and simulations -----------------------------------------------------------------

_SCENARIO_COLUMNS = "id, name, description, parameters, created_at, updated_at"
_BY_NAME_OR_ID = "WHERE name = %s OR id = %s ORDER BY (name = %s) DESC LIMIT 1"


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
            if conn.execute("SELECT 1 FROM scenarios WHERE name = %s", (row.name,)).fetchone():
                return "duplicate"
            conn.execute(
                f"INSERT INTO scenarios ({_SCENARIO_COLUMNS}) VALUES (%s, %s, %s, %s, %s, %s)",
                tuple(row),
            )
        return "ok"

    def list_all(self) -> list[ScenarioRow]:
        with self._db.transaction() as conn:
            rows = conn.execute(
                f"SELECT {_SCENARIO_COLUMNS} FROM scenarios ORDER BY created_at, seq"
            ).fetchall()
        return [ScenarioRow(*r) for r in rows]

    def get(self, name_or_id: str) -> ScenarioRow | None:
        key = _text(name_or_id)
        with self._db.transaction() as conn:
            row = conn.execute(
                f"SELECT {_SCENARIO_COLUMNS} FROM scenarios {_BY_NAME_OR_ID}", (key, key, key)
            ).fetchone()
        return ScenarioRow(*row) if row else None

    def update(self, row: ScenarioRow) -> WriteOutcome:
        try:
            with self._db.transaction() as conn:
                if conn.execute(
                    "SELECT 1 FROM scenarios WHERE name = %s AND id <> %s", (row.name, row.id)
                ).fetchone():
                    return "duplicate"
                cursor = conn.execute(
                    "UPDATE scenarios SET name = %s, description = %s, parameters = %s, "
                    "updated_at = %s WHERE id = %s",
                    (row.name, row.description, row.parameters, row.updated_at, row.id),
                )
                return "ok" if cursor.rowcount == 1 else "missing"
        except StorageError as err:
            if isinstance(err.__cause__, psycopg.errors.UniqueViolation):
                return "duplicate"  # renamed concurrently by another process
            raise

    def delete(self, name_or_id: str) -> bool:
        key = _text(name_or_id)
        with self._db.transaction() as conn:
            cursor = conn.execute(
                f"DELETE FROM scenarios WHERE id = (SELECT id FROM scenarios {_BY_NAME_OR_ID})",
                (key, key, key),
            )
            return cursor.rowcount > 0

    def save_simulation(self, row: SimulationRow) -> None:
        with self._db.transaction() as conn:
            conn.execute(
                "INSERT INTO simulations (id, timestamp, parameters, results, duration, steps) "
                "VALUES (%s, %s, %s, %s, %s, %s)",
                tuple(row),
            )

    def list_simulations(self, limit: int) -> list[SimulationRow]:
        with self._db.transaction() as conn:
            rows = conn.execute(
                "SELECT id, timestamp, parameters, duration, steps FROM simulations "
                "ORDER BY timestamp DESC, seq DESC LIMIT %s",
                (limit,),
            ).fetchall()
        return [SimulationRow(r[0], r[1], r[2], "", r[3], r[4]) for r in rows]

    def get_simulation(self, simulation_id: str) -> SimulationRow | None:
        with self._db.transaction() as conn:
            row = conn.execute(
                "SELECT id, timestamp, parameters, results, duration, steps FROM simulations "
                "WHERE id = %s",
                (_text(simulation_id),),
            ).fetchone()
        return SimulationRow(*row) if row else None

    def close(self) -> None:
        """The pool belongs to the :class:`PostgresDatabase`."""


# -- users -------------------------------------------------------------------------------------

_USER_COLUMNS = "username, role, password_hash, created_at, updated_at"


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
                f"SELECT {_USER_COLUMNS} FROM users WHERE username = %s", (_text(username),)
            ).fetchone()
        return UserRow(*row) if row else None

    def insert(self, row: UserRow) -> WriteOutcome:
        with self._db.transaction() as conn:
            cursor = conn.execute(
                f"INSERT INTO users ({_USER_COLUMNS}) VALUES (%s, %s, %s, %s, %s) "
                "ON CONFLICT (username) DO NOTHING",
                tuple(row),
            )
            return "ok" if cursor.rowcount == 1 else "duplicate"

    def update(self, row: UserRow) -> WriteOutcome:
        with self._db.transaction() as conn:
            cursor = conn.execute(
                "UPDATE users SET role = %s, password_hash = %s, updated_at = %s "
                "WHERE username = %s",
                (row.role, row.password_hash, row.updated_at, row.username),
            )
            return "ok" if cursor.rowcount == 1 else "missing"

    def delete(self, username: str) -> bool:
        with self._db.transaction() as conn:
            cursor = conn.execute("DELETE FROM users WHERE username = %s", (_text(username),))
            return cursor.rowcount > 0
