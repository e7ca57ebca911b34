"""The parts of the embedded time-series store; :mod:`circman5.sinks.embedded_store` is the
public module (it describes the layout).

* :mod:`.model`: what the store holds: series, stored points and the values it can keep;
* :mod:`.runs`: a series' points as a sorted run, and merging runs (the later write wins);
* :mod:`.codec`: the blob format of staged runs and chunks, and building a commit's staged runs;
* :mod:`.chunks`: a series' chunk rows: splitting a run into chunks, adding a run to them;
* :mod:`.schema`: the SQL schema, and converting a file of the row-per-point layout;
* :mod:`.tables`: the writes: group commit, compaction, retention;
* :mod:`.queries`: series, points in a time range, newest points;
* :mod:`.store`: :class:`~circman5.sinks.embedded.store.EmbeddedStore`, the async service.
"""
