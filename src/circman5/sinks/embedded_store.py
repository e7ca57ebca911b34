"""The embedded time-series store: the same series as InfluxDB, in SQLite under the data directory.

Used when no InfluxDB is configured, and by the API and the demo for history and latest values.
A *series* is ``(measurement, path, source)``: raw samples go to measurement ``sample`` (source =
connector), twin KPIs to ``twin_kpi`` (source ``twin``). Each point holds a nanosecond timestamp,
the value (float, int or text; booleans are stored as 0/1) and the sample quality. A second
point of the same series with the same timestamp replaces the first, as in InfluxDB.

Writes are cheap and non-blocking (:meth:`EmbeddedStore.write_samples`,
:meth:`EmbeddedStore.write_state`): they are committed in groups on a worker thread.

Layout (historian style): each group commit appends one *staged run* per series to table
``recent`` (a row with the series' points of that commit; no index, so a commit only appends
pages). Every ``compact_interval_s``, or sooner once ``max_staged_points`` are staged, the staged
runs are merged per series into *chunks*, in steps of at most 50,000 points (groups of series,
so the compaction's memory stays small; the staged runs are deleted after the last step): a row
of table ``chunks`` holds up to a few thousand points of one series, encoded compactly (deflated
timestamp deltas and qualities, float64/int64 values, JSON for text) and indexed by
``(series_id, end_ts)``. The chunks of a series never
overlap in time (late points are merged into the chunk whose span they fall in), so a query reads
a few chunk rows through the index plus the small staging table; on equal timestamps the later
write wins. Both tables carry each row's time span, point count and newest value, so
:meth:`EmbeddedStore.latest` reads no point data.
Retention runs every ``retention_interval_s``: points older than ``max_age_s`` are deleted (whole
chunks, and the older part of a chunk that straddles the limit), then the oldest points beyond
``max_rows``.

Example::

    async with EmbeddedStore(EmbeddedStoreSettings()) as store:
        store.write_samples(samples)
        await store.flush()
        names = await store.series()
        history = await store.points("production_line.temperature", start_ns, end_ns)
        now = await store.latest(["production_line.temperature"])

The parts live in :mod:`circman5.sinks.embedded`; this module is the public one.
"""

from circman5.sinks.embedded.model import KPI_SOURCE, SeriesInfo, StoredPoint, StoredValue
from circman5.sinks.embedded.store import EmbeddedStore

__all__ = ["KPI_SOURCE", "EmbeddedStore", "SeriesInfo", "StoredPoint", "StoredValue"]
