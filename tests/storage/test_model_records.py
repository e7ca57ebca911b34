"""Model metadata on both backends: every ``save_model`` is a ``models`` row in PostgreSQL
(another process reads it); without a database the model file alone holds it, as before."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from circman5.manufacturing.optimization.model import ManufacturingModel
from circman5.manufacturing.optimization.model_registry import saved_models, use_model_registry
from tests.ai.conftest import SMALL
from tests.fixtures.databases import TwinBackend


@pytest.fixture(scope="module")
def trained_model() -> ManufacturingModel:
    model = ManufacturingModel(config=SMALL, auto_load=False)
    model.train_on_synthetic_data()
    return model


@pytest.fixture
def registry_on(twin_backend: TwinBackend) -> Iterator[TwinBackend]:
    use_model_registry(twin_backend.models())
    yield twin_backend
    use_model_registry(None)


def test_saved_models_are_listed_where_the_deployment_keeps_them(
    registry_on: TwinBackend, trained_model: ManufacturingModel, isolated_data_dir: Path
) -> None:
    assert trained_model.save_model("first.joblib")
    assert trained_model.save_model("second.joblib")
    assert (isolated_data_dir / "models" / "second.joblib").is_file()  # the artifact: a file
    listed = saved_models()
    if registry_on.name == "sqlite":
        assert listed == []
        return
    assert [Path(m["artifact"]).name for m in listed] == ["second.joblib", "first.joblib"]
    newest = listed[0]
    assert newest["features"] == list(trained_model.features)
    assert newest["targets"] == list(trained_model.targets)
    assert newest["metrics"] == pytest.approx(trained_model.metrics)
    assert newest["source"] == trained_model.training_source
    assert newest["provenance"]["source"] == trained_model.provenance["source"]
    other_process = registry_on.models()  # a new pool on the same database
    assert other_process is not None
    assert [row.id for row in other_process.list_recent(5)] == [m["id"] for m in listed]
