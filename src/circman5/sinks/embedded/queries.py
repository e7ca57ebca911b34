"""The embedded store's queries: series, points of a path in a time range (chunks and staged
runs merged, the later write winning), the newest point of each series. Each runs on the
worker thread."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence

from circman5.sinks.embedded.codec import decode
from circman5.sinks.embedded.model import (
    INT64_MIN,
    SeriesInfo,
    StoredPoint,
    StoredValue,
    stored_point,
)
from circman5.sinks.embedded.runs import EMPTY, Run, concat, merge


def series(conn: sqlite3.Connection, measurement: str | None) -> list[SeriesInfo]:
    sql = "SELECT measurement, path, source FROM series"
    args: tuple[str, ...] = ()
    if measurement is not None:
        sql += " WHERE measurement = ?"
        args = (measurement,)
    return [
        SeriesInfo(*row) for row in conn.execute(sql + " ORDER BY path, measurement, source", args)
    ]


def _matching(
    conn: sqlite3.Connection,
    paths: Sequence[str] | None,
    measurement: str | None,
    source: str | None,
) -> dict[int, tuple[str, str, str]]:
    sql = "SELECT id, measurement, path, source FROM series"
    where: list[str] = []
    args: list[object] = []
    if paths is not None:
        where.append(f"path IN ({','.join('?' * len(paths))})")
        args.extend(paths)
    for clause, value in (("measurement = ?", measurement), ("source = ?", source)):
        if value is not None:
            where.append(clause)
            args.append(value)
    if where:
        sql += " WHERE " + " AND ".join(where)
    return {i: (m, p, s) for i, m, p, s in conn.execute(sql, args)}


def points(
    conn: sqlite3.Connection,
    path: str,
    start_ns: int | None,
    end_ns: int | None,
    measurement: str | None,
    source: str | None,
    limit: int,
) -> list[StoredPoint]:
    wanted = _matching(conn, [path], measurement, source)
    if not wanted or limit <= 0:
        return []
    staged: dict[int, list[Run]] = {}
    marks = ",".join("?" * len(wanted))
    sql = f"SELECT series_id, data FROM recent WHERE series_id IN ({marks})"
    args: list[object] = list(wanted)
    if start_ns is not None:
        sql += " AND end_ts >= ?"
        args.append(start_ns)
    if end_ns is not None:
        sql += " AND start_ts < ?"
        args.append(end_ns)
    for series_id, data in conn.execute(sql + " ORDER BY id", args):
        staged.setdefault(series_id, []).append(decode(data).between(start_ns, end_ns))
    found: list[tuple[int, str, str, StoredValue, int]] = []
    for series_id, (m, _, s) in wanted.items():
        chunked: list[Run] = []
        taken = 0
        rows = conn.execute(
            "SELECT start_ts, data FROM chunks WHERE series_id = ? AND end_ts >= ? ORDER BY end_ts",
            (series_id, INT64_MIN if start_ns is None else start_ns),
        )
        for start_ts, data in rows:  # chunks are disjoint: in time order
            if end_ns is not None and start_ts >= end_ns:
                break
            run = decode(data).between(start_ns, end_ns)
            chunked.append(run)
            taken += len(run)
            if taken >= limit:  # later chunks only hold later points
                break
        rows.close()
        run = merge([concat(chunked) if chunked else EMPTY, *staged.get(series_id, ())])
        run = run.slice(0, limit)
        count = len(run)
        found.extend(zip(run.ts, [m] * count, [s] * count, run.values, run.qualities, strict=True))
    if len(wanted) > 1:
        found.sort(key=lambda f: (f[0], f[1], f[2]))
    return [stored_point(m, path, s, ts, value, q) for ts, m, s, value, q in found[:limit]]


def latest(
    conn: sqlite3.Connection, paths: Sequence[str] | None, measurement: str | None
) -> list[StoredPoint]:
    wanted = _matching(conn, paths, measurement, None)
    if not wanted:
        return []
    newest: dict[int, tuple[int, StoredValue, int]] = {}
    sql = "SELECT series_id, end_ts, last_value, last_quality FROM recent"
    args: list[object] = []
    if paths is not None or measurement is not None:
        sql += f" WHERE series_id IN ({','.join('?' * len(wanted))})"
        args = list(wanted)
    for series_id, end_ts, value, quality in conn.execute(sql + " ORDER BY id", args):
        best = newest.get(series_id)
        if best is None or end_ts >= best[0]:  # later runs win on equal timestamps
            newest[series_id] = (end_ts, value, quality)
    found: list[StoredPoint] = []
    for series_id, (m, p, s) in wanted.items():
        chunk = conn.execute(
            "SELECT end_ts, last_value, last_quality FROM chunks WHERE series_id = ?"
            " ORDER BY end_ts DESC LIMIT 1",
            (series_id,),
        ).fetchone()
        best = newest.get(series_id)
        if chunk is not None and (best is None or chunk[0] > best[0]):
            best = chunk
        if best is not None:
            found.append(stored_point(m, p, s, *best))
    found.sort(key=lambda point: (point.path, point.measurement, point.source))
    return found
