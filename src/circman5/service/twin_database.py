"""The twin's database for the service: SQLite files by default, PostgreSQL by ``[database]``.

With a PostgreSQL URL the service connects and migrates at start (a server that is down, or a
schema newer than this release, stops the start with the reason), points the event manager at
PostgreSQL, keeps calibrations there (every simulation engine of the process follows the
active one in the database), saves the states ``save_state()`` saves in the spec's ``states``
table, lists every saved manufacturing model in ``models``, and gives the API a
``ScenarioManager`` and a ``UserStore`` on it; at shutdown the queued events are written and
the pool closed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from circman5.manufacturing.digital_twin.core.state_manager import StateManager
from circman5.manufacturing.digital_twin.core.twin_core import DigitalTwin
from circman5.manufacturing.digital_twin.event_notification.event_manager import event_manager
from circman5.manufacturing.digital_twin.event_notification.event_persistence import (
    EventPersistence,
)
from circman5.manufacturing.digital_twin.simulation.calibration import use_calibration_store
from circman5.storage.config import DatabaseSettings
from circman5.storage.database import TwinDatabase, open_database

if TYPE_CHECKING:
    from circman5.api.users import UserStore
    from circman5.manufacturing.digital_twin.simulation.scenario_manager import ScenarioManager

logger = logging.getLogger(__name__)

__all__ = [
    "api_database_parts",
    "calibrations_in",
    "scenario_manager_on",
    "twin_database",
    "user_store_for",
]


@contextlib.asynccontextmanager
async def twin_database(settings: DatabaseSettings) -> AsyncIterator[TwinDatabase | None]:
    """Open the configured database (None: the default SQLite files) for the service's life."""
    database = await asyncio.to_thread(open_database, settings)
    if database is None:
        yield None
        return
    # here, not at the top: the optimization package imports pandas (~35 MB an edge instance
    # without a database never needs)
    from circman5.manufacturing.optimization.model_registry import use_model_registry

    logger.info("twin database: PostgreSQL %s", database.location)
    persistence = EventPersistence(
        max_events=event_manager.setting("max_events"), store=database.events
    )
    event_manager.configure(persistence=persistence)
    use_calibration_store(database.calibrations)
    StateManager().use_store(database.states)
    use_model_registry(database.models)
    try:
        yield database
    finally:
        use_calibration_store(None)
        StateManager().use_store(None)
        use_model_registry(None)
        await asyncio.to_thread(persistence.close)
        await asyncio.to_thread(database.close)


@contextlib.contextmanager
def calibrations_in(settings: DatabaseSettings) -> Iterator[str | None]:
    """``circman5 calibrate``: calibrations saved to and read from ``[database]`` while in the
    block; where they are (None: the files of the data directory)."""
    database = open_database(settings)
    if database is None:
        yield None
        return
    use_calibration_store(database.calibrations)
    try:
        yield database.location
    finally:
        use_calibration_store(None)
        database.close()


def scenario_manager_on(database: TwinDatabase | None, twin: DigitalTwin) -> ScenarioManager | None:
    """A ScenarioManager on the shared database, simulating with the HMI adapter's engine for
    ``twin`` (None: the default SQLite file, made by the adapter on first use)."""
    if database is None:
        return None
    from circman5.manufacturing.digital_twin.simulation.scenario_manager import ScenarioManager
    from circman5.manufacturing.human_interface.adapters.digital_twin_adapter import (
        digital_twin_adapter,
    )

    digital_twin_adapter.attach(twin)
    return ScenarioManager(engine=digital_twin_adapter.simulation_engine, store=database.scenarios)


def api_database_parts(database: TwinDatabase | None, twin: DigitalTwin) -> dict[str, Any]:
    """The ``ApiContext`` fields that live in the shared database (none for the SQLite files):
    its scenario manager, its users and the processing workers' job queue."""
    if database is None:
        return {}
    from circman5.api.users import UserStore
    from circman5.storage.jobs import JobQueue
    from circman5.storage.postgres import PostgresDatabase

    parts: dict[str, Any] = {
        "scenarios": scenario_manager_on(database, twin),
        "users": UserStore(records=database.users),
    }
    if isinstance(database, PostgresDatabase):
        parts["jobs"] = JobQueue(database)
    return parts


@contextlib.contextmanager
def user_store_for(settings_file: Path | None) -> Iterator[UserStore | None]:
    """``circman5 --config FILE user ...``: the users table of the file's ``[database]`` (None:
    the users file of the data directory, as without a database)."""
    if settings_file is None:
        yield None
        return
    from circman5.api.users import UserStore
    from circman5.settings import load_settings

    database = open_database(load_settings(settings_file).database)
    if database is None:
        yield None
        return
    try:
        yield UserStore(records=database.users)
    finally:
        database.close()
