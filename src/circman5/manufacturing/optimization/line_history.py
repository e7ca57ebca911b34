"""Training data from the line's recorded history: one row per MES batch.

The MES reports each finished batch (``batch.completed.*`` in the twin, by the tag map of the
simulators' MES and the demo configuration); the process values are recorded all the time. A
batch's row averages the process values between the previous batch end and its own end:

=================  ========================================
model name         twin path (averaged over the batch)
=================  ========================================
``temperature``    ``production_line.temperature``
``cycle_time``     ``production_line.cycle_time``
``output_amount``  ``production_line.production_rate``
``energy_used``    ``production_line.energy_consumption``
``efficiency``     ``production_line.efficiency``
``defect_rate``    ``production_line.defect_rate``
=================  ========================================

:func:`train_from_line_history` trains the model on these rows when there are at least
``TRAINING_PARAMETERS.min_samples`` batches with every feature and target, and otherwise falls
back to the synthetic data of the twin's process model, saying so in the model's provenance
(:attr:`ManufacturingModel.provenance`).
"""

from __future__ import annotations

import datetime
import logging
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from circman5.manufacturing.optimization.model import ManufacturingModel

logger = logging.getLogger(__name__)

__all__ = [
    "BATCH_END_PATH",
    "HISTORY_PATHS",
    "arrays_from_states",
    "batch_frames",
    "train_from_line_history",
]

FloatArray = NDArray[np.float64]
Arrays = Mapping[str, tuple[FloatArray, FloatArray]]

#: A batch end: the MES's modules-produced figure of a finished batch.
BATCH_END_PATH = "batch.completed.modules_produced"
#: Model name -> twin path.
HISTORY_PATHS: dict[str, str] = {
    "temperature": "production_line.temperature",
    "cycle_time": "production_line.cycle_time",
    "output_amount": "production_line.production_rate",
    "energy_used": "production_line.energy_consumption",
    "efficiency": "production_line.efficiency",
    "defect_rate": "production_line.defect_rate",
}
_QUALITY = ("efficiency", "defect_rate")


def _iso(seconds: float) -> str:
    return datetime.datetime.fromtimestamp(seconds, datetime.UTC).isoformat()


def batch_frames(
    arrays: Arrays, batch_end_path: str = BATCH_END_PATH
) -> tuple[pd.DataFrame, pd.DataFrame, tuple[str, str] | None]:
    """``(production, quality, window)``: one row per batch end after the first (the first
    only opens the window), and the time window the rows cover (None without batches)."""
    ends = arrays.get(batch_end_path)
    rows: list[dict[str, Any]] = []
    window: tuple[str, str] | None = None
    if ends is not None and len(ends[0]) >= 2:
        end_times = np.unique(ends[0])
        for i in range(1, end_times.shape[0]):
            start, end = float(end_times[i - 1]), float(end_times[i])
            row: dict[str, Any] = {"batch_id": f"batch_{i:05d}_{_iso(end)}"}
            for name, path in HISTORY_PATHS.items():
                series = arrays.get(path)
                if series is None:
                    continue
                times, values = series
                inside = (times > start) & (times <= end)
                if inside.any():
                    row[name] = float(np.mean(values[inside]))
                else:  # no sample in the batch: the value held from before
                    before = np.searchsorted(times, start, side="right") - 1
                    if before >= 0:
                        row[name] = float(values[before])
            rows.append(row)
        if rows:
            window = (_iso(float(end_times[0])), _iso(float(end_times[-1])))
    frame = pd.DataFrame(rows)
    if frame.empty:
        frame = pd.DataFrame({"batch_id": pd.Series(dtype=str)})
    quality_columns = ["batch_id", *(c for c in _QUALITY if c in frame.columns)]
    production_columns = [c for c in frame.columns if c not in _QUALITY]
    return frame[production_columns], frame[quality_columns], window


def arrays_from_states(
    states: Iterable[Mapping[str, Any]], paths: Iterable[str]
) -> dict[str, tuple[FloatArray, FloatArray]]:
    """Numeric values of dotted ``paths`` in twin states (with ISO ``timestamp``), as arrays."""
    wanted = [(p, p.split(".")) for p in paths]
    columns: dict[str, tuple[list[float], list[float]]] = {}
    for state in states:
        stamp = state.get("timestamp")
        if not isinstance(stamp, str):
            continue
        try:
            moment = datetime.datetime.fromisoformat(stamp)
        except ValueError:
            continue
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=datetime.UTC)
        t = moment.timestamp()
        for path, parts in wanted:
            node: Any = state
            for part in parts:
                node = node.get(part) if isinstance(node, Mapping) else None
            if isinstance(node, int | float) and not isinstance(node, bool):
                times, values = columns.setdefault(path, ([], []))
                if not times or times[-1] != t or values[-1] != float(node):
                    times.append(t)
                    values.append(float(node))
    return {
        p: (np.asarray(t, dtype=np.float64), np.asarray(v, dtype=np.float64))
        for p, (t, v) in columns.items()
    }


def train_from_line_history(
    model: ManufacturingModel, arrays: Arrays, source: str = "history"
) -> dict[str, Any]:
    """Train ``model`` on the line's batches when there are enough, else on synthetic data;
    returns the model's provenance (``fallback_reason`` says why synthetic data was used)."""
    production, quality, window = batch_frames(arrays)
    config = model.settings.MODEL_CONFIG
    needed = [*config.features, *config.targets]
    merged = production.merge(quality, on="batch_id") if not production.empty else production
    missing = [c for c in needed if c not in merged.columns]
    usable = 0 if missing else int(merged[needed].notna().all(axis=1).sum())
    minimum = max(model.settings.TRAINING_PARAMETERS.min_samples, 2)
    if usable >= minimum and window is not None:
        model.train_on_line_history(
            production, quality, window=window, batches=len(merged), source_name=source
        )
    else:
        reason = (
            f"the {source} history lacks {missing}"
            if missing and len(merged)
            else f"{usable} complete batches in the {source} history; {minimum} are needed"
        )
        logger.info("model trained on synthetic data: %s", reason)
        model.train_on_synthetic_data(fallback_reason=reason)
    return model.provenance
