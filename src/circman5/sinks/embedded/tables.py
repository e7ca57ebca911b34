"""The embedded store's writes to its tables: the group commit (one staged run per series),
compaction (staged runs into chunks) and retention. Every method runs on the worker thread."""

from __future__ import annotations

import sqlite3
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from itertools import pairwise

from circman5.samples import Quality, Sample, make_sample
from circman5.sinks.embedded.chunks import INSERT_CHUNK, add_run, read_chunk, replace_chunk
from circman5.sinks.embedded.codec import SeriesKey, decode, join_staged, staged_runs
from circman5.sinks.embedded.model import KPI_SOURCE
from circman5.sinks.embedded.runs import RunRow, merge
from circman5.sinks.embedded.schema import open_schema

_INSERT_STAGED = (
    "INSERT INTO recent (series_id, start_ts, end_ts, count, last_value, last_quality, data)"
    " VALUES (?, ?, ?, ?, ?, ?, ?)"
)


@dataclass(frozen=True, slots=True)
class SampleWrite:
    measurement: str
    samples: Sequence[Sample]
    #: Called on the event loop once the samples are committed.
    on_durable: Callable[[], None] | None = None


@dataclass(frozen=True, slots=True)
class KpiWrite:
    measurement: str
    leaves: list[tuple[str, float]]
    timestamp_ns: int


#: One write call, queued for the next group commit.
Write = SampleWrite | KpiWrite


@dataclass(frozen=True, slots=True)
class CompactionStep:
    """The staged runs with ``after_id < id <= until_id`` of the series with ids
    ``first_series`` to ``last_series``: ``points`` points."""

    first_series: int
    last_series: int
    after_id: int
    until_id: int
    points: int


