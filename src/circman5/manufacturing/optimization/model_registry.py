"""Where saved manufacturing models are listed: with ``[database] url`` a ``models`` row per
:meth:`~.model.ManufacturingModel.save_model` (the service sets it with
:func:`use_model_registry`); without, the metadata is only in each model file.
"""

from __future__ import annotations

import datetime
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from circman5.storage.contracts import ModelRecords, ModelRow

__all__ = ["record_saved_model", "saved_models", "use_model_registry"]

_registry: ModelRecords | None = None


def use_model_registry(registry: ModelRecords | None) -> None:
    """List this process's saved models in ``registry`` (None: nowhere but the files)."""
    global _registry
    _registry = registry


def _json(value: Any) -> str:
    return json.dumps(value, default=str, allow_nan=True)


def record_saved_model(path: Path, artifact: Mapping[str, Any]) -> int | None:
    """Record the model just written to ``path``; its row id (None: no registry). Raises
    :class:`~circman5.errors.StorageError` when the database fails."""
    registry = _registry
    if registry is None:
        return None
    row = ModelRow(
        id=0,
        saved_at=datetime.datetime.now(datetime.UTC).isoformat(),
        artifact=str(path),
        features=_json(list(artifact["features"])),
        targets=_json(list(artifact["targets"])),
        metrics=_json(artifact["metrics"]),
        source=str(artifact["source"]),
        trained_at=str(artifact["trained_at"]),
        provenance=_json(artifact["provenance"]),
    )
    return registry.record(row)


def saved_models(limit: int = 20) -> list[dict[str, Any]]:
    """The newest saved models in the registry, as plain dicts (empty without one)."""
    registry = _registry
    if registry is None:
        return []
    return [
        {
            "id": row.id,
            "saved_at": row.saved_at,
            "artifact": row.artifact,
            "features": json.loads(row.features),
            "targets": json.loads(row.targets),
            "metrics": json.loads(row.metrics),
            "source": row.source,
            "trained_at": row.trained_at,
            "provenance": json.loads(row.provenance),
        }
        for row in registry.list_recent(limit)
    ]
