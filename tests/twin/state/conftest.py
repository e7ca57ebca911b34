"""Fixtures of the StateManager tests: a fresh singleton per test."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from circman5.manufacturing.digital_twin.core.state_manager import StateManager


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
    return {
        "timestamp": "2025-02-24T14:30:22.123456",
        "system_status": "running",
        "production_line": {
            "status": "running",
            "temperature": 22.5,
            "energy_consumption": 120.5,
            "production_rate": 8.3,
            "efficiency": 0.92,
            "defect_rate": 0.02,
        },
        "materials": {
            "silicon_wafer": {"inventory": 850, "quality": 0.95},
            "solar_glass": {"inventory": 420, "quality": 0.98},
        },
        "environment": {"temperature": 22.0, "humidity": 45.0},
    }
