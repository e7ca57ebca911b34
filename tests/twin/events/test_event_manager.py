"""EventManager: subscriptions, filters, failing handlers, threads, stored events."""

from __future__ import annotations

import itertools
import logging
import subprocess
import sys
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from circman5.errors import InvalidInputError
from circman5.manufacturing.digital_twin.event_notification.event_manager import (
    EventManager,
    event_manager,
)
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

MANAGER_LOGGER = "circman5.manufacturing.digital_twin.event_notification.event_manager"


class Recorder:
    def __init__(self) -> None:
        self.events: list[Event] = []

    def __call__(self, event: Event) -> None:
        self.events.append(event)

    def cells(self) -> set[tuple[EventCategory, EventSeverity]]:
        return {(e.category, e.severity) for e in self.events}


def publish_every_kind() -> None:
    for category, severity in itertools.product(EventCategory, EventSeverity):
        event_manager.publish(Event(category=category, severity=severity, message="m"))


ALL_CELLS = set(itertools.product(EventCategory, EventSeverity))


# -- the singleton -----------------------------------------------------------------------------


def test_the_module_singleton_is_the_class_singleton() -> None:
    assert EventManager() is event_manager
    EventManager._reset_instance()
    assert EventManager() is event_manager


def test_reset_forgets_subscribers_and_filters() -> None:
    recorder = Recorder()
    event_manager.subscribe(recorder)
    event_manager.add_filter(EventCategory.SYSTEM, lambda e: False)
    EventManager._reset_instance()
    event_manager.publish(Event(message="after reset"))
    assert recorder.events == []
    event_manager.subscribe(recorder)
    event_manager.publish(Event(message="subscribed again"))
    assert [e.message for e in recorder.events] == ["subscribed again"]


def test_importing_opens_no_file_and_starts_no_thread(tmp_path: Path) -> None:
    code = (
        "import threading\n"
        "from circman5.manufacturing.digital_twin.event_notification import "
        "event_manager, publishers, subscribers\n"
        "publishers.DigitalTwinPublisher(); subscribers.AlarmCollector()\n"
        "print(threading.active_count())\n"
    )
    env = {"CIRCMAN5_DATA_DIR": str(tmp_path / "child_data"), "PATH": ""}
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True
    )
    assert result.stdout.strip() == "1"
    assert not (tmp_path / "child_data").exists()


# -- subscriptions -----------------------------------------------------------------------------


def test_subscribe_to_a_category_gets_every_severity_of_it() -> None:
    recorder = Recorder()
    event_manager.subscribe(recorder, category=EventCategory.THRESHOLD)
    publish_every_kind()
    assert recorder.cells() == {(EventCategory.THRESHOLD, s) for s in EventSeverity}
    assert len(recorder.events) == 4


def test_subscribe_to_a_severity_gets_every_category_of_it() -> None:
    recorder = Recorder()
    event_manager.subscribe(recorder, severity=EventSeverity.CRITICAL)
    publish_every_kind()
    assert recorder.cells() == {(c, EventSeverity.CRITICAL) for c in EventCategory}
    assert len(recorder.events) == 6


def test_subscribe_to_both_gets_events_matching_both() -> None:
    recorder = Recorder()
    event_manager.subscribe(recorder, EventCategory.ERROR, EventSeverity.WARNING)
    publish_every_kind()
    assert [(e.category, e.severity) for e in recorder.events] == [
        (EventCategory.ERROR, EventSeverity.WARNING)
    ]


def test_subscribe_to_neither_gets_everything() -> None:
    recorder = Recorder()
    event_manager.subscribe(recorder)
    publish_every_kind()
    assert recorder.cells() == ALL_CELLS
    assert len(recorder.events) == len(ALL_CELLS)


