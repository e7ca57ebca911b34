"""Live push: one broadcaster fanning the twin state and events out to WebSocket clients.

Ingestion is never slowed down by clients:

* **State** is *pulled*: a ticker task reads the StateManager's current snapshot (no copy, no
  lock) at most ``max_rate_hz`` times a second; when it changed, it is encoded once and put in
  every client's single "latest state" slot (latest wins: a slow client skips states, it never
  queues them).
* **Events** are pushed by the event manager in the publisher's thread; the handler only appends
  the event to a bounded deque and, if no hand-over is pending, schedules one with
  ``call_soon_threadsafe``. On the loop, events are encoded once and appended to each client's
  bounded event queue (oldest dropped and counted when a client falls behind).

Each client has one sender task (the WebSocket handler) that waits for its wake-up flag and
sends what is there; a send that takes longer than ``send_timeout_s`` drops the client.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

from circman5.manufacturing.digital_twin.event_notification.event_types import Event

logger = logging.getLogger(__name__)

__all__ = ["Broadcaster", "ClientFeed"]

StateSource = Callable[[], Mapping[str, Any]]
AlarmSource = Callable[[], Mapping[str, Any]]


def _default(value: object) -> Any:
    if hasattr(value, "value"):  # enums
        return value.value
    return str(value)


def encode(message: Mapping[str, Any]) -> str:
    return orjson.dumps(message, default=_default).decode()


@dataclass(eq=False)
class ClientFeed:
    """What one client has yet to receive: the latest state and its pending events."""

    user: str
    max_events: int
    state: str | None = None
    events: deque[str] = field(default_factory=deque)
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    dropped_events: int = 0
    skipped_states: int = 0
    closed: bool = False

    def put_state(self, message: str) -> None:
        if self.state is not None:
            self.skipped_states += 1
        self.state = message
        self.wake.set()

    def put_event(self, message: str) -> None:
        if len(self.events) >= self.max_events:
            self.events.popleft()
            self.dropped_events += 1
        self.events.append(message)
        self.wake.set()

    async def next_batch(self) -> list[str]:
        """Wait until something is pending; return it (events first, then the state)."""
        while not self.closed:
            await self.wake.wait()
            self.wake.clear()
            batch = list(self.events)
            self.events.clear()
            if self.state is not None:
                batch.append(self.state)
                self.state = None
            if batch:
                return batch
        return []

    def close(self) -> None:
        self.closed = True
        self.wake.set()


class Broadcaster:
    """Fan-out of state changes and events to WebSocket clients (see the module docstring).

    ``state``: returns the current twin snapshot (must be cheap and must not copy: the
    StateManager's ``snapshot``); ``alarms``: the active alarms. ``subscribe`` /
    ``unsubscribe``: the event manager's. Run :meth:`run` as a task for the app's lifetime.
    """

    def __init__(
        self,
        state: StateSource,
        alarms: AlarmSource | None = None,
        subscribe: Callable[[Callable[[Event], None]], None] | None = None,
        unsubscribe: Callable[[Callable[[Event], None]], None] | None = None,
        max_rate_hz: float = 10.0,
        max_events_per_client: int = 256,
        max_clients: int = 500,
        send_timeout_s: float = 10.0,
    ) -> None:
        if not 0 < max_rate_hz <= 100:
            raise ValueError(f"max_rate_hz must be in (0, 100], got {max_rate_hz}")
        self._state = state
        self._alarms = alarms
        self._subscribe = subscribe
        self._unsubscribe = unsubscribe
        self.interval_s = 1.0 / max_rate_hz
        self.max_events_per_client = max_events_per_client
        self.max_clients = max_clients
        self.send_timeout_s = send_timeout_s
        self._clients: set[ClientFeed] = set()
        self._pending: deque[Event] = deque(maxlen=10_000)
        self._pending_lock = threading.Lock()
        self._handover_scheduled = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._last_state: object = None
        self._last_message: str | None = None
        self.states_sent = 0
        self.events_sent = 0
        self.events_dropped = 0

    # -- clients ------------------------------------------------------------------------------
    @property
    def client_count(self) -> int:
        return len(self._clients)

    def add_client(self, user: str) -> ClientFeed | None:
        """A feed for a new client (primed with the current state), or None when full."""
        if len(self._clients) >= self.max_clients:
            return None
        feed = ClientFeed(user=user, max_events=self.max_events_per_client)
        message = self._last_message or self._encode_state(self._state())
        if message is not None:
            feed.put_state(message)
        self._clients.add(feed)
        return feed

    def remove_client(self, feed: ClientFeed) -> None:
        feed.close()
        self._clients.discard(feed)
        self.events_dropped += feed.dropped_events

    # -- state ticker -------------------------------------------------------------------------
    def _encode_state(self, snapshot: Mapping[str, Any]) -> str | None:
        if not snapshot:
            return None
        alarms = dict(self._alarms()) if self._alarms is not None else {}
        return encode({"type": "state", "state": snapshot, "alarms": alarms})

    def tick(self) -> bool:
        """Send the state if it changed since the last tick; True when it did."""
        snapshot = self._state()
        if snapshot is self._last_state:
            return False
        self._last_state = snapshot
        message = self._encode_state(snapshot)
        if message is None:
            return False
        self._last_message = message
        for feed in self._clients:
            feed.put_state(message)
        self.states_sent += 1
        return True

    async def run(self) -> None:
        """Tick at ``max_rate_hz`` and hand events over until cancelled."""
        self._loop = asyncio.get_running_loop()
        if self._subscribe is not None:
            self._subscribe(self.on_event)
        try:
            while True:
                self.tick()
                await asyncio.sleep(self.interval_s)
        finally:
            if self._unsubscribe is not None:
                self._unsubscribe(self.on_event)
            self._loop = None
            for feed in list(self._clients):
                feed.close()

    # -- events -------------------------------------------------------------------------------
    def on_event(self, event: Event) -> None:
        """Event-manager handler: any thread; cheap; never blocks on clients."""
        loop = self._loop
        if loop is None:
            return
        with self._pending_lock:
            self._pending.append(event)
            if self._handover_scheduled:
                return
            self._handover_scheduled = True
        with contextlib.suppress(RuntimeError):  # loop closed while shutting down
            loop.call_soon_threadsafe(self._hand_over)

    def _hand_over(self) -> None:
        with self._pending_lock:
            events = list(self._pending)
            self._pending.clear()
            self._handover_scheduled = False
        for event in events:
            message = encode({"type": "event", "event": event.to_dict()})
            for feed in self._clients:
                feed.put_event(message)
            self.events_sent += 1
