"""Batch tracking: turns the MES's batch-end and per-batch material messages into one batch.

The MES reports a finished batch on one topic (batch id, modules produced, energy) and the
material consumption of that batch on one topic per material, right after. The tag map puts
them into the twin (by default ``batch.completed.*`` and ``materials.<m>.{batch_id, consumption,
waste, recycled}``). The tracker watches the updates the synchronization engine applies, waits
``settle_s`` after a batch end for its material messages, and hands the whole batch to
:meth:`BatchFootprint.on_batch_end` (carbon footprint KPI + event).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from circman5.quantities import finite_number
from circman5.settings import BatchTrackingSettings
from circman5.state_paths import value_at
from circman5.twin_update import TwinUpdate

logger = logging.getLogger(__name__)

MATERIAL_FIELDS = ("consumption", "waste", "recycled")


@dataclass
class _Batch:
    batch_id: str
    ended_at: float
    modules_produced: float | None = None
    energy_kwh: float | None = None
    materials: dict[str, dict[str, float]] = field(default_factory=dict)


def _branch(update: TwinUpdate, dotted: str) -> Mapping[str, Any] | None:
    node = value_at(update.nested, dotted)
    return node if isinstance(node, Mapping) else None


class BatchTracker:
    """Collects a batch's end and material messages; calls ``on_batch_end(batch)`` once each."""

    def __init__(
        self,
        settings: BatchTrackingSettings,
        on_batch_end: Callable[[Mapping[str, Any]], object],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings = settings
        self._on_batch_end = on_batch_end
        self._clock = clock
        self._open: dict[str, _Batch] = {}
        self._early: dict[str, dict[str, dict[str, float]]] = {}
        self._done: set[str] = set()
        self.completed = 0

    def on_update(self, update: TwinUpdate) -> None:
        """An update listener of the synchronization engine (runs on the event loop)."""
        completed = _branch(update, self.settings.completed_section)
        if completed is not None:
            batch_id = completed.get("batch_id")
            if isinstance(batch_id, str) and batch_id and batch_id not in self._done:
                batch = self._open.setdefault(batch_id, _Batch(batch_id, self._clock()))
                batch.modules_produced = finite_number(completed.get("modules_produced"))
                batch.energy_kwh = finite_number(completed.get("energy_kwh"))
                batch.materials.update(self._early.pop(batch_id, {}))
        materials = _branch(update, self.settings.materials_section)
        if materials is None:
            return
        for name, values in materials.items():
            if not isinstance(values, Mapping):
                continue
            batch_id = values.get("batch_id")
            if not isinstance(batch_id, str) or batch_id in self._done:
                continue
            record = {
                k: v for k in MATERIAL_FIELDS if (v := finite_number(values.get(k))) is not None
            }
            if not record:
                continue
            if batch_id in self._open:
                self._open[batch_id].materials[name] = record
            else:  # the material message came first: keep it for the batch end
                self._early.setdefault(batch_id, {})[name] = record

    def flush_due(self) -> int:
        """Finish every batch whose settle time has passed; returns how many."""
        now = self._clock()
        due = [b for b in self._open.values() if now - b.ended_at >= self.settings.settle_s]
        for batch in due:
            del self._open[batch.batch_id]
            self._done.add(batch.batch_id)
            record: dict[str, Any] = {
                "batch_id": batch.batch_id,
                "modules_produced": batch.modules_produced or 0,
                "materials": batch.materials,
            }
            if batch.energy_kwh is not None:
                record["energy_kwh"] = batch.energy_kwh
            self._on_batch_end(record)
            self.completed += 1
        if len(self._done) > 10_000:
            self._done.clear()
        return len(due)

    async def run(self) -> None:
        """Check for settled batches twice a second (a supervised service component)."""
        while True:
            await asyncio.sleep(0.5)
            self.flush_due()
