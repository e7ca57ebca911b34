"""Storage of events, with a write-behind queue and group commit.

The rows go to an :class:`~circman5.storage.contracts.EventStore`: by default the SQLite file
described below, or the one given as ``store=`` (the service passes PostgreSQL's when
``[database] url`` is set; see :mod:`circman5.storage`).

``save_event`` only serializes the event and appends a row to an in-memory queue; a writer thread
(started on first use, a daemon, stopped after a few idle seconds and restarted on demand)
inserts everything queued and deletes the oldest events beyond ``max_events`` in one transaction
(queued events that retention would delete at once are not inserted at all). Every read
(``get_events``, ``count``), ``acknowledge_event`` and ``clear_events`` first writes what is
queued, so they see every event saved before them.
``flush()`` writes the queue now; ``close()`` writes it and closes the database (a later call
reopens it); an ``atexit`` hook flushes every open instance.

The database is ``<data dir>/events/events.db`` unless a path is given (WAL journal,
``synchronous=NORMAL``: an application crash loses nothing committed, a power cut may lose the
last transactions). Without an explicit path the data directory is resolved when the database is
opened, and re-resolved when the data directory changes (tests give each test its own).

Nothing is opened at construction: creating an ``EventPersistence`` is free.
"""

from __future__ import annotations

import atexit
import json
import logging
import os
import threading
import time
import weakref
from collections import deque
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson

from circman5 import paths
from circman5.errors import InvalidInputError, StorageError
from circman5.storage.contracts import EventRow, EventStore
from circman5.storage.sqlite import SqliteEventStore

from .event_types import Event, EventCategory, EventSeverity

logger = logging.getLogger(__name__)

__all__ = ["DEFAULT_DB_PARTS", "EventPersistence"]

DEFAULT_DB_PARTS: tuple[str, str] = ("events", "events.db")

# A queued row: the JSON array [event_id, timestamp, epoch, category, severity, source, message,
# details (its JSON text, as a string: stored as written, by either backend), acknowledged (0/1),
# event_type].
_Row = bytes

_JSON_OPTIONS = orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS

_open_instances: weakref.WeakSet[EventPersistence] = weakref.WeakSet()
_atexit_registered = False
_atexit_lock = threading.Lock()


def _flush_all_at_exit() -> None:
    for instance in list(_open_instances):
        try:
            instance.close()
        except Exception:  # at exit: report and go on with the others
            logger.exception("closing the event database at exit failed")


def _register_at_exit(instance: EventPersistence) -> None:
    global _atexit_registered
    with _atexit_lock:
        _open_instances.add(instance)
        if not _atexit_registered:
            atexit.register(_flush_all_at_exit)
            _atexit_registered = True


def _json_default(value: Any) -> Any:
    if isinstance(value, set | frozenset):
        return list(value)
    return str(value)


def _details_json(details: Any) -> str:
    """The details as JSON text; NaN/inf become null, unknown objects ``str()``, and what JSON
    cannot hold at all (circular structures, ...) a note with their ``repr``."""
    try:
        return orjson.dumps(details, default=_json_default, option=_JSON_OPTIONS).decode()
    except TypeError:  # orjson refuses integers beyond 64 bits and lone surrogates
        pass
    try:
        return json.dumps(details, default=_json_default, allow_nan=False)
    except (TypeError, ValueError) as err:  # circular details, NaN in a key, ...
        return json.dumps(
            {"unserializable_details": repr(details), "error": str(err)}, default=repr
        )


def _load_details(text: str) -> Any:
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:  # e.g. a lone surrogate stored by the json fallback
        return json.loads(text)


def _epoch(timestamp: str) -> float:
    try:
        return datetime.fromisoformat(timestamp).timestamp()
    except (ValueError, TypeError, OverflowError, OSError):
        return time.time()


