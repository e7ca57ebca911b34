"""Fixtures of the StateManager tests: a fresh singleton per test."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from circman5.manufacturing.digital_twin.core.state_manager import StateManager
from tests.fixtures.spec_state import spec_state


@pytest.fixture(autouse=True)
def fresh_state_manager() -> Iterator[None]:
    StateManager._reset_instance()
    yield
    StateManager._reset_instance()


@pytest.fixture
def manager() -> StateManager:
    return StateManager(history_length=10, validation_level="standard")


@pytest.fixture
def sample_state() -> dict[str, Any]:
    """The state of the state-management document, section 3.1."""
    return spec_state()