def test_a_handler_subscribed_several_ways_gets_each_event_once() -> None:
    recorder = Recorder()
    event_manager.subscribe(recorder)
    event_manager.subscribe(recorder, category=EventCategory.THRESHOLD)
    event_manager.subscribe(recorder, severity=EventSeverity.WARNING)
    event_manager.subscribe(recorder, EventCategory.THRESHOLD, EventSeverity.WARNING)
    event_manager.subscribe(recorder)
    event_manager.publish(ThresholdEvent("temperature", 25.0, 26.5))
    assert len(recorder.events) == 1


def test_handlers_run_in_subscription_order() -> None:
    order: list[str] = []
    event_manager.subscribe(lambda e: order.append("first"), severity=EventSeverity.INFO)
    event_manager.subscribe(lambda e: order.append("second"))
    event_manager.subscribe(lambda e: order.append("third"), category=EventCategory.SYSTEM)
    event_manager.publish(Event())
    assert order == ["first", "second", "third"]


def test_unsubscribe_everything() -> None:
    recorder = Recorder()
    event_manager.subscribe(recorder, category=EventCategory.THRESHOLD)
    event_manager.subscribe(recorder, severity=EventSeverity.CRITICAL)
    event_manager.unsubscribe(recorder)
    publish_every_kind()
    assert recorder.events == []


def test_unsubscribe_a_category_mirrors_subscribe() -> None:
    recorder = Recorder()
    event_manager.subscribe(recorder)
    event_manager.unsubscribe(recorder, category=EventCategory.THRESHOLD)
    publish_every_kind()
    assert recorder.cells() == {c for c in ALL_CELLS if c[0] is not EventCategory.THRESHOLD}


def test_unsubscribe_a_severity_mirrors_subscribe() -> None:
    recorder = Recorder()
    event_manager.subscribe(recorder, category=EventCategory.ERROR)
    event_manager.subscribe(recorder, severity=EventSeverity.CRITICAL)
    event_manager.unsubscribe(recorder, severity=EventSeverity.CRITICAL)
    publish_every_kind()
    assert recorder.cells() == {
        (EventCategory.ERROR, s) for s in EventSeverity if s is not EventSeverity.CRITICAL
    }


def test_unsubscribe_both_removes_only_that_pair() -> None:
    recorder = Recorder()
    event_manager.subscribe(recorder, category=EventCategory.ERROR)
    event_manager.unsubscribe(recorder, EventCategory.ERROR, EventSeverity.INFO)
    publish_every_kind()
    assert recorder.cells() == {
        (EventCategory.ERROR, s) for s in EventSeverity if s is not EventSeverity.INFO
    }


def test_unsubscribe_a_bound_method_and_unknown_handlers() -> None:
    class Holder:
        def __init__(self) -> None:
            self.count = 0

        def handle(self, event: Event) -> None:
            self.count += 1

    holder = Holder()
    event_manager.subscribe(holder.handle)
    event_manager.publish(Event())
    event_manager.unsubscribe(holder.handle)  # a new bound-method object, equal to the first
    event_manager.unsubscribe(Recorder())  # never subscribed: ignored
    event_manager.publish(Event())
    assert holder.count == 1


def test_subscribe_accepts_enum_values_as_strings() -> None:
    recorder = Recorder()
    event_manager.subscribe(recorder, category="threshold")  # type: ignore[arg-type]
    publish_every_kind()
    assert len(recorder.events) == 4


@pytest.mark.parametrize(
    "kwargs",
    [{"category": "nope"}, {"severity": "loud"}],
)
def test_subscribe_rejects_unknown_categories(kwargs: dict[str, str]) -> None:
    with pytest.raises(InvalidInputError):
        event_manager.subscribe(Recorder(), **kwargs)  # type: ignore[arg-type]


def test_subscribe_rejects_non_callables() -> None:
    with pytest.raises(InvalidInputError):
        event_manager.subscribe("not callable")  # type: ignore[arg-type]


def test_publish_rejects_non_events() -> None:
    with pytest.raises(InvalidInputError):
        event_manager.publish({"message": "dict"})  # type: ignore[arg-type]


# -- filters -----------------------------------------------------------------------------------


