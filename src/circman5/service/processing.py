"""``circman5 run --role processing``: a processing worker on the PostgreSQL job queue.

It takes jobs from the ``jobs`` table (:mod:`circman5.storage.jobs`) and runs them here, off
the edge box: any number of workers may run at once, on any host reaching the database; a job
of a worker that dies is retried by the next one. The API queues them (``POST /api/jobs``).
Job kinds (each payload may carry ``initial_state``, a line's twin state to start from, with
its ``site`` and ``line``: the API adds it from the line's MQTT state topic; without it the run
starts from the twin's default starting state):

* ``scenario.run``: ``{"scenario": name or id, "steps": n (optional), "seed": n (optional)}``
  runs the stored scenario (with the database's active calibration, as the API's runs) and
  stores the run in ``simulations``; the job's result is
  ``{"simulation_id", "scenario", "steps", "seed", "kpis", "site", "line"}``.
* ``simulation.monte_carlo``: ``{"steps", "iterations", "uncertainty", "parameters", "seed"}``
  (all optional) -> the Monte Carlo summary (mean and 5/50/95 % bands per path, breach
  probabilities against the twin's thresholds), as ``POST /api/simulate/monte-carlo``.

The worker needs ``[database] url``: without a shared database there is no queue to share.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Mapping
from typing import Any

from circman5.errors import ConfigError, InvalidInputError
from circman5.service.roles import role_parts
from circman5.settings import Settings
from circman5.storage.database import TwinDatabase, open_database
from circman5.storage.jobs import Handler, JobQueue, JobWorker

logger = logging.getLogger(__name__)

__all__ = ["JOB_KINDS", "ProcessingWorker"]

JOB_KINDS = ("scenario.run", "simulation.monte_carlo")
#: The connections a worker holds at once (see :class:`~circman5.storage.jobs.JobWorker`).
MIN_CONNECTIONS = 3


class ProcessingWorker:
    """The processing role: one :class:`JobWorker` until :meth:`stop`."""

    def __init__(self, settings: Settings, settings_file: str = "settings") -> None:
        role_parts("processing", settings, settings_file)  # ConfigError without a database
        if settings.database.max_connections < MIN_CONNECTIONS:
            raise ConfigError(
                settings_file,
                "database.max_connections",
                f"a processing worker needs at least {MIN_CONNECTIONS} (listening for jobs, "
                f"claiming and recording, the lease's heartbeat), got "
                f"{settings.database.max_connections}",
            )
        self.settings = settings
        self._stop = threading.Event()

    def stop(self) -> None:
        self._stop.set()

    async def run(self) -> None:
        from circman5.manufacturing.digital_twin.simulation.calibration import (
            use_calibration_store,
        )

        database = await asyncio.to_thread(open_database, self.settings.database)
        assert database is not None  # checked in __init__
        # the runs use the active calibration of the shared database, as the API's runs do
        use_calibration_store(database.calibrations)
        try:
            worker = await asyncio.to_thread(self._worker, database)
            logger.info("processing worker %s on %s", worker.worker_id, database.location)
            # the worker blocks in its own thread; stop() ends it after the job in hand
            await asyncio.to_thread(worker.run, self._stop)
        finally:
            use_calibration_store(None)
            await asyncio.to_thread(database.close)

    def _worker(self, database: Any) -> JobWorker:
        return JobWorker(
            JobQueue(database),
            job_handlers(database),
            lease_s=self.settings.database.job_lease_s,
        )


def _initial_state(payload: Mapping[str, Any]) -> dict[str, Any] | None:
    state = payload.get("initial_state")
    if state is not None and not isinstance(state, dict):
        raise InvalidInputError("a job's 'initial_state' is a JSON object (a twin state)")
    return state


def job_handlers(database: TwinDatabase) -> dict[str, Handler]:
    """The handler of each kind in :data:`JOB_KINDS`, on one twin and the shared database."""
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
    engine = SimulationEngine(twin.state_manager)
    scenarios = ScenarioManager(engine=engine, store=database.scenarios)

    def run_scenario(payload: dict[str, Any]) -> dict[str, Any]:
        name = payload.get("scenario")
        if not isinstance(name, str):
            raise InvalidInputError("a scenario.run job names its 'scenario'")
        run = scenarios.run_scenario(
            name,
            steps=payload.get("steps"),
            initial_state=_initial_state(payload),
            seed=payload.get("seed"),
        )
        return {
            "simulation_id": run.simulation_id,
            "scenario": run.scenario.name,
            "steps": run.steps,
            "seed": run.seed,
            "kpis": run.kpis,
            "site": payload.get("site"),
            "line": payload.get("line"),
        }

    def run_monte_carlo(payload: dict[str, Any]) -> dict[str, Any]:
        summary = engine.run_monte_carlo_summary(
            steps=payload.get("steps", 10),
            initial_state=_initial_state(payload),
            parameters=payload.get("parameters") or None,
            iterations=payload.get("iterations", 100),
            uncertainty=payload.get("uncertainty", 0.1),
            seed=payload.get("seed"),
            thresholds=twin.thresholds,
        )
        result: dict[str, Any] = summary.to_dict()
        result.update(site=payload.get("site"), line=payload.get("line"))
        return result

    return {"scenario.run": run_scenario, "simulation.monte_carlo": run_monte_carlo}
