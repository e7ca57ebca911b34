"""The SQL schema of the embedded store, and converting a file of the row-per-point layout."""

from __future__ import annotations

import logging
import sqlite3

from circman5.errors import SinkError
from circman5.sinks.embedded.chunks import INSERT_CHUNK, add_run
from circman5.sinks.embedded.model import StoredValue, storable
from circman5.sinks.embedded.runs import RunRow, sorted_run

logger = logging.getLogger(__name__)

#: ``PRAGMA user_version`` of this layout. 0 with a ``points`` table: the row-per-point layout.
SCHEMA_VERSION = 2
#: Rows of the row-per-point layout converted at a time when an old file is opened.
MIGRATION_BATCH_POINTS = 100_000

_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS series (
        id INTEGER PRIMARY KEY,
        measurement TEXT NOT NULL,
        path TEXT NOT NULL,
        source TEXT NOT NULL,
        UNIQUE (measurement, path, source)
    )""",
    "CREATE INDEX IF NOT EXISTS series_path ON series (path)",
    # staged runs, one per series and group commit; id = write order (the later run wins)
    """CREATE TABLE IF NOT EXISTS recent (
        id INTEGER PRIMARY KEY,
        series_id INTEGER NOT NULL,
        start_ts INTEGER NOT NULL,
        end_ts INTEGER NOT NULL,
        count INTEGER NOT NULL,
        last_value,
        last_quality INTEGER NOT NULL,
        data BLOB NOT NULL
    )""",
    """CREATE TABLE IF NOT EXISTS chunks (
        id INTEGER PRIMARY KEY,
        series_id INTEGER NOT NULL,
        start_ts INTEGER NOT NULL,
        end_ts INTEGER NOT NULL,
        count INTEGER NOT NULL,
        last_value,
        last_quality INTEGER NOT NULL,
        data BLOB NOT NULL
    )""",
    "CREATE INDEX IF NOT EXISTS chunks_series_end ON chunks (series_id, end_ts)",
    # retention by age and by rows, and the point count at open: covering, no table reads
    "CREATE INDEX IF NOT EXISTS chunks_end ON chunks (end_ts, count)",
)


def open_schema(conn: sqlite3.Connection) -> None:
    """Create the tables of a new file, or convert a file of the row-per-point layout; refuse a
    file of a newer layout."""
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    if version > SCHEMA_VERSION:
        raise SinkError(
            f"embedded store: the file has schema version {version}; this version of"
            f" circman5 reads up to {SCHEMA_VERSION}"
        )
    old_layout = conn.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'points'"
    ).fetchone()
    if version == SCHEMA_VERSION and old_layout is None:
        return
    conn.execute("BEGIN IMMEDIATE")
    try:
        for statement in _SCHEMA:
            conn.execute(statement)
        if old_layout is not None:
            moved = _migrate_points(conn)
            logger.info("embedded store: moved %d points into the chunked layout", moved)
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    if old_layout is not None:
        conn.execute("PRAGMA incremental_vacuum")


def _migrate_points(conn: sqlite3.Connection) -> int:
    """Move the rows of the row-per-point layout into chunks, then drop it.

    The rows are read in table order (sequential pages: about four times faster than index
    order), and every ``MIGRATION_BATCH_POINTS`` go into the chunks like a compaction."""
    moved = 0
    by_series: dict[int, tuple[list[int], list[StoredValue], bytearray]] = {}
    gathered = 0

    def into_chunks() -> None:
        nonlocal moved
        obsolete: list[tuple[int]] = []
        new_chunks: list[RunRow] = []
        for series_id, (ts, values, qualities) in by_series.items():
            run = sorted_run(ts, values, bytes(qualities))
            moved += len(run)
            add_run(conn, series_id, run, obsolete, new_chunks)
        conn.executemany("DELETE FROM chunks WHERE id = ?", obsolete)
        conn.executemany(INSERT_CHUNK, new_chunks)
        by_series.clear()

    for series_id, ts, value, quality in conn.execute(
        "SELECT series_id, ts, value, quality FROM points"
    ):
        stored = value if type(value) is float else storable(value)
        if stored is None:
            continue
        points = by_series.get(series_id)
        if points is None:
            points = by_series[series_id] = ([], [], bytearray())
        points[0].append(ts)
        points[1].append(stored)
        points[2].append(quality if 0 <= quality < 256 else 255)
        gathered += 1
        if gathered % MIGRATION_BATCH_POINTS == 0:
            into_chunks()
    into_chunks()
    conn.execute("DROP TABLE points")
    return moved
