"""docs/calibration.md: its JSON provenance example has the keys a real provenance has."""

from __future__ import annotations

import datetime
import json
import re
from pathlib import Path

from circman5.manufacturing.optimization.line_history import (
    BATCH_END_PATH,
    HISTORY_PATHS,
    train_from_line_history,
)
from circman5.manufacturing.optimization.model import ManufacturingModel
from tests.calibration.plant_history import record_plant

DOC = Path(__file__).resolve().parents[2] / "docs" / "calibration.md"


def test_the_provenance_example_matches_a_line_data_provenance() -> None:
    example = json.loads(re.findall(r"```json\n(.*?)```", DOC.read_text(), re.DOTALL)[0])
    start = datetime.datetime(2026, 12, 6, 6, tzinfo=datetime.UTC)
    samples = record_plant(start, segments=25, segment_s=60, batch_size=5)
    arrays: dict[str, tuple[list[float], list[float]]] = {}
    for s in samples:
        if s.path in (BATCH_END_PATH, *HISTORY_PATHS.values()):
            times, values = arrays.setdefault(s.path, ([], []))
            times.append(s.timestamp_ns / 1e9)
            values.append(float(s.value))  # type: ignore[arg-type]
    import numpy as np

    model = ManufacturingModel(config={"n_estimators": 10}, auto_load=False)
    provenance = train_from_line_history(
        model, {p: (np.array(t), np.array(v)) for p, (t, v) in arrays.items()}, "embedded"
    )
    assert provenance["source"] == example["source"] == "line data"
    assert set(example) == set(provenance)
    assert set(example["cv_rmse"]) == set(provenance["cv_rmse"]) == set(model.targets)
    assert provenance["batches"] >= 20
