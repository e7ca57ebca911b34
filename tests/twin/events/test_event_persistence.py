"""EventPersistence: write-behind queue, retention, restarts, failures.

Tests taking ``store`` or ``twin_backend`` run against both backends (SQLite, PostgreSQL);
the others test the SQLite file itself."""

from __future__ import annotations

import logging
import math
import sqlite3
import subprocess
import sys
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from circman5.errors import InvalidInputError, SinkError
from circman5.manufacturing.digital_twin.event_notification.event_persistence import (
    EventPersistence,
)
from circman5.manufacturing.digital_twin.event_notification.event_types import (
    ErrorEvent,
    Event,
    EventCategory,
    EventSeverity,
    ThresholdEvent,
)
from tests.fixtures.databases import TwinBackend

PERSISTENCE_LOGGER = "circman5.manufacturing.digital_twin.event_notification.event_persistence"


def test_creating_a_store_touches_nothing(tmp_path: Path) -> None:
    path = tmp_path / "lazy" / "events.db"
    store = EventPersistence(path)
    assert store.db_path == path
    assert not path.parent.exists()
    store.close()
    assert not path.parent.exists()


@pytest.mark.parametrize("max_events", [0, -5, 2.5])
def test_max_events_must_be_positive(max_events: Any) -> None:
    with pytest.raises(InvalidInputError):
        EventPersistence(max_events=max_events)


def test_database_uses_wal(tmp_path: Path) -> None:
    store = EventPersistence(tmp_path / "events.db")
    store.save_event(Event())
    store.close()
    with sqlite3.connect(store.db_path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_events_and_acknowledgements_survive_a_restart(twin_backend: TwinBackend) -> None:
    first = twin_backend.events()
    events = [ThresholdEvent("temperature", 25.0, 26.0 + i) for i in range(3)]
    for event in events:
        first.save_event(event)
    assert first.acknowledge_event(events[1].event_id)
    first.close()

    second = twin_backend.events()
    try:
        stored = second.get_events()
        assert [e.event_id for e in stored] == [e.event_id for e in reversed(events)]
        assert [e.acknowledged for e in stored] == [False, True, False]
        assert all(type(e) is ThresholdEvent for e in stored)
    finally:
        second.close()


def test_a_second_store_sees_what_the_first_flushed(twin_backend: TwinBackend) -> None:
    writer, reader = twin_backend.events(), twin_backend.events()
    try:
        writer.save_event(Event(message="shared"))
        writer.flush()
        assert [e.message for e in reader.get_events()] == ["shared"]
    finally:
        writer.close()
        reader.close()


def test_close_writes_everything_and_the_store_reopens(tmp_path: Path) -> None:
    path = tmp_path / "events.db"
    store = EventPersistence(path, max_events=None)
    for i in range(500):
        store.save_event(Event(message=str(i)))
    store.close()
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT COUNT(*) FROM events").fetchone()[0] == 500
    store.save_event(Event(message="after close"))
    assert store.get_events(limit=1)[0].message == "after close"
    assert store.count() == 501
    store.close()


def test_the_writer_thread_stops_when_idle_and_restarts(twin_backend: TwinBackend) -> None:
    store = twin_backend.events(idle_seconds=0.05)
    try:
        store.save_event(Event(message="one"))
        thread = store._thread
        assert thread is not None
        thread.join(timeout=30)
        assert not thread.is_alive()
        assert store._thread is None
        assert store.written == 1  # the writer wrote it before leaving
        store.save_event(Event(message="two"))
        assert store._thread is not None
        assert [e.message for e in store.get_events()] == ["two", "one"]
    finally:
        store.close()
    assert store._thread is None


def test_exit_flushes_queued_events(tmp_path: Path) -> None:
    data = tmp_path / "child_data"
    code = (
        "from circman5.manufacturing.digital_twin.event_notification.event_manager "
        "import event_manager\n"
        "from circman5.manufacturing.digital_twin.event_notification.event_types import Event\n"
        "event_manager.configure(config={'max_events': 100000})\n"
        "for i in range(3000):\n"
        "    event_manager.publish(Event(message=str(i)))\n"
    )
    subprocess.run(
        [sys.executable, "-c", code],
        env={"CIRCMAN5_DATA_DIR": str(data), "PATH": ""},
        check=True,
        timeout=120,
    )
    store = EventPersistence(data / "events" / "events.db", max_events=None)
    try:
        assert store.count() == 3000
        assert store.get_events(limit=1)[0].message == "2999"
    finally:
        store.close()


def test_retention_keeps_the_newest(twin_backend: TwinBackend) -> None:
    store = twin_backend.events(max_events=5)
    try:
        for i in range(3):
            store.save_event(Event(message=f"early {i}"))
        store.flush()
        for i in range(20):  # one batch larger than max_events
            store.save_event(Event(message=str(i)))
        assert [e.message for e in store.get_events()] == ["19", "18", "17", "16", "15"]
        assert store.count() == 5
        assert store.written == 23
    finally:
        store.close()


def test_saving_an_event_again_replaces_it(store: EventPersistence) -> None:
    event = Event(message="first")
    store.save_event(event)
    event.message = "second"
    store.save_event(event)
    stored = store.get_events()
    assert [(e.event_id, e.message) for e in stored] == [(event.event_id, "second")]


def test_the_saved_content_is_a_snapshot(store: EventPersistence) -> None:
    event = Event(details={"value": 1})
    store.save_event(event)
    event.details["value"] = 2
    assert store.get_events()[0].details == {"value": 1}


def test_awkward_details_are_stored_without_losing_the_batch(store: EventPersistence) -> None:
    circular: dict[str, Any] = {}
    circular["self"] = circular
    details_list: list[dict[str, Any]] = [
        {"np": np.float64(1.5), "arr": np.array([1, 2]), "i": np.int64(3)},
        {"set": {1}, "when": datetime(2025, 2, 24, tzinfo=UTC), "obj": object()},
        {"big": 2**80},
        {"nan": math.nan, "inf": math.inf},
        {"surrogate": "\ud800"},
        circular,
        {"ok": True},
    ]
    for i, details in enumerate(details_list):
        store.save_event(Event(message=str(i), details=details))
    stored = {e.message: e.details for e in store.get_events()}
    assert len(stored) == len(details_list)
    assert stored["0"] == {"np": 1.5, "arr": [1, 2], "i": 3}
    assert stored["1"]["set"] == [1]
    assert stored["1"]["when"].startswith("2025-02-24T00:00:00")
    assert stored["2"] == {"big": 2**80}
    assert stored["3"] == {"nan": None, "inf": None}
    assert "unserializable_details" in stored["5"]
    assert stored["6"] == {"ok": True}


def test_get_events_filters_and_limits(store: EventPersistence) -> None:
    store.save_event(ThresholdEvent("t", 1.0, 2.0))
    store.save_event(ErrorEvent("E", "bad", severity=EventSeverity.CRITICAL))
    store.save_event(Event(category=EventCategory.USER, severity=EventSeverity.CRITICAL))
    assert len(store.get_events(limit=None)) == 3
    assert store.get_events(limit=0) == []
    assert [e.category for e in store.get_events(severity=EventSeverity.CRITICAL)] == [
        EventCategory.USER,
        EventCategory.ERROR,
    ]
    assert [type(e) for e in store.get_events(category="threshold")] == [  # type: ignore[arg-type]
        ThresholdEvent
    ]


def test_clear_events_by_age_uses_the_event_timestamp(store: EventPersistence) -> None:
    store.save_event(Event(timestamp="2000-01-01T00:00:00+00:00", message="ancient"))
    store.save_event(Event(timestamp="2000-01-01T00:00:00", message="ancient local"))
    store.save_event(Event(message="now"))
    assert store.clear_events(older_than_days=1) == 2
    assert store.clear_events(older_than_days=0.5) == 0
    assert [e.message for e in store.get_events()] == ["now"]


def test_unparseable_event_timestamps_count_as_now(store: EventPersistence) -> None:
    store.save_event(Event(timestamp="whenever", message="odd"))
    assert store.clear_events(older_than_days=1) == 0
    assert store.get_events()[0].timestamp == "whenever"


def test_back_pressure_writes_from_the_publisher(twin_backend: TwinBackend) -> None:
    store = twin_backend.events(max_events=None, max_pending=10)
    try:
        for i in range(105):
            store.save_event(Event(message=str(i)))
            assert len(store._pending) < 10
        assert store.count() == 105
    finally:
        store.close()


def test_concurrent_writers_and_readers(twin_backend: TwinBackend) -> None:
    store = twin_backend.events(max_events=None)
    barrier = threading.Barrier(5)
    seen: list[int] = []

    def writer(n: int) -> None:
        barrier.wait()
        for i in range(400):
            store.save_event(Event(message=f"{n}-{i}"))

    def reader() -> None:
        barrier.wait()
        for _ in range(20):
            seen.append(store.count())

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(4)]
    threads.append(threading.Thread(target=reader))
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert store.count() == 1600
        assert seen == sorted(seen)  # counts only grow
        assert len({e.message for e in store.get_events(limit=None)}) == 1600
    finally:
        store.close()


