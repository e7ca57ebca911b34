"""A series' chunk rows: splitting a run into chunks, adding a run to the chunks of its series
(keeping them disjoint in time), reading and replacing one chunk."""

from __future__ import annotations

import sqlite3
from bisect import bisect_left, bisect_right
from collections.abc import Iterator

from circman5.sinks.embedded.codec import decode, encode
from circman5.sinks.embedded.runs import Run, RunRow, concat, merge

#: Largest chunk written; merged runs are split into chunks of at most this many points.
MAX_CHUNK_POINTS = 4096
#: A series' newest chunk smaller than this takes the next compacted points (slow series).
SMALL_CHUNK_POINTS = 256

INSERT_CHUNK = (
    "INSERT INTO chunks (series_id, start_ts, end_ts, count, last_value, last_quality, data)"
    " VALUES (?, ?, ?, ?, ?, ?, ?)"
)


def chunk_rows(series_id: int, run: Run) -> Iterator[RunRow]:
    """``run`` as chunk rows of at most ``MAX_CHUNK_POINTS`` points, of about equal size."""
    count = len(run)
    if not count:
        return
    pieces = -(-count // MAX_CHUNK_POINTS)
    for k in range(pieces):
        piece = run.slice(count * k // pieces, count * (k + 1) // pieces)
        yield piece.row(series_id, encode(piece, pack=True))


def add_run(
    conn: sqlite3.Connection,
    series_id: int,
    run: Run,
    obsolete: list[tuple[int]],
    new_chunks: list[RunRow],
) -> int:
    """Add ``run`` (newer than every chunk) to the series' chunks, keeping them disjoint in
    time: points inside an existing chunk's span are merged into it. The chunks to delete go to
    ``obsolete``, the rows to insert to ``new_chunks``. Returns the number of points replaced
    (equal timestamps)."""
    if not len(run):
        return 0
    newest = conn.execute(
        "SELECT id, end_ts, count FROM chunks WHERE series_id = ? ORDER BY end_ts DESC LIMIT 1",
        (series_id,),
    ).fetchone()
    if newest is None or run.start > newest[1]:
        if newest is not None and newest[2] < SMALL_CHUNK_POINTS:  # grow a small chunk
            obsolete.append((newest[0],))
            run = concat([read_chunk(conn, newest[0]), run])
        new_chunks.extend(chunk_rows(series_id, run))
        return 0
    spans = conn.execute(
        "SELECT id, start_ts, end_ts FROM chunks WHERE series_id = ? AND end_ts >= ?"
        " AND start_ts <= ? ORDER BY end_ts",
        (series_id, run.start, run.end),
    ).fetchall()
    replaced = 0
    done = 0  # points of run placed so far
    for chunk_id, start_ts, end_ts in spans:
        lo = bisect_left(run.ts, start_ts, done)
        hi = bisect_right(run.ts, end_ts, lo)
        new_chunks.extend(chunk_rows(series_id, run.slice(done, lo)))  # a gap: no chunk
        if hi > lo:
            old, inside = read_chunk(conn, chunk_id), run.slice(lo, hi)
            merged = merge([old, inside])
            replaced += len(old) + len(inside) - len(merged)
            obsolete.append((chunk_id,))
            new_chunks.extend(chunk_rows(series_id, merged))
        done = hi
    new_chunks.extend(chunk_rows(series_id, run.slice(done, len(run))))
    return replaced


def read_chunk(conn: sqlite3.Connection, chunk_id: int) -> Run:
    (data,) = conn.execute("SELECT data FROM chunks WHERE id = ?", (chunk_id,)).fetchone()
    return decode(data)


def replace_chunk(conn: sqlite3.Connection, chunk_id: int, series_id: int, run: Run) -> None:
    """Replace a chunk by ``run`` (as chunk rows; none if it is empty)."""
    conn.execute("DELETE FROM chunks WHERE id = ?", (chunk_id,))
    conn.executemany(INSERT_CHUNK, chunk_rows(series_id, run))
