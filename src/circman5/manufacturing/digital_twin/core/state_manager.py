"""The digital twin's state: the current snapshot, a bounded history, validation, persistence.

Why this module is long: the spec's StateManager singleton (state-management document) with its
documented methods: snapshot, history, validation and persistence act on one lock and one history.

The StateManager is the singleton of the state-management document (``StateManager()`` always
returns the same object; ``StateManager._reset_instance()`` / ``_reset()`` forget it in tests).

Snapshots are immutable
-----------------------
Every state the manager holds is a *snapshot*: a tree of plain ``dict``/``list`` values that is
never modified after it was stored. An update copies only the dicts along the paths it changes
(structural sharing) and puts the previous top-level dict into the history by reference, so an
update costs a few microseconds whatever the size of the state. Consequences for callers:

* ``get_current_state()``, ``get_history()`` and ``get_state_at_time()`` return *copies* (a fast
  recursive dict/list copy): mutate them freely, the twin is not affected.
* ``snapshot()``, ``history_snapshots()``, the ``StateUpdate`` returned by ``apply_update()`` and
  the snapshot returned by ``commit()`` give the internal snapshots without copying, for the twin
  core's hot path. They are typed ``Mapping`` and must never be mutated.

The merge itself (validation, copying, stamping) is :mod:`.state_merge`.

The history is compact: when an update replaces a big all-float section (a thousand tags of a
line), the state leaving for the history keeps that section packed in an array
(:mod:`~circman5.manufacturing.digital_twin.core.packed_history`, 8 bytes per value instead of
about 70). ``history_snapshots()`` and the copying readers unpack it, so callers always see
plain dicts.

Values are normalised when stored: tuples become lists, numpy scalars and arrays become Python
numbers and lists, ``datetime`` timestamps become ISO strings. Dict keys must be strings.

Timestamps
----------
Every stored state has a top-level ``"timestamp"`` ISO 8601 string. ``set_state`` and
``update_state`` stamp the current time (as ``datetime.now(UTC).isoformat()``, with an explicit
``+00:00`` offset, always with microseconds) when the state or the update has none; an update
without a timestamp is a new state *now*. Timestamps with an offset are exact; timestamps
without one are read as local time (Python's convention, and what ``datetime.now().isoformat()``
in the spec's examples produces). ``get_state_at_time`` reads its argument the same way.

Validation levels (``STATE_MANAGEMENT.validation_level``)
---------------------------------------------------------
``basic``: the state is a dict with string keys; the timestamp, if present, is ISO 8601 (or a
``datetime``); every value is JSON-compatible; every number is finite (no NaN or infinity;
``bool`` is fine); the known sections ``production_line``, ``materials`` and ``environment``
are dicts.
``standard`` (default): also the documented fields have the documented types: ``system_status``
and ``production_line.status`` are strings; temperatures, energy consumption, production rate,
efficiency, defect rate, inventories, qualities and humidity are numbers (or ``None``).
``strict``: also their ranges: fractions (efficiency, defect rate, quality) in [0, 1], humidity
in [0, 100], energy consumption, production rate and inventory not negative.

An update validates only the leaves it changes. A state or update that fails validation is
rejected as a whole and the current state stays untouched.
"""

from __future__ import annotations

import bisect
import itertools
import json
import logging
import math
import os
import threading
from collections import deque
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Any, NamedTuple, Protocol

from circman5 import paths
from circman5.errors import ConfigError, InvalidInputError, StateValidationError, StorageError
from circman5.files import atomic_write
from circman5.manufacturing.digital_twin.core.packed_history import (
    KeyCache,
    PackedState,
    pack,
    unpack,
)
from circman5.manufacturing.digital_twin.core.state_merge import (
    KNOWN_SECTIONS,
    copy_tree,
    merge_top,
    parse_time,
)
from circman5.singleton import Singleton
from circman5.storage.contracts import StateStore

logger = logging.getLogger(__name__)

__all__ = ["KNOWN_SECTIONS", "VALIDATION_LEVELS", "StateManager", "StateUpdate"]

VALIDATION_LEVELS: tuple[str, ...] = ("basic", "standard", "strict")

DEFAULT_HISTORY_LENGTH = 1000
DEFAULT_VALIDATION_LEVEL = "standard"
EXPORT_FILE_PARTS: tuple[str, str] = ("digital_twin", "state.json")
#: The ``version`` of a saved state's JSON text (the ``states`` table).
STATE_FORMAT = 1


def _batch_id(state: Mapping[str, Any]) -> str | None:
    """The batch a state was saved in: ``batch_id`` at the top or in ``production_line``."""
    line = state.get("production_line")
    for value in (state.get("batch_id"), line.get("batch_id") if isinstance(line, dict) else None):
        if isinstance(value, str | int) and not isinstance(value, bool):
            return str(value)
    return None


