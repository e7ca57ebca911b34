"""Fixtures of the LCA tests (the root conftest gives fresh singletons): a stand-in twin, a
state with material flows."""

from __future__ import annotations

import copy
from typing import Any

import pytest

#: Material flows of one assessed period (kg) and its energy (kWh).
FLOW_STATE: dict[str, Any] = {
    "timestamp": "2025-02-24T14:30:22.123456",
    "batch_id": "B-042",
    "production_line": {"status": "running", "energy_consumption": 500.0},
    "materials": {
        "silicon_wafer": {"inventory": 850.0, "consumption": 100.0, "waste": 5.0, "recycled": 4.0},
        "solar_glass": {"inventory": 420.0, "consumption": 200.0, "waste": 10.0, "recycled": 9.0},
        "aluminum_frame": {"inventory": 77.0, "consumption": 50.0},
    },
}


class StaticTwin:
    """Anything with get_current_state() serves LCAIntegration."""

    def __init__(self, state: dict[str, Any]) -> None:
        self.state = state

    def get_current_state(self) -> dict[str, Any]:
        return copy.deepcopy(self.state)


@pytest.fixture
def flow_state() -> dict[str, Any]:
    return copy.deepcopy(FLOW_STATE)


@pytest.fixture
def static_twin(flow_state: dict[str, Any]) -> StaticTwin:
    return StaticTwin(flow_state)
