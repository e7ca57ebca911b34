"""What only the PostgreSQL backend has to take care of, checked with psql (not our driver)."""

from __future__ import annotations

from circman5.manufacturing.digital_twin.event_notification.event_types import Event
from simulators.external import PostgreSQL
from tests.fixtures.databases import TwinBackend


def _database(backend: TwinBackend) -> str:
    assert backend.dsn is not None
    return backend.dsn.rsplit("/", 1)[1]


def test_events_are_rows_another_client_reads(postgresql_server: PostgreSQL) -> None:
    backend = TwinBackend(
        "postgresql", postgresql_server.workdir, postgresql_server.create_database()
    )
    try:
        store = backend.events(max_events=None)
        events = [Event(message=f"m{i}", source="plc") for i in range(250)]
        for event in events:
            store.save_event(event)
        assert store.acknowledge_event(events[10].event_id)
        store.flush()
        name = _database(backend)
        assert postgresql_server.psql("SELECT count(*) FROM events", name) == "250"
        assert (
            postgresql_server.psql(
                f"SELECT acknowledged FROM events WHERE event_id = '{events[10].event_id}'", name
            )
            == "t"
        )
        newest = postgresql_server.psql("SELECT message FROM events ORDER BY id DESC LIMIT 1", name)
        assert newest == "m249"
    finally:
        backend.close()


def test_nul_characters_do_not_lose_the_batch(postgresql_server: PostgreSQL) -> None:
    backend = TwinBackend(
        "postgresql", postgresql_server.workdir, postgresql_server.create_database()
    )
    try:
        store = backend.events()
        store.save_event(Event(message="before"))
        store.save_event(Event(message="nul\x00here", source="s\x00", details={"k": "v\x00"}))
        store.save_event(Event(message="after"))
        stored = store.get_events()
        assert [e.message for e in stored] == ["after", "nul\ufffdhere", "before"]
        assert stored[1].details == {"k": "v\x00"}  # JSON text keeps it escaped
        assert store.dropped == 0
    finally:
        backend.close()


def test_an_id_twice_in_one_batch_keeps_the_last(postgresql_server: PostgreSQL) -> None:
    backend = TwinBackend(
        "postgresql", postgresql_server.workdir, postgresql_server.create_database()
    )
    try:
        store = backend.events()
        event = Event(message="first")
        with store._db_lock:  # one batch
            store.save_event(event)
            store.save_event(Event(message="other"))
            event.message = "second"
            store.save_event(event)
        assert [e.message for e in store.get_events()] == ["second", "other"]
        assert store.count() == 2
    finally:
        backend.close()
