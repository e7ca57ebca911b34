"""The standalone backend: SQLite files under the data directory (the default).

The same files and tables as before the storage package existed (``events/events.db``,
``twin/scenarios.db``); opening one adds a ``schema_version`` table and applies the
:mod:`~circman5.storage.migrations` above its version (version 1 is the historical schema,
created with ``IF NOT EXISTS``, so an existing file is adopted as it is).
"""

from __future__ import annotations

import contextlib
import datetime
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path

from circman5.errors import StorageError

from . import records
from .contracts import EventRow, ScenarioRow, SimulationRow, WriteOutcome
from .migrations import Migration, pending

__all__ = ["EVENT_MIGRATIONS", "SCENARIO_MIGRATIONS", "SqliteEventStore", "SqliteScenarioStore"]

_VERSION_TABLE = (
    "CREATE TABLE IF NOT EXISTS schema_version (component TEXT PRIMARY KEY, "
    "version INTEGER NOT NULL, applied_at TEXT NOT NULL)"
)

EVENT_MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        1,
        "events table (technical manual 11.2) with a unique event id",
        (
            """CREATE TABLE IF NOT EXISTS events (
                id INTEGER PRIMARY KEY,
                event_id TEXT NOT NULL,
                timestamp TEXT NOT NULL,
                ts_epoch REAL NOT NULL,
                category TEXT NOT NULL,
                severity TEXT NOT NULL,
                source TEXT NOT NULL,
                message TEXT NOT NULL,
                details TEXT NOT NULL,
                acknowledged INTEGER NOT NULL DEFAULT 0,
                event_type TEXT NOT NULL DEFAULT 'Event'
            )""",
            "CREATE UNIQUE INDEX IF NOT EXISTS events_event_id ON events(event_id)",
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
                updated_at TEXT NOT NULL
            )""",
            """CREATE TABLE IF NOT EXISTS simulations (
                id TEXT PRIMARY KEY,
                timestamp TEXT NOT NULL,
                parameters TEXT NOT NULL,
                results TEXT NOT NULL,
                duration REAL NOT NULL,
                steps INTEGER NOT NULL
            )""",
            "CREATE INDEX IF NOT EXISTS simulations_timestamp ON simulations (timestamp)",
        ),
    ),
)


def migrate(
    conn: sqlite3.Connection, location: str, component: str, migrations: Sequence[Migration]
) -> None:
    """Bring ``component`` up to date in one transaction (autocommit connection)."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        conn.execute(_VERSION_TABLE)
        row = conn.execute(
            "SELECT version FROM schema_version WHERE component = ?", (component,)
        ).fetchone()
        steps = pending(location, component, migrations, int(row[0]) if row else 0)
        for step in steps:
            for statement in step.statements:
                conn.execute(statement)
        if steps:
            conn.execute(
                "INSERT INTO schema_version VALUES (?, ?, ?) ON CONFLICT (component) "
                "DO UPDATE SET version = excluded.version, applied_at = excluded.applied_at",
                (
                    component,
                    steps[-1].version,
                    datetime.datetime.now(datetime.UTC).isoformat(),
                ),
            )
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise


def schema_version(path: Path, component: str) -> int:
    """The version ``component`` is at in the file (0: none)."""
    with contextlib.closing(sqlite3.connect(path)) as conn:
        try:
            row = conn.execute(
                "SELECT version FROM schema_version WHERE component = ?", (component,)
            ).fetchone()
        except sqlite3.OperationalError:
            return 0
    return int(row[0]) if row else 0


# -- events ------------------------------------------------------------------------------------

# A batch is bound as ONE parameter, a JSON array of rows, and inserted by ONE statement. The
# sqlite3 module releases the GIL around each statement step, so the writer gives the GIL back
# once per batch instead of once per row as with executemany: measured about 15% faster than
# executemany while another thread publishes.
_INSERT = (
    "INSERT OR REPLACE INTO events (event_id, timestamp, ts_epoch, category, severity, source, "
    "message, details, acknowledged, event_type) SELECT "
    + ", ".join(f"json_extract(value, '$[{i}]')" for i in range(10))
    + " FROM json_each(CAST(? AS TEXT))"
)
_MAX_BATCH = 20_000
_RETAIN = "DELETE FROM events WHERE id <= (SELECT id FROM events ORDER BY id DESC LIMIT 1 OFFSET ?)"


