"""Fixtures of the AI tests (the root conftest gives fresh singletons): a small model trained
once, a running twin."""

from __future__ import annotations

from typing import Any

import pytest

from circman5.adapters.services.constants_service import ConstantsService
from circman5.manufacturing.digital_twin.core.twin_core import DigitalTwin
from circman5.manufacturing.optimization.model import ManufacturingModel

#: A model small enough to train in a fraction of a second (the default is 100 trees x 400 rows).
SMALL: dict[str, Any] = {"n_estimators": 40, "synthetic_samples": 160, "cv_folds": 3}


@pytest.fixture
def reset_singletons() -> None:
    """The name the spec's integration test (technical manual 13.4) uses."""


@pytest.fixture(scope="session")
def small_config() -> dict[str, Any]:
    return dict(SMALL)


@pytest.fixture(scope="session")
def trained_model() -> ManufacturingModel:
    """Trained once on the twin's synthetic data; tests must not retrain or reload it."""
    ConstantsService._reset_instance()  # the spec defaults, whatever ran before
    model = ManufacturingModel(config=SMALL, auto_load=False)
    model.train_on_synthetic_data()
    ConstantsService._reset_instance()
    return model


@pytest.fixture
def twin() -> DigitalTwin:
    twin = DigitalTwin()
    assert twin.initialize()
    return twin