def test_write_failures_are_counted_and_logged_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    blocker = tmp_path / "not_a_dir"
    blocker.write_text("x")
    store = EventPersistence(blocker / "events.db")
    with caplog.at_level(logging.ERROR, logger=PERSISTENCE_LOGGER):
        for _ in range(3):
            store.save_event(Event())
            store.flush()
    assert store.dropped == 3
    assert store.written == 0
    assert len([r for r in caplog.records if "cannot store" in r.getMessage()]) == 1
    with pytest.raises(SinkError):
        store.get_events()
    store.close()


def test_large_batches_are_split_into_one_transaction(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from circman5.storage import sqlite as storage_sqlite

    monkeypatch.setattr(storage_sqlite, "_MAX_BATCH", 7)
    store = EventPersistence(tmp_path / "events.db", max_events=None)
    try:
        with store._db_lock:  # hold the writer back so that one batch collects everything
            for i in range(50):
                store.save_event(Event(message=str(i)))
            store._write_pending()
        assert store.written == 50
        assert [e.message for e in store.get_events(limit=3)] == ["49", "48", "47"]
        assert store.count() == 50
    finally:
        store.close()


def test_acknowledging_writes_the_queue_and_the_acknowledgement_together(
    twin_backend: TwinBackend,
) -> None:
    store = twin_backend.events(max_events=3)
    try:
        queued = [Event(message=f"q{i}") for i in range(5)]
        with store._db_lock:  # all five still queued when the acknowledgement comes
            for event in queued:
                store.save_event(event)
            assert store.acknowledge_event(queued[4].event_id) is True
            assert not store._pending
        with store._db_lock:  # q0 and q1 fell to retention (max_events=3)
            store.save_event(Event(message="q5"))
            assert store.acknowledge_event(queued[0].event_id) is False
        stored = store.get_events()
        assert [(e.message, e.acknowledged) for e in stored] == [
            ("q5", False),
            ("q4", True),
            ("q3", False),
        ]
        assert store.written == 6 and store.dropped == 0
    finally:
        store.close()
