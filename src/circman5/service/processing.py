"""``circman5 run --role processing``: a processing worker on the PostgreSQL job queue.

It takes jobs from the ``jobs`` table (:mod:`circman5.storage.jobs`) and runs them here, off
the edge box: any number of workers may run at once, on any host reaching the database; a job
of a worker that dies is retried by the next one. Job kinds:

* ``scenario.run``: ``{"scenario": name or id, "steps": n (optional), "seed": n (optional)}``
  runs the stored scenario from the twin's default starting state and stores the run in
  ``simulations``; the job's result is ``{"simulation_id", "scenario", "steps", "seed",
  "kpis"}``.

The worker needs ``[database] url``: without a shared database there is no queue to share.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from typing import Any

from circman5.errors import ConfigError, InvalidInputError
from circman5.settings import Settings
from circman5.storage.database import open_database
from circman5.storage.jobs import JobQueue, JobWorker

logger = logging.getLogger(__name__)

__all__ = ["JOB_KINDS", "ProcessingWorker"]

JOB_KINDS = ("scenario.run",)


class ProcessingWorker:
    """The processing role: one :class:`JobWorker` until :meth:`stop`."""

    def __init__(self, settings: Settings, settings_file: str = "settings") -> None:
        if settings.database.url is None:
            raise ConfigError(
                settings_file,
                "database.url",
                "the processing role takes jobs from PostgreSQL: set [database] url",
            )
        self.settings = settings
        self._stop = threading.Event()

    def stop(self) -> None:
        self._stop.set()

    async def run(self) -> None:
        database = await asyncio.to_thread(open_database, self.settings.database)
        assert database is not None  # checked in __init__
        try:
            worker = await asyncio.to_thread(self._worker, database)
            logger.info("processing worker %s on %s", worker.worker_id, database.location)
            # the worker blocks in its own thread; stop() ends it after the job in hand
            await asyncio.to_thread(worker.run, self._stop)
        finally:
            await asyncio.to_thread(database.close)

    def _worker(self, database: Any) -> JobWorker:
        from circman5.manufacturing.digital_twin.core.twin_core import DigitalTwin
        from circman5.manufacturing.digital_twin.simulation.scenario_manager import (
            ScenarioManager,
        )
        from circman5.manufacturing.digital_twin.simulation.simulation_engine import (
            SimulationEngine,
        )

        twin = DigitalTwin()
        if not twin.initialize():
            raise RuntimeError("the digital twin did not initialize (see the log)")
        scenarios = ScenarioManager(
            engine=SimulationEngine(twin.state_manager), store=database.scenarios
        )

        def run_scenario(payload: dict[str, Any]) -> dict[str, Any]:
            name = payload.get("scenario")
            if not isinstance(name, str):
                raise InvalidInputError("a scenario.run job names its 'scenario'")
            run = scenarios.run_scenario(name, steps=payload.get("steps"), seed=payload.get("seed"))
            return {
                "simulation_id": run.simulation_id,
                "scenario": run.scenario.name,
                "steps": run.steps,
                "seed": run.seed,
                "kpis": run.kpis,
            }

        return JobWorker(
            JobQueue(database),
            {"scenario.run": run_scenario},
            lease_s=self.settings.database.job_lease_s,
        )
