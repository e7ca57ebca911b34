"""The simulators' plant recorded as the service records it: Samples of the PLC's tags, one
per tag and simulated second, under changing setpoints (so the dynamics can be identified)."""

from __future__ import annotations

import datetime

import numpy as np

from circman5.connectors.sample import Sample
from simulators.plant import Plant, PlantConfig

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
    start: datetime.datetime, segments: int = 10, segment_s: int = 150, seed: int = 3
) -> list[Sample]:
    """The plant's tags from ``start`` on, one sample per tag and simulated second."""
    now = [start]
    plant = Plant(PlantConfig(seed=seed, step_seconds=0.1), clock=lambda: now[0])
    setpoints = np.random.default_rng(seed)
    samples: list[Sample] = []
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
