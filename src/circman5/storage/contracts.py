"""The repositories of the twin's database, as Protocol classes both backends implement.

Rows are plain values (strings, numbers, JSON text), not the twin's classes: the twin converts.
Every method raises :class:`~circman5.errors.StorageError` when the database fails. Each
repository is safe to call from several threads.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Literal, NamedTuple, Protocol

__all__ = [
    "CalibrationStore",
    "EventRow",
    "EventStore",
    "ModelRecords",
    "ModelRow",
    "ScenarioRow",
    "ScenarioStore",
    "SimulationRow",
    "StateRow",
    "StateStore",
    "UserRecords",
    "UserRow",
    "WriteOutcome",
]


class EventRow(NamedTuple):
    """A stored event as read back (``details`` is its JSON text)."""

    event_id: str
    timestamp: str
    category: str
    severity: str
    source: str
    message: str
    details: str
    acknowledged: bool
    event_type: str


class EventStore(Protocol):
    """The ``events`` table (technical manual 11.2).

    ``insert`` takes rows serialized as JSON arrays ``[event_id, timestamp, epoch seconds,
    category, severity, source, message, details (its JSON text, a string), acknowledged (0/1),
    event_type]``
    and stores them in one transaction, in order; an event id stored before (or earlier in the
    same batch) is replaced, and the replacement counts as the newest event. With
    ``keep_newest``, the same transaction then deletes all but the newest ``keep_newest``
    events, and with ``acknowledge`` marks that event acknowledged (one commit for all; the
    result: whether the acknowledged event was found, False without ``acknowledge``).
    """

    @property
    def location(self) -> str:
        """Where the events live, for messages (a file path or a DSN without password)."""
        ...

    def insert(
        self, rows: Sequence[bytes], keep_newest: int | None = None, acknowledge: str | None = None
    ) -> bool: ...

    def retain(self, max_events: int) -> None:
        """Delete all but the newest ``max_events`` events."""
        ...

    def select(
        self, category: str | None, severity: str | None, limit: int | None
    ) -> list[EventRow]:
        """Events newest first, optionally of one category and/or severity."""
        ...

    def acknowledge(self, event_id: str) -> bool: ...

    def delete(self, older_than_epoch: float | None) -> int:
        """Delete every event, or those with an epoch timestamp below the bound; how many."""
        ...

    def count(self) -> int: ...

    def close(self) -> None:
        """Release connections (a later call opens them again)."""
        ...


class ScenarioRow(NamedTuple):
    """A stored scenario (``parameters`` is JSON text; times are ISO 8601 strings)."""

    id: str
    name: str
    description: str
    parameters: str
    created_at: str
    updated_at: str


class SimulationRow(NamedTuple):
    """A stored simulation run (``parameters`` and ``results`` are JSON text)."""

    id: str
    timestamp: str
    parameters: str
    results: str
    duration: float
    steps: int


#: The result of a write that checks a rule inside its transaction.
WriteOutcome = Literal["ok", "duplicate", "limit", "missing"]


class ScenarioStore(Protocol):
    """The ``scenarios`` and ``simulations`` tables (technical manual 11.2)."""

    @property
    def location(self) -> str: ...

    def create(self, row: ScenarioRow, max_scenarios: int) -> WriteOutcome:
        """Insert unless ``max_scenarios`` exist (``limit``) or the name is taken
        (``duplicate``); checked and inserted in one transaction."""
        ...

    def list_all(self) -> list[ScenarioRow]:
        """Every scenario, oldest first."""
        ...

    def get(self, name_or_id: str) -> ScenarioRow | None:
        """The scenario with that name, else the one with that id."""
        ...

    def update(self, row: ScenarioRow) -> WriteOutcome:
        """Replace name, description, parameters and updated_at of scenario ``row.id``
        (``duplicate``: another scenario has the name; ``missing``: no such id)."""
        ...

    def delete(self, name_or_id: str) -> bool: ...

    def save_simulation(self, row: SimulationRow) -> None: ...

    def list_simulations(self, limit: int) -> list[SimulationRow]:
        """The newest runs first (``results`` left empty)."""
        ...

    def get_simulation(self, simulation_id: str) -> SimulationRow | None: ...

    def close(self) -> None: ...


class UserRow(NamedTuple):
    """A user of the API/HMI as stored (an argon2 hash, never the password)."""

    username: str
    role: str
    password_hash: str
    created_at: str
    updated_at: str
    #: The sites the user sees, as a JSON list (None: every site).
    sites: str | None = None


class UserRecords(Protocol):
    """The ``users`` table (the standalone deployment keeps ``api/users.json`` instead)."""

    @property
    def location(self) -> str: ...

    def list_all(self) -> list[UserRow]:
        """Every user, by name."""
        ...

    def get(self, username: str) -> UserRow | None: ...

    def insert(self, row: UserRow) -> WriteOutcome:
        """``duplicate`` when the name is taken."""
        ...

    def update(self, row: UserRow) -> WriteOutcome:
        """Replace role, hash, updated_at and sites (``missing``: no such user)."""
        ...

    def delete(self, username: str) -> bool: ...


class CalibrationStore(Protocol):
    """Saved calibrations, numbered 1, 2, 3, ... as JSON documents, and the active one.

    The standalone files (``<data dir>/calibrations``) or PostgreSQL's ``calibrations``
    tables. A broken document or pointer raises :class:`~circman5.errors.ConfigError` naming
    where it is; a database that fails, :class:`~circman5.errors.StorageError`.
    """

    @property
    def location(self) -> str: ...

    def versions(self) -> list[int]:
        """The saved versions, ascending."""
        ...

    def document(self, version: int) -> str | None:
        """The JSON text of one version (None: no such version)."""
        ...

    def add(self, document_for: Callable[[int], str], activate: bool) -> int:
        """Save the document ``document_for(version)`` as the next version (and make it the
        active one); the version. Two writers at once get different versions."""
        ...

    def activate(self, version: int) -> bool:
        """Make a saved version the active one (False: no such version)."""
        ...

    def active_version(self) -> int | None: ...

    def active_stamp(self) -> object | None:
        """A cheap marker that changes whenever the active version is set (None: none)."""
        ...

    def where(self, version: int) -> str:
        """Where one version is, for messages."""
        ...


class StateRow(NamedTuple):
    """A saved twin state (the ``states`` table of technical manual 11.2): ``state_data`` is
    the state's JSON text, ``version`` the format of that text."""

    id: int
    timestamp: str
    state_data: str
    batch_id: str | None
    version: int