class _ConfigSource(Protocol):
    def get_digital_twin_config(self) -> Mapping[str, Any]: ...


class StateUpdate(NamedTuple):
    """The result of :meth:`StateManager.apply_update`.

    ``snapshot`` is the new current state (internal, must not be mutated); ``paths`` are the
    dotted paths of the leaves the update set (``"production_line.temperature"``), in update
    order, each once, without the top-level ``timestamp``; ``epoch`` is the state's timestamp in
    seconds since the epoch.
    """

    snapshot: Mapping[str, Any]
    paths: list[str]
    epoch: float


# -- the manager ---------------------------------------------------------------------------------


class StateManager(Singleton):
    """Thread-safe singleton holding the twin's current state and its bounded history.

    ``StateManager(history_length=None, constants=None, validation_level=None)``: values not
    given come from ``constants.get_digital_twin_config()["STATE_MANAGEMENT"]`` (default: the
    ``ConstantsService`` singleton). Calling the constructor again returns the same manager; a
    different ``history_length`` then resizes the history (keeping the most recent states).
    """

    _reconfigurable = True  # StateManager(history_length=n) again resizes the history

    def __init__(
        self,
        history_length: int | None = None,
        constants: _ConfigSource | None = None,
        validation_level: str | None = None,
    ) -> None:
        with self._init_lock:
            if self._constructed:
                if history_length is not None and history_length != self.history_length:
                    self.resize_history(history_length)
                return
            if history_length is None or validation_level is None:
                section = self._load_config(constants)
                if history_length is None:
                    history_length = int(
                        section.get("default_history_length", DEFAULT_HISTORY_LENGTH)
                    )
                if validation_level is None:
                    validation_level = str(
                        section.get("validation_level", DEFAULT_VALIDATION_LEVEL)
                    )
            if validation_level not in VALIDATION_LEVELS:
                raise ConfigError(
                    "digital_twin",
                    "STATE_MANAGEMENT.validation_level",
                    f"must be one of {', '.join(VALIDATION_LEVELS)}, got {validation_level!r}",
                )
            self._check_length(history_length)
            self._validation_level = validation_level
            self._rules = VALIDATION_LEVELS.index(validation_level)
            self._lock = threading.Lock()
            self._current: dict[str, Any] | None = None
            self._current_epoch = 0.0
            self._history: deque[dict[str, Any] | PackedState] = deque(maxlen=history_length)
            self._packed_keys = KeyCache()
            self._epochs: deque[float] = deque(maxlen=history_length)
            # False: the history's epochs are known to be sorted (get_state_at_time bisects);
            # True: a state older than the one before it was pushed since it was last checked.
            self._maybe_unsorted = False
            self._warned: set[str] = set()
            self._store: StateStore | None = None
            self._constructed = True

    @staticmethod
    def _load_config(constants: _ConfigSource | None) -> Mapping[str, Any]:
        if constants is None:
            from circman5.adapters.services.constants_service import ConstantsService

            constants = ConstantsService()
        section = constants.get_digital_twin_config().get("STATE_MANAGEMENT", {})
        return section if isinstance(section, Mapping) else {}

    @staticmethod
    def _check_length(history_length: object) -> None:
        if type(history_length) is not int or history_length < 0:
            raise InvalidInputError(
                f"history_length must be a non-negative integer, got {history_length!r}"
            )

    @classmethod
    def _reset_instance(cls) -> None:
        """Forget the singleton (tests only): the next ``StateManager()`` is a fresh one."""
        with cls._init_lock:
            cls._instance = None

    @classmethod
    def _reset(cls) -> None:
        """Alias of :meth:`_reset_instance`, as the spec's conftest calls it."""
        cls._reset_instance()

    # -- properties -----------------------------------------------------------------------------

    @property
    def history_length(self) -> int:
        """Maximum number of previous states kept."""
        maxlen = self._history.maxlen
        return 0 if maxlen is None else maxlen

    @property
    def validation_level(self) -> str:
        return self._validation_level

    @property
    def current_state(self) -> dict[str, Any]:
        """A copy of the current state (``{}`` before the first state); see get_current_state."""
        return self.get_current_state()

    def resize_history(self, history_length: int) -> None:
        """Change the history length, keeping the most recent states."""
        self._check_length(history_length)
        with self._lock:
            self._history = deque(self._history, maxlen=history_length)
            self._epochs = deque(self._epochs, maxlen=history_length)
            self._maybe_unsorted = True

    # -- writing --------------------------------------------------------------------------------

    def _push(self, snapshot: dict[str, Any], epoch: float, replaced_big: bool) -> None:
        """Make ``snapshot`` current, moving the old one to the history. Caller holds the lock.

        ``replaced_big``: ``snapshot`` replaced a section big enough to be packed (see
        :mod:`packed_history`); otherwise the old state goes to the history as it is.
        """
        old = self._current
        epochs = self._epochs
        if old is not None and epochs.maxlen:
            old_epoch = self._current_epoch
            if epochs and epochs[-1] > old_epoch:
                self._maybe_unsorted = True
            self._history.append(pack(old, snapshot, self._packed_keys) if replaced_big else old)
            epochs.append(old_epoch)
        self._current = snapshot
        self._current_epoch = epoch

    def apply_update(self, updates: Mapping[str, Any]) -> StateUpdate:
        """Deep-merge ``updates`` into the current state (the twin core's fast path).

        Nested dicts are merged, every other value replaces what was there. Raises
        :class:`StateValidationError` (current state untouched) when the update is invalid.
        """
        changed: dict[str, Any] = {}
        snapshot, epoch = self._apply(updates, changed)
        return StateUpdate(snapshot, list(changed), epoch)

    def _apply(
        self, updates: Mapping[str, Any], changed: dict[str, Any]
    ) -> tuple[Mapping[str, Any], float]:
        big_copies: list[int] = []
        with self._lock:
            snapshot, epoch = merge_top(self._current, updates, self._rules, changed, big_copies)
            self._push(snapshot, epoch, bool(big_copies))
        return snapshot, epoch

    def commit(
        self, updates: Mapping[str, Any], changed: dict[str, Any]
    ) -> tuple[Mapping[str, Any], float] | None:
        """:meth:`update_state` that tells what it did (the twin core's update path).

        Every leaf the update set goes into ``changed`` (dotted path -> the value as stored,
        without the top-level timestamp). Returns the new snapshot (internal, never mutate) and
        its epoch; None when the update is invalid (logged as a warning, state untouched;
        ``changed`` may then hold the leaves read before the invalid one: ignore it).
        """
        big_copies: list[int] = []
        lock = self._lock
        lock.acquire()  # not ``with``: this runs on every twin update, acquire() costs half
        try:
            snapshot, epoch = merge_top(self._current, updates, self._rules, changed, big_copies)
            self._push(snapshot, epoch, bool(big_copies))
        except StateValidationError as err:
            reason = str(err)
        else:
            return snapshot, epoch
        finally:
            lock.release()
        self._warn_invalid(reason)
        return None

    def update_state(self, updates: Mapping[str, Any]) -> bool:
        """Deep-merge ``updates`` into the current state.

        Returns True when applied; False when invalid (logged as a warning, state untouched).
        """
        return self.commit(updates, {}) is not None

    def set_state(self, state: Mapping[str, Any]) -> bool:
        """Replace the current state with (a validated copy of) ``state``.

        The previous state goes to the history. A missing timestamp is set to now. Returns
        True when applied; False when invalid (logged as a warning, state untouched).
        """
        try:
            snapshot, epoch = merge_top(None, state, self._rules, {}, [])
        except StateValidationError as err:
            self._warn_invalid(str(err))
            return False
        with self._lock:
            self._push(snapshot, epoch, True)  # nothing is shared with the old state
        return True

    def _warn_invalid(self, reason: str) -> None:
        # Each distinct reason is a warning once, then debug: a bad feed must not flood the log.
        if reason in self._warned:
            logger.debug("Invalid state: %s", reason)
            return
        if len(self._warned) >= 1000:
            self._warned.clear()
        self._warned.add(reason)
        logger.warning("Invalid state: %s", reason)

    def clear_history(self) -> None:
        """Forget every previous state (the current state stays)."""
        with self._lock:
            self._history.clear()
            self._packed_keys.clear()
            self._epochs.clear()
            self._maybe_unsorted = False

    # -- reading --------------------------------------------------------------------------------

    def snapshot(self) -> Mapping[str, Any]:
        """The current state itself, not a copy (``{}`` before the first state). Never mutate."""
        current = self._current
        return current if current is not None else {}

    def history_snapshots(self, limit: int | None = None) -> list[Mapping[str, Any]]:
        """The most recent ``limit`` previous states, oldest first, not copied. Never mutate."""
        with self._lock:
            history = list(self._history)
        if limit is not None:
            history = history[len(history) - limit :] if limit > 0 else []
        return [unpack(state) for state in history]

    def get_current_state(self) -> dict[str, Any]:
        """A copy of the current state (``{}`` before the first state)."""
        current: Any = self._current
        return copy_tree(current) if current is not None else {}

    def get_history(self, limit: int | None = None) -> list[dict[str, Any]]:
        """Copies of the most recent ``limit`` previous states (all when None), oldest first.

        The current state is not part of the history.
        """
        return [copy_tree(state) for state in self.history_snapshots(limit)]

    def get_state_at_time(self, timestamp: str | datetime | float) -> dict[str, Any] | None:
        """A copy of the latest state (history or current) at or before ``timestamp``.

        ``timestamp`` is an ISO 8601 string, a datetime (naive means local time) or seconds since
        the epoch. Returns None when every state is later. Raises :class:`InvalidInputError` for
        a timestamp that cannot be read.
        """
        if isinstance(timestamp, int | float) and not isinstance(timestamp, bool):
            when = float(timestamp)
            if not math.isfinite(when):
                raise InvalidInputError(f"invalid timestamp {timestamp!r}")
        else:
            try:
                when = parse_time(timestamp)[1]
            except StateValidationError as err:
                raise InvalidInputError(str(err)) from err
        with self._lock:
            best: dict[str, Any] | PackedState | None = None
            best_epoch = -math.inf
            epochs = self._epochs
            if self._maybe_unsorted:  # checked once until an older state is pushed again
                self._maybe_unsorted = any(a > b for a, b in itertools.pairwise(epochs))
            if not self._maybe_unsorted:
                index = bisect.bisect_right(epochs, when) - 1
                if index >= 0:
                    best, best_epoch = self._history[index], epochs[index]
            else:
                for state, epoch in zip(self._history, epochs, strict=True):
                    if best_epoch <= epoch <= when:
                        best, best_epoch = state, epoch
            current = self._current
            if current is not None and best_epoch <= self._current_epoch <= when:
                best = current
        return copy_tree(unpack(best)) if best is not None else None

    def validate_state(self, state: object) -> tuple[bool, str]:
        """Check ``state`` against the configured validation level: ``(ok, reason)``."""
        try:
            merge_top(None, state, self._rules, {}, [])
        except StateValidationError as err:
            return False, str(err)
        return True, "Valid state"

    # -- persistence ----------------------------------------------------------------------------

    @staticmethod
    def default_export_path() -> Path:
        """Where ``export_state()`` writes by default: ``<data dir>/digital_twin/state.json``."""
        return paths.data_path(*EXPORT_FILE_PARTS)

    def use_store(self, store: StateStore | None) -> None:
        """Save states to ``store`` (the spec's ``states`` table in PostgreSQL, set by the service
        with ``[database] url``) when no file is named; None: the export file again."""
        self._store = store

    def export_state(self, file_path: str | os.PathLike[str] | None = None) -> bool:
        """Write the current state as JSON, atomically (temp file, fsync, rename).

        Without ``file_path`` the state goes to the store given to :meth:`use_store` (a new row
        of ``states``), else to the file :meth:`default_export_path`. Returns False (logged)
        when there is no state yet or it cannot be written.
        """
        current = self._current
        if current is None:
            logger.warning("export_state: there is no state to export")
            return False
        text = json.dumps(current, indent=2, allow_nan=False)
        store = self._store
        if file_path is None and store is not None:
            try:
                state_id = store.save(
                    str(current.get("timestamp", "")), text, _batch_id(current), STATE_FORMAT
                )
            except StorageError as err:
                logger.error("export_state: cannot save to %s: %s", store.location, err)
                return False
            logger.info("State saved to %s as state %d", store.location, state_id)
            return True
        target = Path(file_path) if file_path is not None else self.default_export_path()
        try:
            atomic_write(target, text)
        except OSError as err:
            logger.error("export_state: cannot write %s: %s", target, err)
            return False
        logger.info("State exported to %s", target)
        return True

    def import_state(self, file_path: str | os.PathLike[str] | None = None) -> bool:
        """Read a state exported by :meth:`export_state` and make it current.

        Without ``file_path``: the state saved last to the store of :meth:`use_store`, else the
        file :meth:`default_export_path`. Returns False and keeps the current state when the
        file or row is missing or unreadable, is not valid JSON, or does not hold a valid state
        (each logged as a warning).
        """
        store = self._store
        if file_path is None and store is not None:
            try:
                row = store.latest()
            except StorageError as err:
                logger.warning("import_state: cannot read %s: %s", store.location, err)
                return False
            if row is None:
                logger.warning("import_state: no state saved in %s", store.location)
                return False
            return self._adopt(row.state_data, f"{store.location} state {row.id}")
        path = Path(file_path) if file_path is not None else self.default_export_path()
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as err:
            logger.warning("import_state: cannot read %s: %s", path, err)
            return False
        return self._adopt(text, str(path))

    def _adopt(self, text: str, where: str) -> bool:
        try:
            state = json.loads(text)
        except json.JSONDecodeError as err:
            logger.warning("import_state: %s is not valid JSON: %s", where, err)
            return False
        try:
            snapshot, epoch = merge_top(None, state, self._rules, {}, [])
        except StateValidationError as err:
            logger.warning("import_state: %s holds an invalid state: %s", where, err)
            return False
        with self._lock:
            self._push(snapshot, epoch, True)
        logger.info("State imported from %s", where)
        return True
