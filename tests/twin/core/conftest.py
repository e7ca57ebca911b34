"""Fixtures of the twin core tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from circman5.manufacturing.digital_twin.event_notification.event_manager import event_manager
from circman5.manufacturing.digital_twin.event_notification.event_types import Event


@pytest.fixture
def captured() -> Iterator[list[Event]]:
    """Every event the event manager dispatches during the test."""
    events: list[Event] = []
    event_manager.subscribe(events.append)
    yield events
    event_manager.unsubscribe(events.append)