def test_filters_stop_delivery_but_not_persistence() -> None:
    recorder = Recorder()
    event_manager.subscribe(recorder)

    def temperature_only(event: Event) -> bool:
        return event.details.get("parameter") == "temperature"

    event_manager.add_filter(EventCategory.THRESHOLD, temperature_only)
    event_manager.publish(ThresholdEvent("temperature", 25.0, 26.5))
    event_manager.publish(ThresholdEvent("humidity", 50.0, 60.0))
    event_manager.publish(Event(message="other category"))
    assert [e.message for e in recorder.events] == [
        "Threshold breach: temperature exceeded 25.0 with value 26.5",
        "other category",
    ]
    stored = event_manager.get_events(category=EventCategory.THRESHOLD)
    assert {e.details["parameter"] for e in stored} == {"temperature", "humidity"}

    event_manager.remove_filter(EventCategory.THRESHOLD, temperature_only)
    event_manager.publish(ThresholdEvent("humidity", 50.0, 61.0))
    assert recorder.events[-1].details["actual_value"] == 61.0


def test_every_filter_must_pass() -> None:
    recorder = Recorder()
    event_manager.subscribe(recorder)
    event_manager.add_filter(EventCategory.SYSTEM, lambda e: "a" in e.message)
    event_manager.add_filter(EventCategory.SYSTEM, lambda e: "b" in e.message)
    for message in ["a", "b", "ab", "c"]:
        event_manager.publish(Event(message=message))
    assert [e.message for e in recorder.events] == ["ab"]


def test_removing_an_unknown_filter_is_harmless() -> None:
    event_manager.remove_filter(EventCategory.SYSTEM, lambda e: True)
    recorder = Recorder()
    event_manager.subscribe(recorder)
    event_manager.publish(Event())
    assert len(recorder.events) == 1


def test_a_failing_filter_lets_events_through_and_is_logged_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    recorder = Recorder()
    event_manager.subscribe(recorder)

    def broken(event: Event) -> bool:
        raise KeyError("oops")

    event_manager.add_filter(EventCategory.SYSTEM, broken)
    with caplog.at_level(logging.ERROR, logger=MANAGER_LOGGER):
        for _ in range(3):
            event_manager.publish(Event())
    assert len(recorder.events) == 3
    assert len([r for r in caplog.records if "event filter" in r.getMessage()]) == 1


# -- handler failures and threads --------------------------------------------------------------


def test_a_failing_handler_does_not_stop_the_others(caplog: pytest.LogCaptureFixture) -> None:
    before, after = Recorder(), Recorder()
    calls = {"n": 0}

    def broken(event: Event) -> None:
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyError("another kind")
        raise ValueError("handler bug")

    event_manager.subscribe(before)
    event_manager.subscribe(broken)
    event_manager.subscribe(after)
    with caplog.at_level(logging.ERROR, logger=MANAGER_LOGGER):
        for _ in range(4):
            event_manager.publish(Event())
    assert len(before.events) == len(after.events) == 4
    assert event_manager.handler_errors == 4
    logged = [r for r in caplog.records if "event handler" in r.getMessage()]
    assert len(logged) == 2  # once for ValueError, once for KeyError
    assert "handler bug" in logged[0].getMessage()


def test_handlers_run_outside_the_lock() -> None:
    """A handler waiting for another thread that subscribes would deadlock under a lock."""
    finished = threading.Event()

    def handler(event: Event) -> None:
        worker = threading.Thread(
            target=lambda: (event_manager.subscribe(Recorder()), finished.set())
        )
        worker.start()
        worker.join(timeout=30)

    event_manager.subscribe(handler, category=EventCategory.PROCESS)
    event_manager.publish(Event(category=EventCategory.PROCESS))
    assert finished.is_set()


def test_publishing_from_a_handler_works() -> None:
    recorder = Recorder()

    def chain(event: Event) -> None:
        if event.category is EventCategory.THRESHOLD:
            event_manager.publish(ErrorEvent("Chained", "from a handler"))

    event_manager.subscribe(chain)
    event_manager.subscribe(recorder, category=EventCategory.ERROR)
    event_manager.publish(ThresholdEvent("temperature", 25.0, 26.5))
    assert [e.message for e in recorder.events] == ["Error: Chained - from a handler"]