class EventPersistence:
    """Stores events in SQLite (or in ``store``); see the module docstring.

    ``max_events``: the most events kept (the oldest are deleted); None keeps everything.
    ``max_pending``: a publisher that finds this many events queued writes them itself
    (back-pressure instead of unbounded memory). ``idle_seconds``: the writer thread stops after
    this long without work. ``store``: where the events go instead of the SQLite file (owned
    by the caller: ``close()`` does not close it).
    """

    def __init__(
        self,
        db_path: str | os.PathLike[str] | None = None,
        max_events: int | None = 1000,
        *,
        max_pending: int = 100_000,
        idle_seconds: float = 5.0,
        store: EventStore | None = None,
    ) -> None:
        if max_events is not None and (type(max_events) is not int or max_events < 1):
            raise InvalidInputError(f"max_events must be a positive integer, got {max_events!r}")
        self._explicit_path = Path(db_path) if db_path is not None else None
        self.max_events = max_events
        self._max_pending = max_pending
        self._idle_seconds = idle_seconds
        self._bound_path: Path | None = None
        self._bound_env: str | None = None
        self._injected = store
        self._store: EventStore | None = store
        self._db_lock = threading.RLock()
        self._pending: deque[_Row] = deque()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._thread_lock = threading.Lock()
        self._stopping = False
        self._reported: set[type[BaseException]] = set()
        #: Events written to the database / lost because a write failed.
        self.written = 0
        self.dropped = 0

    # -- the database ---------------------------------------------------------------------------

    @property
    def location(self) -> str:
        """Where the events are stored: the SQLite file, or the injected store's location."""
        if self._injected is not None:
            return self._injected.location
        return str(self.db_path)

    @property
    def db_path(self) -> Path:
        """The database file (without an explicit path: in the current data directory)."""
        if self._explicit_path is not None:
            return self._explicit_path
        if self._bound_path is not None and paths.data_dir_source() == self._bound_env:
            return self._bound_path
        return paths.data_dir(create=False).joinpath(*DEFAULT_DB_PARTS)

    def _bind(self) -> None:
        """Without an explicit path: tie the queue to the current data directory.

        Called by every save and read before it touches the queue. When the data directory
        (:func:`circman5.paths.data_dir_source`) changed since, what is queued is written to
        the old database, which is closed.
        """
        if self._injected is not None:
            return
        env = paths.data_dir_source()
        if self._bound_path is not None and env == self._bound_env:
            return
        with self._db_lock:
            if self._bound_path is not None and env != self._bound_env:
                self._write_pending()
                self._close_connection()
            self._bound_path = paths.data_dir(create=False).joinpath(*DEFAULT_DB_PARTS)
            self._bound_env = env

    def _connect(self) -> EventStore:
        """The store, opening the SQLite file first if needed. Hold ``_db_lock``."""
        if self._store is not None:
            return self._store
        path = self._explicit_path or self._bound_path
        if path is None:  # pragma: no cover - _bind() runs before anything is queued
            raise StorageError("event database path not resolved")
        store = SqliteEventStore(path)
        self._store = store
        _register_at_exit(self)
        logger.debug("event database: %s", path)
        return store

    def _close_connection(self) -> None:
        if self._store is not None and self._injected is None:
            self._store.close()
            self._store = None

    # -- writing --------------------------------------------------------------------------------

    @staticmethod
    def _row(event: Event) -> _Row:
        timestamp = event.timestamp
        row = [
            event.event_id,
            timestamp,
            _epoch(timestamp),
            event.category.value,
            event.severity.value,
            event.source,
            event.message,
            _details_json(event.details),
            1 if event.acknowledged else 0,
            type(event).__name__,
        ]
        try:
            return orjson.dumps(row)
        except TypeError:  # a lone surrogate in a text field
            return json.dumps(row).encode()

    def save_event(self, event: Event) -> None:
        """Queue ``event`` for writing.

        The event is serialized now, so later changes to the event object are not stored. Saving
        an event id again replaces the stored event. Details that JSON cannot hold are stored
        with ``str()`` (unknown objects) or as their ``repr`` (circular structures).
        """
        if self._explicit_path is None and self._injected is None:
            self._bind()
        pending = self._pending
        pending.append(self._row(event))
        if self._thread is None:
            self._start_writer()
        elif not self._wake.is_set():
            self._wake.set()
        if len(pending) >= self._max_pending:
            self.flush()

    def _start_writer(self) -> None:
        _register_at_exit(self)
        with self._thread_lock:
            if self._thread is None and not self._stopping:
                thread = threading.Thread(
                    target=self._run_writer, name="circman5-event-writer", daemon=True
                )
                self._thread = thread
                thread.start()
        self._wake.set()

    def _run_writer(self) -> None:
        me = threading.current_thread()
        wake, pending = self._wake, self._pending
        while True:
            woken = wake.wait(self._idle_seconds) if not pending else True
            wake.clear()
            if pending:
                with self._db_lock:
                    self._write_pending()
            if self._stopping or not woken:
                # Stopping or idle: leave, unless an event slipped in (see save_event).
                with self._thread_lock:
                    self._thread = None
                    if not pending:
                        return
                    self._thread = me

    def _write_pending(self, acknowledge: str | None = None) -> bool | None:
        """Insert everything queued and apply retention (one transaction), with
        ``acknowledge`` in the same transaction: whether that event was found (None: nothing
        was queued or the write failed, so nothing was acknowledged). Hold ``_db_lock``."""
        pending = self._pending
        count = len(pending)
        if not count:
            return None
        batch = [pending.popleft() for _ in range(count)]
        max_events = self.max_events
        if max_events is not None and count > max_events:
            # Retention would delete the older part of this batch right away: skip it.
            del batch[: count - max_events]
        try:
            found = self._connect().insert(batch, keep_newest=max_events, acknowledge=acknowledge)
        except (StorageError, OSError) as err:
            self.dropped += count
            self._report_failure(err, f"cannot store {count} events")
            return None
        self.written += count
        if self._reported:
            logger.info("event database %s writable again", self.location)
            self._reported.clear()
        return found

    def _report_failure(self, err: BaseException, what: str) -> None:
        """Log a write failure once per exception type until a write succeeds again."""
        if type(err) not in self._reported:
            self._reported.add(type(err))
            logger.error("%s in %s: %s", what, self.location, err)

    def flush(self) -> None:
        """Write every queued event now (returns when they are committed)."""
        with self._db_lock:
            self._write_pending()

    def close(self) -> None:
        """Write the queue, stop the writer thread and close the database.

        Using the instance afterwards reopens it. Do not close while other threads publish.
        """
        with self._thread_lock:
            thread = self._thread
            self._stopping = True
        try:
            if thread is not None and thread is not threading.current_thread():
                self._wake.set()
                thread.join()
            with self._db_lock:
                self._write_pending()
                self._close_connection()
        finally:
            self._stopping = False
        _open_instances.discard(self)

    # -- reading and maintenance -----------------------------------------------------------------

    def _ready(self) -> EventStore:
        """Write the queue, then return the store. Hold ``_db_lock``."""
        if self._explicit_path is None:
            self._bind()
        self._write_pending()
        try:
            return self._connect()
        except OSError as err:
            raise StorageError(f"event database {self.location}: {err}") from err

    def get_events(
        self,
        category: EventCategory | None = None,
        severity: EventSeverity | None = None,
        limit: int | None = 100,
    ) -> list[Event]:
        """Stored events, newest first, optionally of one category and/or severity."""
        with self._db_lock:
            rows = self._ready().select(
                EventCategory(category).value if category is not None else None,
                EventSeverity(severity).value if severity is not None else None,
                None if limit is None else max(int(limit), 0),
            )
        return [self._event(row) for row in rows]

    @staticmethod
    def _event(row: EventRow) -> Event:
        event_id, timestamp, category, severity, source, message, details, ack, event_type = row
        return Event.from_dict(
            {
                "event_id": event_id,
                "timestamp": timestamp,
                "category": category,
                "severity": severity,
                "source": source,
                "message": message,
                "details": _load_details(details),
                "acknowledged": bool(ack),
                "event_type": event_type,
            }
        )

    def acknowledge_event(self, event_id: str) -> bool:
        """Mark a stored event acknowledged; False when no event has that id.

        What is queued is written first, in the same transaction (one commit)."""
        with self._db_lock:
            if self._explicit_path is None:
                self._bind()
            found = self._write_pending(acknowledge=event_id)
            if found is not None:
                return found
            return self._ready().acknowledge(event_id)

    def clear_events(self, older_than_days: float | None = None) -> int:
        """Delete all events, or those whose timestamp is older than that many days."""
        if older_than_days is None:
            with self._db_lock:
                return self._ready().delete(None)
        if isinstance(older_than_days, bool) or not isinstance(older_than_days, int | float):
            raise InvalidInputError(f"older_than_days must be a number, got {older_than_days!r}")
        if not older_than_days >= 0:
            raise InvalidInputError(f"older_than_days must be >= 0, got {older_than_days!r}")
        cutoff = time.time() - older_than_days * 86400.0
        with self._db_lock:
            return self._ready().delete(cutoff)

    def count(self) -> int:
        """Number of stored events."""
        with self._db_lock:
            return self._ready().count()
