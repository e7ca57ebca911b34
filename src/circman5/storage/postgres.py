"""The distributed backend: the twin's tables in PostgreSQL, through psycopg 3 and its pool.

Why psycopg 3 (with ``psycopg_pool``) rather than asyncpg: the twin's persistence is called from
threads today (the event manager's writer thread, the API's worker threads running
``ScenarioManager`` through ``to_thread``), and psycopg 3 offers the same maintained driver with
both a thread-safe synchronous pool (used here) and an asyncio one (``AsyncConnectionPool``)
for async code, while asyncpg is asyncio-only and would need an event loop per calling thread.
Batches of events go in by COPY (:mod:`.postgres_events`); scenarios, simulation runs and users
are in :mod:`.postgres_records`; calibrations in :mod:`.postgres_calibrations`; saved twin states in
:mod:`.postgres_states`; model metadata in :mod:`.postgres_models`; the job queue in :mod:`.jobs`.

Tables are those of technical manual 11.2 (``states``, ``events``, ``scenarios``,
``simulations``) with the same columns as the SQLite backend; JSON columns are ``TEXT``
holding the JSON exactly as the twin wrote it (PostgreSQL's ``json`` types refuse the ``NaN``
and ``\\u0000`` the SQLite backend keeps). PostgreSQL text cannot hold NUL characters: a NUL
in an event's message, source or other text column is stored as U+FFFD. A ``seq`` column
stands in for SQLite's ``rowid`` where the order of insertion breaks ties.
"""

from __future__ import annotations

import contextlib
import logging
import re
from collections.abc import Iterator, Sequence
from typing import Any

import psycopg
import psycopg.errors
from psycopg_pool import ConnectionPool, PoolTimeout

from circman5.errors import StorageError

from .migrations import Migration, pending
from .postgres_calibrations import CALIBRATION_MIGRATIONS, PostgresCalibrationStore
from .postgres_events import PostgresEventStore
from .postgres_models import MODEL_MIGRATIONS, PostgresModelRecords
from .postgres_records import PostgresScenarioStore, PostgresUserRecords
from .postgres_states import STATE_MIGRATIONS, PostgresStateStore

logger = logging.getLogger(__name__)

__all__ = [
    "EVENT_MIGRATIONS",
    "SCENARIO_MIGRATIONS",
    "PostgresCalibrationStore",
    "PostgresDatabase",
    "PostgresEventStore",
    "PostgresModelRecords",
    "PostgresScenarioStore",
    "PostgresStateStore",
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
    Migration(
        2,
        "users.sites: the sites a user sees on the site page (NULL: every site)",
        ("ALTER TABLE users ADD COLUMN IF NOT EXISTS sites TEXT",),
    ),
)

COMPONENTS: dict[str, tuple[Migration, ...]] = {
    "events": EVENT_MIGRATIONS,
    "scenarios": SCENARIO_MIGRATIONS,
    "users": USER_MIGRATIONS,
    "calibrations": CALIBRATION_MIGRATIONS,
    "states": STATE_MIGRATIONS,
    "models": MODEL_MIGRATIONS,
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
        self.calibrations = PostgresCalibrationStore(self)
        self.states = PostgresStateStore(self)
        self.models = PostgresModelRecords(self)

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