@pytest.fixture
def stored_on(twin_backend: TwinBackend) -> TwinBackend:
    """The singleton's events where the service keeps them: the SQLite file of the data
    directory (the default, untouched), or PostgreSQL with ``[database] url``."""
    if twin_backend.name == "postgresql":
        twin_backend.use_for_events(event_manager, max_events=1000)
    return twin_backend


def test_publishing_from_many_threads(stored_on: TwinBackend) -> None:
    received: list[str] = []
    event_manager.subscribe(lambda e: received.append(e.event_id))
    threads_n, events_n = 8, 300
    barrier = threading.Barrier(threads_n)

    def worker(n: int) -> None:
        barrier.wait()
        for i in range(events_n):
            event_manager.publish(
                Event(category=EventCategory.PROCESS, message=f"{n}-{i}", details={"n": n})
            )

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(threads_n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    total = threads_n * events_n
    assert len(received) == len(set(received)) == total
    assert event_manager.persistence.count() == min(total, 1000)  # max_events default


def test_subscribing_while_other_threads_publish() -> None:
    stop = threading.Event()
    errors: list[BaseException] = []

    def publisher() -> None:
        try:
            while not stop.is_set():
                event_manager.publish(Event(category=EventCategory.USER))
        except BaseException as err:  # pragma: no cover - reported below
            errors.append(err)

    threads = [threading.Thread(target=publisher) for _ in range(2)]
    for thread in threads:
        thread.start()
    recorders = [Recorder() for _ in range(50)]
    for recorder in recorders:
        event_manager.subscribe(recorder, category=EventCategory.USER)
        event_manager.unsubscribe(recorder)
        event_manager.subscribe(recorder, severity=EventSeverity.INFO)
    last = Recorder()
    event_manager.subscribe(last)
    stop.set()
    for thread in threads:
        thread.join()
    event_manager.publish(Event(category=EventCategory.USER))
    assert errors == []
    assert all(r.events for r in recorders)
    assert last.events[-1].category is EventCategory.USER


# -- stored events -----------------------------------------------------------------------------


def test_get_events_newest_first_with_filters(stored_on: TwinBackend) -> None:
    for i in range(5):
        event_manager.publish(ThresholdEvent("temperature", 25.0, 26.0 + i))
        event_manager.publish(ErrorEvent("E", str(i), severity=EventSeverity.CRITICAL))
    threshold = event_manager.get_events(category=EventCategory.THRESHOLD)
    assert [e.details["actual_value"] for e in threshold] == [30.0, 29.0, 28.0, 27.0, 26.0]
    assert all(type(e) is ThresholdEvent for e in threshold)
    critical = event_manager.get_events(severity=EventSeverity.CRITICAL, limit=2)
    assert [e.details["error_message"] for e in critical] == ["4", "3"]
    both = event_manager.get_events(EventCategory.ERROR, EventSeverity.WARNING)
    assert both == []
    assert len(event_manager.get_events(limit=100)) == 10


def test_reads_see_every_event_published_before_them(stored_on: TwinBackend) -> None:
    for i in range(250):
        event_manager.publish(Event(message=str(i)))
    events = event_manager.get_events(limit=1000)
    assert len(events) == 250
    assert events[0].message == "249"


def test_stored_events_equal_the_published_ones(stored_on: TwinBackend) -> None:
    event = ThresholdEvent(
        "temperature", 25.0, 26.5, details={"nested": {"list": [1, 2.5, None, "x"]}}
    )
    event_manager.publish(event)
    (stored,) = event_manager.get_events()
    assert stored == event


def test_acknowledge_event(stored_on: TwinBackend) -> None:
    event = ThresholdEvent("temperature", 25.0, 26.5)
    event_manager.publish(event)
    assert event_manager.acknowledge_event(event.event_id) is True
    assert event_manager.acknowledge_event("event_id_123456") is False
    (stored,) = event_manager.get_events()
    assert stored.acknowledged is True


def test_clear_events(stored_on: TwinBackend) -> None:
    old = (datetime.now(UTC) - timedelta(days=40)).isoformat()
    for _ in range(3):
        event_manager.publish(Event(timestamp=old, message="old"))
    for _ in range(2):
        event_manager.publish(Event(message="new"))
    assert event_manager.clear_events(older_than_days=30) == 3
    assert [e.message for e in event_manager.get_events()] == ["new", "new"]
    assert event_manager.clear_events() == 2
    assert event_manager.get_events() == []


@pytest.mark.parametrize("days", [-1, "30", True])
def test_clear_events_rejects_bad_ages(days: object) -> None:
    with pytest.raises(InvalidInputError):
        event_manager.clear_events(older_than_days=days)  # type: ignore[arg-type]


def test_persistence_disabled_still_delivers() -> None:
    event_manager.configure(config={"persistence_enabled": False})
    recorder = Recorder()
    event_manager.subscribe(recorder)
    event_manager.publish(Event(message="not stored"))
    assert len(recorder.events) == 1
    assert event_manager.get_events() == []
    assert event_manager.persistence_enabled is False


def test_max_events_from_the_configuration() -> None:
    event_manager.configure(config={"max_events": 5})
    for i in range(12):
        event_manager.publish(Event(message=str(i)))
    assert [e.message for e in event_manager.get_events()] == ["11", "10", "9", "8", "7"]


def test_configuration_defaults_come_from_constants_service() -> None:
    config = event_manager.config
    assert config["persistence_enabled"] is True
    assert config["max_events"] == 1000
    assert event_manager.setting("default_alert_severity") == "warning"


def test_configure_overrides_only_the_given_settings() -> None:
    event_manager.configure(config={"default_alert_severity": "critical"})
    event_manager.configure(config={"max_events": 7})
    assert event_manager.setting("default_alert_severity") == "critical"
    assert event_manager.setting("max_events") == 7
    assert event_manager.setting("publish_state_changes") is True
    assert event_manager.persistence.max_events == 7


def test_default_database_is_in_the_data_dir(isolated_data_dir: Path) -> None:
    event_manager.publish(Event(message="here"))
    event_manager.flush()
    assert event_manager.persistence.db_path == isolated_data_dir / "events" / "events.db"
    assert (isolated_data_dir / "events" / "events.db").exists()


def test_the_singleton_follows_a_new_data_dir(
    isolated_data_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    event_manager.publish(Event(message="first dir"))
    other = tmp_path / "other"
    monkeypatch.setenv("CIRCMAN5_DATA_DIR", str(other))
    event_manager.publish(Event(message="second dir"))
    assert [e.message for e in event_manager.get_events()] == ["second dir"]
    first = EventPersistence(isolated_data_dir / "events" / "events.db")
    try:
        assert [e.message for e in first.get_events()] == ["first dir"]
    finally:
        first.close()


def test_configure_points_the_singleton_at_another_database(tmp_path: Path) -> None:
    event_manager.publish(Event(message="default db"))
    path = tmp_path / "custom.db"
    store = EventPersistence(path)
    try:
        event_manager.configure(persistence=store)
        event_manager.publish(Event(message="custom db"))
        assert event_manager.persistence is store
        assert [e.message for e in store.get_events()] == ["custom db"]
    finally:
        store.close()


def test_events_and_acknowledgements_survive_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "restart.db"
    store = EventPersistence(path)
    event_manager.configure(persistence=store)
    keep = ThresholdEvent("temperature", 25.0, 26.5)
    event_manager.publish(keep)
    event_manager.publish(Event(message="second"))
    assert event_manager.acknowledge_event(keep.event_id)
    EventManager._reset_instance()  # closes the database

    EventManager(persistence=EventPersistence(path))
    events = event_manager.get_events()
    assert [type(e) for e in events] == [Event, ThresholdEvent]
    assert events[1].acknowledged is True
    assert events[1].event_id == keep.event_id
