"""Shared fixtures of the simulation tests: a fresh ConstantsService and the spec's state."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from circman5.adapters.services.constants_service import ConstantsService
from circman5.manufacturing.digital_twin.simulation.simulation_engine import SimulationEngine
from tests.fixtures.spec_state import spec_state  # the state of technical manual 4.1

__all__ = ["spec_state"]


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
