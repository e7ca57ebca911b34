"""Shared fixtures of the simulation tests: a fresh ConstantsService and the spec's state."""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from circman5.adapters.services.constants_service import ConstantsService
from circman5.manufacturing.digital_twin.simulation.simulation_engine import SimulationEngine

# The state of technical manual 4.1, with the line running.
SPEC_STATE: dict[str, Any] = {
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


def spec_state(**line: Any) -> dict[str, Any]:
    """A fresh copy of the spec's state, with ``production_line`` fields overridden."""
    state = copy.deepcopy(SPEC_STATE)
    state["production_line"].update(line)
    return state


@pytest.fixture(autouse=True)
def fresh_constants() -> Iterator[None]:
    ConstantsService._reset_instance()
    yield
    ConstantsService._reset_instance()


@pytest.fixture
def engine() -> SimulationEngine:
    return SimulationEngine(None)


@pytest.fixture
def make_state() -> Callable[..., dict[str, Any]]:
    """``make_state(temperature=30.0, ...)``: the spec's state with line fields overridden."""
    return spec_state
