"""The simulators' plant recorded as the service records it: Samples of the PLC's tags, one
per tag and simulated second, under changing setpoints (so the dynamics can be identified)."""

from __future__ import annotations

import datetime

import numpy as np

from circman5.samples import Sample
from simulators.plant import BatchEnded, Plant, PlantConfig, PlantEvent

#: The plant's line temperature time constant while running (simulators/plant.py).
PLANT_TAU_S = 30.0
RECORDED = (
    "production_line.temperature",
    "production_line.target_temperature",
    "production_line.cycle_time",
    "production_line.production_rate",
    "production_line.energy_consumption",
    "production_line.efficiency",
    "production_line.defect_rate",
    "environment.temperature",
    "environment.humidity",
)


def record_plant(
    start: datetime.datetime,
    segments: int = 10,
    segment_s: int = 150,
    seed: int = 3,
    batch_size: int = 50,
) -> list[Sample]:
    """The plant's tags from ``start`` on, one sample per tag and simulated second, and the
    MES's modules-produced figure at each batch end (as the demo's tag map records it)."""
    now = [start]
    plant = Plant(
        PlantConfig(seed=seed, step_seconds=0.1, batch_size=batch_size), clock=lambda: now[0]
    )
    setpoints = np.random.default_rng(seed)
    samples: list[Sample] = []

    def on_event(event: PlantEvent) -> None:
        if isinstance(event, BatchEnded):
            ts = int(now[0].timestamp() * 1e9)
            produced = float(event.batch.modules_produced)
            samples.append(
                Sample(
                    "mes", "mes/line1/batch/end", "batch.completed.modules_produced", produced, ts
                )
            )

    plant.subscribe(on_event)
    for _ in range(segments):
        plant.set_setpoints(
            target_temperature=float(setpoints.uniform(19.0, 26.0)),
            cycle_time=float(setpoints.uniform(22.0, 45.0)),
        )
        for _ in range(segment_s):
            plant.advance(1.0)
            now[0] = start + datetime.timedelta(seconds=plant.elapsed)
            ts = int(now[0].timestamp() * 1e9)
            values = plant.snapshot()
            samples.append(Sample("plc", "Status", "production_line.status", "running", ts))
            samples.extend(
                Sample("plc", path, path, float(values[path]), ts)  # type: ignore[arg-type]
                for path in RECORDED
            )
    return samples