class Tables:
    """The store's tables and the counts kept beside them. Every method runs on the worker
    thread."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._ids: dict[SeriesKey, int] = {}
        open_schema(conn)
        #: Points waiting in ``recent`` (duplicates of a timestamp count until compacted).
        self.staged_points = 0
        #: Points stored: in chunks and staged.
        self.rows = 0
        self._recount(conn)
        self._compacting = False  # a compaction's steps have started and not finished
        self._load_ids(conn)

    def _recount(self, conn: sqlite3.Connection) -> None:
        chunked = conn.execute("SELECT total(count) FROM chunks").fetchone()[0]
        self.staged_points = int(conn.execute("SELECT total(count) FROM recent").fetchone()[0])
        self.rows = int(chunked) + self.staged_points

    def _load_ids(self, conn: sqlite3.Connection) -> None:
        self._ids = {
            (m, p, s): i
            for i, m, p, s in conn.execute("SELECT id, measurement, path, source FROM series")
        }

    def _series_id(self, conn: sqlite3.Connection, key: SeriesKey) -> int:
        series_id = self._ids.get(key)
        if series_id is None:
            conn.execute(
                "INSERT OR IGNORE INTO series (measurement, path, source) VALUES (?, ?, ?)", key
            )
            series_id = conn.execute(
                "SELECT id FROM series WHERE measurement = ? AND path = ? AND source = ?", key
            ).fetchone()[0]
            self._ids[key] = series_id
        return series_id

    # -- the group commit: one staged run per series ---------------------------------------

    @staticmethod
    def _by_series(writes: list[Write]) -> dict[SeriesKey, list[Sample]]:
        """The written samples of each series (``measurement, path, source``), in write order."""
        # measurement -> source -> path -> samples: string keys only (their hashes are cached),
        # about twice as fast per sample as building a key tuple
        nested: defaultdict[str, defaultdict[str, defaultdict[str, list[Sample]]]]
        nested = defaultdict(lambda: defaultdict(lambda: defaultdict(list)))
        for write in writes:
            by_source = nested[write.measurement]
            if isinstance(write, SampleWrite):
                for sample in write.samples:
                    by_source[sample.source][sample.path].append(sample)
            else:
                by_path = by_source[KPI_SOURCE]
                ts = write.timestamp_ns
                for path, number in write.leaves:
                    by_path[path].append(
                        make_sample(KPI_SOURCE, "", path, number, ts, Quality.GOOD)
                    )
        return {
            (m, path, source): samples
            for m, by_source in nested.items()
            for source, by_path in by_source.items()
            for path, samples in by_path.items()
        }

    def insert(self, conn: sqlite3.Connection, writes: list[Write]) -> int:
        staged = staged_runs(self._by_series(writes))
        points = 0
        conn.execute("BEGIN IMMEDIATE")
        try:
            rows: list[RunRow] = []
            for key, start_ts, end_ts, count, last_value, last_quality, data in staged:
                series_id = self._series_id(conn, key)
                rows.append((series_id, start_ts, end_ts, count, last_value, last_quality, data))
                points += count
            conn.executemany(_INSERT_STAGED, rows)
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            self._load_ids(conn)
            raise
        self.rows += points
        self.staged_points += points
        return points

    # -- compaction: staged runs into chunks -----------------------------------------------

    @staticmethod
    def last_staged_id(conn: sqlite3.Connection) -> int | None:
        row: tuple[int | None] = conn.execute("SELECT max(id) FROM recent").fetchone()
        return row[0]

    def compaction_plan(
        self, conn: sqlite3.Connection, max_points: int, until_id: int
    ) -> list[CompactionStep]:
        """Steps that together move the staged runs up to id ``until_id`` into chunks, each of
        at most ``max_points`` points (or one staged run, if larger): groups of series by id,
        and a series with more staged points than that in several id ranges, oldest first.

        Run the steps in order (:meth:`compact_step`), then :meth:`finish_compaction`. Until
        then a staged point can be both in a chunk and staged; queries read it once (the staged
        copy wins, and it is the same)."""
        if self._compacting:  # the last compaction stopped between steps: count the points
            self._recount(conn)  # like a restart (its moved points will count as replaced)
        self._compacting = True
        steps: list[CompactionStep] = []
        first = last = -1
        points = 0
        totals = conn.execute(
            "SELECT series_id, sum(count) FROM recent WHERE id <= ?"
            " GROUP BY series_id ORDER BY series_id",
            (until_id,),
        )
        for series_id, count in totals:
            if points and (points + count > max_points or count > max_points):
                steps.append(CompactionStep(first, last, -1, until_id, points))
                points = 0
            if count > max_points:
                steps.extend(self._series_steps(conn, series_id, max_points, until_id))
                continue
            if not points:
                first = series_id
            last = series_id
            points += count
        if points:
            steps.append(CompactionStep(first, last, -1, until_id, points))
        return steps

    @staticmethod
    def _series_steps(
        conn: sqlite3.Connection, series_id: int, max_points: int, until_id: int
    ) -> list[CompactionStep]:
        """The staged runs of one series up to id ``until_id`` in id ranges of at most
        ``max_points`` points (or one run)."""
        steps: list[CompactionStep] = []
        after = last_id = -1
        points = 0
        runs = conn.execute(
            "SELECT id, count FROM recent WHERE id <= ? AND series_id = ? ORDER BY id",
            (until_id, series_id),
        )
        for staged_id, count in runs:
            if points and points + count > max_points:
                steps.append(CompactionStep(series_id, series_id, after, last_id, points))
                after, points = last_id, 0
            last_id = staged_id
            points += count
        if points:
            steps.append(CompactionStep(series_id, series_id, after, last_id, points))
        return steps

    def compact_step(self, conn: sqlite3.Connection, step: CompactionStep) -> int:
        """Merge the staged runs of one step into the chunks of their series, in one
        transaction (the staged runs stay until :meth:`finish_compaction`). Returns the number
        of staged points taken."""
        staged: dict[int, list[tuple[int, int, bytes]]] = {}
        taken = 0
        conn.execute("BEGIN IMMEDIATE")
        try:
            cursor = conn.execute(
                "SELECT series_id, start_ts, end_ts, count, data FROM recent"
                " WHERE id > ? AND id <= ? AND series_id BETWEEN ? AND ? ORDER BY id",
                (step.after_id, step.until_id, step.first_series, step.last_series),
            )
            for series_id, start_ts, end_ts, count, data in cursor:
                runs = staged.get(series_id)
                if runs is None:
                    staged[series_id] = [(start_ts, end_ts, data)]
                else:
                    runs.append((start_ts, end_ts, data))
                taken += count
            dropped = 0
            obsolete: list[tuple[int]] = []
            new_chunks: list[RunRow] = []
            for series_id, runs in staged.items():
                run = None
                if len(runs) > 1 and all(a[1] < b[0] for a, b in pairwise(runs)):
                    run = join_staged([data for _, _, data in runs])
                if run is None:
                    decoded = [decode(data) for _, _, data in runs]
                    run = merge(decoded)
                    dropped += sum(map(len, decoded)) - len(run)
                dropped += add_run(conn, series_id, run, obsolete, new_chunks)
            del staged  # the staged blobs, before the new chunks are written
            conn.executemany("DELETE FROM chunks WHERE id = ?", obsolete)
            conn.executemany(INSERT_CHUNK, new_chunks)
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        self.rows -= dropped
        return taken

    def finish_compaction(self, conn: sqlite3.Connection, until_id: int, points: int) -> None:
        """Delete the staged runs up to id ``until_id`` (``points`` points), now in chunks."""
        conn.execute("BEGIN IMMEDIATE")
        try:
            newest = self.last_staged_id(conn)
            if newest is not None and until_id < newest:
                conn.execute("DELETE FROM recent WHERE id <= ?", (until_id,))
            else:  # every staged run: the truncate optimization frees whole pages at once
                conn.execute("DELETE FROM recent")
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        self.staged_points -= points
        self._compacting = False

    # -- retention -------------------------------------------------------------------------

    def expire(self, conn: sqlite3.Connection, cutoff_ns: int, max_chunks: int) -> tuple[int, bool]:
        """Delete chunked points older than ``cutoff_ns`` (at most ``max_chunks`` whole chunks
        per call). Returns (points deleted, more to do)."""
        deleted = 0
        conn.execute("BEGIN IMMEDIATE")
        try:
            old = conn.execute(
                "SELECT id, count FROM chunks WHERE end_ts < ? ORDER BY end_ts LIMIT ?",
                (cutoff_ns, max_chunks),
            ).fetchall()
            conn.executemany("DELETE FROM chunks WHERE id = ?", [(i,) for i, _ in old])
            deleted += sum(count for _, count in old)
            more = len(old) == max_chunks
            if not more:  # the chunk of each series that straddles the cutoff
                for series_id in list(self._ids.values()):
                    row = conn.execute(
                        "SELECT id, start_ts FROM chunks WHERE series_id = ? AND end_ts >= ?"
                        " ORDER BY end_ts LIMIT 1",
                        (series_id, cutoff_ns),
                    ).fetchone()
                    if row is not None and row[1] < cutoff_ns:
                        run = read_chunk(conn, row[0])
                        kept = run.between(cutoff_ns, None)
                        deleted += len(run) - len(kept)
                        replace_chunk(conn, row[0], series_id, kept)
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        self.rows -= deleted
        return deleted, more

    def trim_to(self, conn: sqlite3.Connection, max_rows: int, max_chunks: int) -> tuple[int, bool]:
        """Delete the oldest chunked points beyond ``max_rows`` points (whole chunks, then the
        older part of one; at most ``max_chunks`` chunks per call). Returns (deleted, more)."""
        excess = self.rows - max_rows
        if excess <= 0:
            return 0, False
        deleted = 0
        conn.execute("BEGIN IMMEDIATE")
        try:
            oldest = conn.execute(  # from the covering index chunks_end
                "SELECT id, count FROM chunks ORDER BY end_ts LIMIT ?", (max_chunks,)
            ).fetchall()
            whole: list[tuple[int]] = []
            for chunk_id, count in oldest:
                if count <= excess - deleted:
                    whole.append((chunk_id,))
                    deleted += count
                else:  # the older part of this one
                    (series_id,) = conn.execute(
                        "SELECT series_id FROM chunks WHERE id = ?", (chunk_id,)
                    ).fetchone()
                    run = read_chunk(conn, chunk_id)
                    cut = excess - deleted
                    replace_chunk(conn, chunk_id, series_id, run.slice(cut, len(run)))
                    deleted += cut
                if deleted >= excess:
                    break
            conn.executemany("DELETE FROM chunks WHERE id = ?", whole)
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        self.rows -= deleted
        return deleted, deleted < excess and len(oldest) == max_chunks

    def drop_empty_series(self, conn: sqlite3.Connection) -> None:
        """Forget series without points, and give freed pages back to the file system."""
        conn.execute(
            "DELETE FROM series WHERE NOT EXISTS"
            " (SELECT 1 FROM chunks WHERE chunks.series_id = series.id)"
            " AND id NOT IN (SELECT series_id FROM recent)"
        )
        self._load_ids(conn)
        conn.execute("PRAGMA incremental_vacuum")
