"""The central event hub: subscriptions, filters, publishing, and access to stored events.

``event_manager`` is the module-level singleton of the event API document (``EventManager()``
returns the same object). Creating it is free: the configuration
(``ConstantsService().get_digital_twin_config()["EVENT_NOTIFICATION"]``) is read on first use
and the database is opened on the first publish or query.

Subscriptions
-------------
``subscribe(handler, category=None, severity=None)``: a category alone means that category at
any severity; a severity alone means that severity in any category; both mean events matching
both; neither means every event. A handler subscribed several ways is called once per event, in
the order handlers first subscribed. ``unsubscribe`` takes the same arguments and removes
exactly what the same ``subscribe`` call would have added (so ``unsubscribe(h)`` removes every
subscription of ``h``, and ``unsubscribe(h, category=THRESHOLD)`` stops threshold events only).

Publishing
----------
``publish(event)`` stores the event (when ``persistence_enabled``; the store is write-behind, see
:mod:`.event_persistence`), then, if every filter of the event's category accepts it, calls the
matching handlers in the publishing thread, outside any lock. A handler that raises is logged
(once per handler and exception type) and counted in ``handler_errors``; the other handlers
still run. A filter that raises lets the event through (an alarm is better delivered twice than
lost) and is logged once likewise. The handler list per (category, severity) is cached and
rebuilt after a (un)subscribe, so publishing takes no lock.

Tests: ``EventManager._reset_instance()`` returns the singleton to its just-created state *in
place* (closing its database), so ``event_manager`` and every publisher holding it stay valid;
``event_manager.configure(persistence=EventPersistence(path), config={...})`` points it at
another database and overrides settings; ``EventManager.standalone(...)`` makes an independent
manager (not the singleton).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from circman5.errors import InvalidInputError
from circman5.singleton import Singleton

from .event_persistence import EventPersistence
from .event_types import Event, EventCategory, EventSeverity

logger = logging.getLogger(__name__)

__all__ = ["DEFAULT_CONFIG", "EventFilter", "EventHandler", "EventManager", "event_manager"]

EventHandler = Callable[[Event], None]
EventFilter = Callable[[Event], bool]
_Cell = tuple[EventCategory, EventSeverity]

DEFAULT_CONFIG: dict[str, Any] = {
    "persistence_enabled": True,
    "max_events": 1000,
    "default_alert_severity": "warning",
    "publish_state_changes": True,
    "publish_threshold_breaches": True,
    "publish_simulation_results": True,
}


def _cells(category: object, severity: object) -> frozenset[_Cell]:
    """The (category, severity) pairs a subscription covers."""
    try:
        categories: Iterable[EventCategory] = (
            EventCategory if category is None else (EventCategory(category),)
        )
        severities: Iterable[EventSeverity] = (
            EventSeverity if severity is None else (EventSeverity(severity),)
        )
    except ValueError as err:
        raise InvalidInputError(str(err)) from err
    return frozenset((c, s) for c in categories for s in severities)


class EventManager(Singleton):
    """Central event management: see the module docstring."""

    _reconfigurable = True  # EventManager(persistence=...) again applies it with configure()

    def __init__(
        self,
        persistence: EventPersistence | None = None,
        config: Mapping[str, Any] | None = None,
    ) -> None:
        """``persistence`` and ``config`` (an ``EVENT_NOTIFICATION`` section) default to a
        database in the data directory and the ConstantsService configuration. Given to an
        existing singleton, they are applied with :meth:`configure`."""
        with self._init_lock:
            if self._constructed:
                if persistence is not None or config is not None:
                    self.configure(persistence=persistence, config=config)
                return
            self._setup(persistence, config)
            self._constructed = True

    def _setup(
        self, persistence: EventPersistence | None, config: Mapping[str, Any] | None
    ) -> None:
        self._lock = threading.RLock()
        self._handlers: dict[EventHandler, set[_Cell]] = {}
        self._dispatch: dict[_Cell, tuple[EventHandler, ...]] = {}
        self._filters: dict[EventCategory, tuple[EventFilter, ...]] = {}
        self._persistence = persistence
        self._owns_persistence = persistence is None
        self._config: dict[str, Any] | None = (
            {**DEFAULT_CONFIG, **config} if config is not None else None
        )
        self._reported: set[tuple[object, type[BaseException]]] = set()
        #: Number of exceptions raised by handlers (each kind logged once per handler).
        self.handler_errors = 0

    @classmethod
    def standalone(
        cls,
        persistence: EventPersistence | None = None,
        config: Mapping[str, Any] | None = None,
    ) -> EventManager:
        """A manager that is *not* the singleton (tests, or an isolated event bus)."""
        manager = object.__new__(cls)
        manager._setup(persistence, config)
        manager._constructed = True
        return manager

    @property
    def _initialized(self) -> bool:
        """The spec's diagnostics (technical manual 14.1) read this flag."""
        return self._constructed

    @classmethod
    def _reset_instance(cls) -> None:
        """Tests: close the singleton's database and forget its subscriptions, filters and
        configuration, keeping the same object (``event_manager`` stays valid)."""
        with cls._init_lock:
            instance = cls._instance
            if instance is not None and instance._constructed:
                instance.close()
                instance._setup(None, None)

    # -- configuration --------------------------------------------------------------------------

    def _settings(self) -> dict[str, Any]:
        config = self._config
        if config is None:
            with self._lock:
                if self._config is None:
                    from circman5.adapters.services.constants_service import ConstantsService

                    section = (
                        ConstantsService().get_digital_twin_config().get("EVENT_NOTIFICATION", {})
                    )
                    self._config = {**DEFAULT_CONFIG, **section}
                config = self._config
        return config

    @property
    def config(self) -> dict[str, Any]:
        """A copy of the ``EVENT_NOTIFICATION`` settings in use."""
        return dict(self._settings())

    def setting(self, name: str) -> Any:
        """One ``EVENT_NOTIFICATION`` setting (KeyError when unknown)."""
        return self._settings()[name]

    @property
    def persistence_enabled(self) -> bool:
        return bool(self._settings()["persistence_enabled"])

    @property
    def persistence(self) -> EventPersistence:
        """The event store (created on first use; its database opens on first write/read)."""
        persistence = self._persistence
        if persistence is None:
            max_events = self._settings()["max_events"]
            with self._lock:
                if self._persistence is None:
                    self._persistence = EventPersistence(max_events=max_events)
                    self._owns_persistence = True
                persistence = self._persistence
        return persistence

    def configure(
        self,
        persistence: EventPersistence | None = None,
        config: Mapping[str, Any] | None = None,
    ) -> None:
        """Use another event store and/or other ``EVENT_NOTIFICATION`` settings.

        The previous store is flushed (and closed when the manager created it). ``config``
        overrides the given settings; the others keep their values.
        """
        with self._lock:
            if config is not None:
                self._config = {**self._settings(), **config}
                if self._persistence is not None and self._owns_persistence:
                    self._persistence.max_events = self._config["max_events"]
            if persistence is not None and persistence is not self._persistence:
                old, owned = self._persistence, self._owns_persistence
                self._persistence = persistence
                self._owns_persistence = False
                if old is not None:
                    if owned:
                        old.close()
                    else:
                        old.flush()

    def flush(self) -> None:
        """Write every queued event to the database now."""
        if self._persistence is not None:
            self._persistence.flush()

    def close(self) -> None:
        """Flush and close the event database (it reopens on next use)."""
        if self._persistence is not None:
            self._persistence.close()

    # -- subscriptions and filters --------------------------------------------------------------

    def subscribe(
        self,
        handler: EventHandler,
        category: EventCategory | None = None,
        severity: EventSeverity | None = None,
    ) -> None:
        """Call ``handler(event)`` for matching events (see the module docstring)."""
        if not callable(handler):
            raise InvalidInputError(f"handler must be callable, got {handler!r}")
        cells = _cells(category, severity)
        with self._lock:
            try:
                subscribed = self._handlers.setdefault(handler, set())
            except TypeError as err:
                raise InvalidInputError(f"handler must be hashable: {handler!r}") from err
            subscribed.update(cells)
            self._dispatch = {}
        logger.debug("subscribed %r (category=%s, severity=%s)", handler, category, severity)

    def unsubscribe(
        self,
        handler: EventHandler,
        category: EventCategory | None = None,
        severity: EventSeverity | None = None,
    ) -> None:
        """Remove what ``subscribe(handler, category, severity)`` adds; unknown handlers are
        ignored."""
        cells = _cells(category, severity)
        with self._lock:
            try:
                subscribed = self._handlers.get(handler)
            except TypeError:
                return
            if subscribed is None:
                return
            subscribed -= cells
            if not subscribed:
                del self._handlers[handler]
            self._dispatch = {}

    def add_filter(self, category: EventCategory, filter_func: EventFilter) -> None:
        """Deliver events of ``category`` only when ``filter_func(event)`` (and every other
        filter of the category) returns True. Filtered events are still stored."""
        if not callable(filter_func):
            raise InvalidInputError(f"filter must be callable, got {filter_func!r}")
        key = _single_category(category)
        with self._lock:
            current = self._filters.get(key, ())
            if filter_func not in current:
                self._filters = {**self._filters, key: (*current, filter_func)}

    def remove_filter(self, category: EventCategory, filter_func: EventFilter) -> None:
        """Remove a filter added with :meth:`add_filter` (unknown filters are ignored)."""
        key = _single_category(category)
        with self._lock:
            current = self._filters.get(key, ())
            if filter_func in current:
                remaining = tuple(f for f in current if f != filter_func)
                filters = dict(self._filters)
                if remaining:
                    filters[key] = remaining
                else:
                    del filters[key]
                self._filters = filters

    def _handlers_for(self, cell: _Cell) -> tuple[EventHandler, ...]:
        with self._lock:
            dispatch = self._dispatch
            handlers = dispatch.get(cell)
            if handlers is None:
                handlers = tuple(h for h, cells in self._handlers.items() if cell in cells)
                dispatch[cell] = handlers
            return handlers

    # -- publishing -----------------------------------------------------------------------------

    def publish(self, event: Event) -> None:
        """Store ``event`` (if enabled) and deliver it to the matching handlers."""
        if not isinstance(event, Event):
            raise InvalidInputError(f"publish() takes an Event, got {type(event).__name__}")
        config = self._config or self._settings()
        if config["persistence_enabled"]:
            (self._persistence or self.persistence).save_event(event)
        category = event.category
        filters = self._filters.get(category)
        if filters and not self._passes(filters, event):
            return
        cell = (category, event.severity)
        handlers = self._dispatch.get(cell)
        if handlers is None:
            handlers = self._handlers_for(cell)
        for handler in handlers:
            try:
                handler(event)
            except Exception as err:  # a subscriber's bug must not stop the others
                self._report(handler, err, "event handler", event)

    def _passes(self, filters: tuple[EventFilter, ...], event: Event) -> bool:
        for event_filter in filters:
            try:
                if not event_filter(event):
                    return False
            except Exception as err:  # a broken filter lets the event through
                self._report(event_filter, err, "event filter", event)
        return True

    def _report(self, func: object, err: Exception, what: str, event: Event) -> None:
        key = (func, type(err))
        with self._lock:
            if what == "event handler":
                self.handler_errors += 1
            first = key not in self._reported
            if first:
                self._reported.add(key)
        if first:
            logger.error(
                "%s %r failed on a %s event (reported once per %s and error type): %s",
                what,
                func,
                event.category.value,
                what,
                err,
                exc_info=err,
            )

    # -- stored events --------------------------------------------------------------------------

    def get_events(
        self,
        category: EventCategory | None = None,
        severity: EventSeverity | None = None,
        limit: int = 100,
    ) -> list[Event]:
        """Stored events, newest first, optionally of one category and/or severity."""
        return self.persistence.get_events(category=category, severity=severity, limit=limit)

    def acknowledge_event(self, event_id: str) -> bool:
        """Mark a stored event acknowledged; True when it was found."""
        return self.persistence.acknowledge_event(event_id)

    def clear_events(self, older_than_days: int | None = None) -> int:
        """Delete stored events (all, or those older than that many days); returns how many."""
        return self.persistence.clear_events(older_than_days)


def _single_category(category: object) -> EventCategory:
    try:
        return EventCategory(category)
    except ValueError as err:
        raise InvalidInputError(str(err)) from err


#: The event manager singleton of the event API document.
event_manager = EventManager()