class SqliteEventStore:
    """Events in one SQLite file (WAL journal, ``synchronous=NORMAL``: an application crash
    loses nothing committed, a power cut may lose the last transactions).

    No index on category or severity: each index halves the insert rate, and a filtered read
    walks the table newest first and stops at ``limit`` matches."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._conn: sqlite3.Connection | None = None
        self._lock = threading.RLock()

    @property
    def location(self) -> str:
        return str(self.path)

    def _connect(self) -> sqlite3.Connection:
        if self._conn is not None:
            return self._conn
        self.path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(
            self.path, timeout=10.0, isolation_level=None, check_same_thread=False
        )
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute("PRAGMA cache_size=-8000")  # 8 MB: keeps the indexes in memory
            migrate(conn, self.location, "events", EVENT_MIGRATIONS)
        except BaseException:
            conn.close()
            raise
        self._conn = conn
        return conn

    @contextlib.contextmanager
    def _use(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            try:
                yield self._connect()
            except (sqlite3.Error, OSError) as err:
                raise StorageError(f"event database {self.path}: {err}") from err

    def insert(
        self, rows: Sequence[bytes], keep_newest: int | None = None, acknowledge: str | None = None
    ) -> bool:
        chunks = [
            b"[" + b",".join(rows[start : start + _MAX_BATCH]) + b"]"
            for start in range(0, len(rows), _MAX_BATCH)
        ]
        with self._use() as conn:
            if len(chunks) == 1 and keep_newest is None and acknowledge is None:
                conn.execute(_INSERT, (chunks[0],))  # one statement: its own transaction
                return False
            conn.execute("BEGIN")
            try:
                for chunk in chunks:
                    conn.execute(_INSERT, (chunk,))
                if keep_newest is not None:
                    conn.execute(_RETAIN, (keep_newest,))
                found = acknowledge is not None and (
                    conn.execute(records.ACKNOWLEDGE_EVENT, (True, acknowledge)).rowcount > 0
                )
                conn.execute("COMMIT")
                return found
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise

    def retain(self, max_events: int) -> None:
        with self._use() as conn:
            conn.execute(_RETAIN, (max_events,))

    def select(
        self, category: str | None, severity: str | None, limit: int | None
    ) -> list[EventRow]:
        sql, params = records.select_events(category, severity)
        params.append(-1 if limit is None else limit)
        with self._use() as conn:
            rows = conn.execute(sql, params).fetchall()
        return [records.event_record(r) for r in rows]

    def acknowledge(self, event_id: str) -> bool:
        with self._use() as conn:
            cursor = conn.execute(records.ACKNOWLEDGE_EVENT, (True, event_id))
            return cursor.rowcount > 0

    def delete(self, older_than_epoch: float | None) -> int:
        with self._use() as conn:
            if older_than_epoch is None:
                return conn.execute(records.DELETE_ALL_EVENTS).rowcount
            return conn.execute(records.DELETE_EVENTS_BEFORE, (older_than_epoch,)).rowcount

    def count(self) -> int:
        with self._use() as conn:
            (count,) = conn.execute(records.COUNT_EVENTS).fetchone()
        return int(count)

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None


# -- scenarios and simulations -----------------------------------------------------------------

_LIST_SCENARIOS = records.list_scenarios("rowid")
_LIST_SIMULATIONS = records.list_simulations("rowid")


class SqliteScenarioStore:
    """Scenarios and simulation runs in one SQLite file; a connection per call (the file may be
    shared by several processes), each call one transaction."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._write_lock = threading.Lock()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            with contextlib.closing(
                sqlite3.connect(self.path, timeout=10.0, isolation_level=None)
            ) as conn:
                migrate(conn, self.location, "scenarios", SCENARIO_MIGRATIONS)
        except sqlite3.Error as err:
            raise StorageError(f"scenario database {self.path}: {err}") from err

    @property
    def location(self) -> str:
        return str(self.path)

    @contextlib.contextmanager
    def _transaction(self, write: bool = False) -> Iterator[sqlite3.Connection]:
        try:
            conn = sqlite3.connect(self.path, timeout=10.0, isolation_level=None)
        except sqlite3.Error as err:
            raise StorageError(f"cannot open {self.path}: {err}") from err
        try:
            conn.execute("BEGIN IMMEDIATE" if write else "BEGIN")
            try:
                yield conn
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")
        except sqlite3.Error as err:
            raise StorageError(f"scenario database {self.path}: {err}") from err
        finally:
            conn.close()

    def create(self, row: ScenarioRow, max_scenarios: int) -> WriteOutcome:
        with self._write_lock, self._transaction(write=True) as conn:
            (count,) = conn.execute("SELECT COUNT(*) FROM scenarios").fetchone()
            if count >= max_scenarios:
                return "limit"
            if conn.execute(records.SCENARIO_NAME_TAKEN, (row.name,)).fetchone():
                return "duplicate"
            conn.execute(records.INSERT_SCENARIO, tuple(row))
        return "ok"

    def list_all(self) -> list[ScenarioRow]:
        with self._transaction() as conn:
            rows = conn.execute(_LIST_SCENARIOS).fetchall()
        return [ScenarioRow(*r) for r in rows]

    def get(self, name_or_id: str) -> ScenarioRow | None:
        with self._transaction() as conn:
            row = conn.execute(records.GET_SCENARIO, (name_or_id,) * 3).fetchone()
        return ScenarioRow(*row) if row else None

    def update(self, row: ScenarioRow) -> WriteOutcome:
        with self._write_lock, self._transaction(write=True) as conn:
            if conn.execute(records.SCENARIO_NAME_USED_ELSEWHERE, (row.name, row.id)).fetchone():
                return "duplicate"
            cursor = conn.execute(records.UPDATE_SCENARIO, records.scenario_update(row))
            return "ok" if cursor.rowcount == 1 else "missing"

    def delete(self, name_or_id: str) -> bool:
        with self._write_lock, self._transaction(write=True) as conn:
            cursor = conn.execute(records.DELETE_SCENARIO, (name_or_id,) * 3)
            return cursor.rowcount > 0

    def save_simulation(self, row: SimulationRow) -> None:
        with self._write_lock, self._transaction(write=True) as conn:
            conn.execute(records.INSERT_SIMULATION, tuple(row))

    def list_simulations(self, limit: int) -> list[SimulationRow]:
        with self._transaction() as conn:
            rows = conn.execute(_LIST_SIMULATIONS, (limit,)).fetchall()
        return [records.simulation_summary(r) for r in rows]

    def get_simulation(self, simulation_id: str) -> SimulationRow | None:
        with self._transaction() as conn:
            row = conn.execute(records.GET_SIMULATION, (simulation_id,)).fetchone()
        return SimulationRow(*row) if row else None

    def close(self) -> None:
        """Nothing held open between calls."""