class StateStore(Protocol):
    """Saved twin states, newest last (PostgreSQL's ``states``; without a database the twin
    keeps its one export file, ``<data dir>/digital_twin/state.json``)."""

    @property
    def location(self) -> str: ...

    def save(self, timestamp: str, state_data: str, batch_id: str | None, version: int) -> int:
        """Store one state; its id (ascending)."""
        ...

    def latest(self) -> StateRow | None:
        """The state saved last (None: none yet)."""
        ...

    def get(self, state_id: int) -> StateRow | None: ...

    def count(self) -> int: ...


class ModelRow(NamedTuple):
    """What is known of one saved manufacturing model: where its artifact was written and its
    metadata (``features``, ``targets``, ``metrics`` and ``provenance`` as JSON text)."""

    id: int
    saved_at: str
    artifact: str
    features: str
    targets: str
    metrics: str
    source: str
    trained_at: str
    provenance: str


class ModelRecords(Protocol):
    """The ``models`` table: one row per saved model, newest last (PostgreSQL only: without a
    database the metadata lives in the model file itself)."""

    @property
    def location(self) -> str: ...

    def record(self, row: ModelRow) -> int:
        """Store ``row`` (its ``id`` is ignored); the new id."""
        ...

    def list_recent(self, limit: int) -> list[ModelRow]:
        """The newest rows first."""
        ...
