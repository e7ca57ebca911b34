"""Fixtures of the event tests: the event manager singleton reset around every test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from circman5.manufacturing.digital_twin.event_notification.event_manager import (
    EventManager,
    event_manager,
)
from circman5.manufacturing.digital_twin.event_notification.event_persistence import (
    EventPersistence,
)
from tests.fixtures.databases import TwinBackend


@pytest.fixture(autouse=True)
def fresh_event_manager() -> Iterator[EventManager]:
    """The singleton, with no subscribers, filters or configuration, on the test's data dir."""
    EventManager._reset_instance()
    yield event_manager
    EventManager._reset_instance()


@pytest.fixture
def store(twin_backend: TwinBackend) -> EventPersistence:
    """An event store on each backend (SQLite file, PostgreSQL): the test runs twice."""
    return twin_backend.events(max_events=10_000)
