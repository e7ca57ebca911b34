"""The synchronization engine: connector samples in, one twin update per tick out.

The engine consumes the sample batches of every connector (one task each, in a TaskGroup),
keeps the latest sample per twin path and, once per tick, applies them to the twin with **one**
``DigitalTwin.update(update)``: a :class:`~circman5.twin_update.TwinUpdate` (dotted path ->
value, the quality changes and the time), which the update listeners then get as it is. Every
raw sample also goes, once per tick and in arrival order, to the registered sinks (the
time-series writer stores every sample, not only the latest).
A sink registered with ``acknowledges=True`` (the service's durable time-series sink) gets every
batch at once instead of at the next tick, and fires the acknowledgements batches carry (MQTT QoS
1/2) once the samples are durable.

Modes (:class:`SyncMode`, technical manual ``synchronization_mode``):

``REAL_TIME``
    update every tick (``tick_rate_hz``: 10 Hz standard, up to 100 Hz high-performance).
``BATCH``
    update every ``batch_interval_s``; sinks and staleness still run every tick.
``MANUAL``
    update only when :meth:`SynchronizationEngine.synchronize` is called.
``EVENT_DRIVEN``
    update as soon as samples arrive, at most ``max_event_rate_hz`` times a second.

Quality and staleness in the state
----------------------------------
The twin state gets a top-level ``quality`` section (name configurable) mapping each twin path the
engine has heard of to ``"good"``, ``"uncertain"``, ``"bad"`` or ``"stale"``::

    {"production_line": {"temperature": 23.1},
     "quality": {"production_line.temperature": "good", "environment.humidity": "stale"}}

Only changes are sent, so an update carries the quality entries that changed in that tick
(``TwinUpdate.qualities``; its nested view puts them under the section). A
``good`` or ``uncertain`` sample sets the value; a ``bad`` or ``stale`` sample (a connector
reporting a lost device) sets only the quality and leaves the last value in place. A path goes
``stale`` when its source stays silent longer than its timeout (the connector's
:meth:`~circman5.connectors.base.Connector.stale_after`, else ``stale_timeout_s``), and a path a
connector announced (:meth:`Connector.paths`) that never delivered a sample goes stale after
``stale_timeout_s`` from the start. Fresh samples make it ``good`` again.

The engine imports no protocol library: it sees connectors only through the contract in
:mod:`circman5.connectors.base`, and its samples and reporter through the neutral
:mod:`circman5.samples` and :mod:`circman5.reporting`.

Why this module is long: the spec's four synchronization modes, quality and staleness, sinks with
acknowledgements and the one-by-one fallback for rejected updates all act on the same per-path
state within one tick; the engine is the spec's documented class.
"""

from __future__ import annotations

import asyncio
import logging
import math
import operator
import time
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, field
from enum import Enum
from typing import TYPE_CHECKING, Any, Protocol, TypedDict, Unpack

from circman5.manufacturing.digital_twin.event_notification.event_types import now_stamp
from circman5.reporting import LoggingProblemReporter, ProblemReporter
from circman5.samples import Quality, Sample, acks_of, fire_acks, merge_batches
from circman5.twin_update import TwinUpdate

if TYPE_CHECKING:
    from circman5.adapters.config.digital_twin import SynchronizationConfig

logger = logging.getLogger(__name__)

_path_of = operator.attrgetter("path")

__all__ = [
    "MAX_TICK_RATE_HZ",
    "EngineOptions",
    "SampleSink",
    "SampleSubscription",
    "SourceStats",
    "SyncMode",
    "SyncStats",
    "SynchronizationEngine",
    "TwinTarget",
]

MAX_TICK_RATE_HZ = 100.0
STANDARD_TICK_RATE_HZ = 10.0


class SyncMode(Enum):
    """How the engine applies samples to the twin (spec: ``synchronization_mode``)."""

    REAL_TIME = "real_time"
    BATCH = "batch"
    MANUAL = "manual"
    EVENT_DRIVEN = "event_driven"


class TwinTarget(Protocol):
    """What the engine needs of the twin: ``DigitalTwin.update``."""

    def update(self, external_data: TwinUpdate) -> bool: ...


class SampleSource(Protocol):
    """The part of the connector contract (:class:`~circman5.connectors.base.Connector`) the
    engine uses."""

    @property
    def name(self) -> str: ...

    def batches(self) -> AsyncIterator[list[Sample]]: ...

    def stale_after(self, path: str) -> float | None: ...

    def paths(self) -> list[str]: ...


SampleSink = Callable[[list[Sample]], object]
"""Called once per tick with every raw sample received since the last tick (do not mutate)."""

UpdateListener = Callable[[TwinUpdate], object]
"""Called after each accepted twin update with the update that was applied."""


@dataclass
class SourceStats:
    """Per-connector counters. Lags are now minus the source timestamp, in seconds."""

    samples_in: int = 0
    batches_in: int = 0
    lag_s: float = 0.0
    lag_avg_s: float = 0.0
    lag_max_s: float = 0.0
    last_sample_at: float | None = None


@dataclass
class SyncStats:
    """Engine counters (only grow, except the gauges ``stale_paths`` and ``pending``)."""

    ticks: int = 0
    updates: int = 0
    rejected_updates: int = 0
    samples_in: int = 0
    samples_applied: int = 0
    dropped: int = 0
    sink_errors: int = 0
    stale_paths: int = 0
    pending: int = 0
    sources: dict[str, SourceStats] = field(default_factory=dict)

    def snapshot(self) -> dict[str, Any]:
        return asdict(self)


class SampleSubscription:
    """A bounded queue of per-tick sample batches for an async consumer (``async for``).

    When the consumer falls ``maxsize`` batches behind, new batches are dropped and counted.
    """

    def __init__(self, maxsize: int) -> None:
        self._queue: asyncio.Queue[list[Sample] | None] = asyncio.Queue(maxsize)
        self.dropped = 0

    def _offer(self, batch: list[Sample]) -> None:
        try:
            self._queue.put_nowait(batch)
        except asyncio.QueueFull:
            self.dropped += len(batch)

    def close(self) -> None:
        try:
            self._queue.put_nowait(None)
        except asyncio.QueueFull:
            self._queue.get_nowait()
            self._queue.put_nowait(None)

    def __aiter__(self) -> SampleSubscription:
        return self

    async def __anext__(self) -> list[Sample]:
        batch = await self._queue.get()
        if batch is None:
            raise StopAsyncIteration
        return batch


class EngineOptions(TypedDict, total=False):
    """The keyword options of :class:`SynchronizationEngine` (see its constructor)."""

    mode: SyncMode | str
    tick_rate_hz: float
    stale_timeout_s: float
    batch_interval_s: float
    max_event_rate_hz: float
    max_pending_samples: int
    quality_section: str
    sinks: Iterable[SampleSink]
    reporter: ProblemReporter | None
    offload_updates: bool
    clock: Callable[[], float]


class SynchronizationEngine:
    """Physical-to-digital synchronization (see the module documentation).

    ``twin``: anything with ``update(dict) -> bool`` (the DigitalTwin). ``connectors``: entered
    connectors (the composition root owns their ``async with``). ``reporter`` receives problems
    (rejected updates, failing sinks) for the event system. ``clock`` is a monotonic clock in
    seconds, injectable for tests. ``offload_updates`` runs ``twin.update`` in a worker thread
    (for twins whose checks are heavy); by default it runs on the event loop.
    """

    def __init__(
        self,
        twin: TwinTarget,
        connectors: Iterable[SampleSource] = (),
        *,
        mode: SyncMode | str = SyncMode.REAL_TIME,
        tick_rate_hz: float = STANDARD_TICK_RATE_HZ,
        stale_timeout_s: float = 5.0,
        batch_interval_s: float = 1.0,
        max_event_rate_hz: float = MAX_TICK_RATE_HZ,
        max_pending_samples: int = 1_000_000,
        quality_section: str = "quality",
        sinks: Iterable[SampleSink] = (),
        reporter: ProblemReporter | None = None,
        offload_updates: bool = False,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not 0 < tick_rate_hz <= MAX_TICK_RATE_HZ:
            raise ValueError(f"tick_rate_hz must be in (0, {MAX_TICK_RATE_HZ}], got {tick_rate_hz}")
        if not stale_timeout_s > 0:
            raise ValueError(f"stale_timeout_s must be > 0, got {stale_timeout_s}")
        if not 0 < max_event_rate_hz <= MAX_TICK_RATE_HZ:
            raise ValueError(f"max_event_rate_hz must be in (0, {MAX_TICK_RATE_HZ}]")
        if not batch_interval_s > 0:
            raise ValueError("batch_interval_s must be > 0")
        self.twin = twin
        self._connectors: list[SampleSource] = list(connectors)
        self.mode = SyncMode(mode)
        self.tick_rate_hz = float(tick_rate_hz)
        self.stale_timeout_s = float(stale_timeout_s)
        self.batch_interval_s = float(batch_interval_s)
        self.max_event_rate_hz = float(max_event_rate_hz)
        self.max_pending_samples = max_pending_samples
        self.quality_section = quality_section
        self.offload_updates = offload_updates
        self._reporter = reporter or LoggingProblemReporter(logger)
        self._clock = clock
        self._sinks: list[SampleSink] = list(sinks)
        # The sinks that fire the acknowledgements batches carry (once the batch is durable);
        # with none, the engine fires them itself once every sink has the batch. They get every
        # batch at once (on the loop's next turn, not at the next tick): a source may wait for
        # the acknowledgements (an MQTT broker sends at most its in-flight window without them),
        # and what a crash can lose shrinks to what the store has not committed yet.
        self._ack_sinks: set[int] = set()
        self._ack_pending: list[list[Sample]] = []
        self._ack_flush_scheduled = False
        self._subscriptions: list[SampleSubscription] = []
        self._listeners: list[UpdateListener] = []
        self.stats = SyncStats()

        # Raw samples for the sinks since the last tick.
        self._pending: list[list[Sample]] = []
        self._pending_count = 0
        # Latest sample per path since the last tick, and since the last twin update.
        self._latest: dict[str, Sample] = {}
        self._held: dict[str, Sample] = {}
        # Path bookkeeping.
        self._by_name: dict[str, SampleSource] = {c.name: c for c in self._connectors}
        # Every path the twin got a value for, and the sections above them: a path that is
        # both (``a.b`` and ``a.b.c``) is refused, the first one seen keeps its place.
        self._known_paths: set[str] = set()
        self._sections: set[str] = set()
        self._timeouts: dict[str, float] = {}
        self._last_seen: dict[str, float] = {}
        self._never_seen: set[str] = set()
        self._next_stale_due = -math.inf
        self._quality: dict[str, Quality] = {}
        self._stale: set[str] = set()
        self._quality_changes: dict[str, str] = {}
        self._rejected: set[str] = set()
        self._bad_paths: set[str] = set()
        self._last_apply = -math.inf
        self._wake = asyncio.Event()
        self._apply_lock = asyncio.Lock()
        self._failing_sinks: set[int] = set()

    # -- configuration ----------------------------------------------------------------------
    @classmethod
    def from_config(
        cls,
        twin: TwinTarget,
        connectors: Iterable[SampleSource],
        config: SynchronizationConfig,
        **options: Unpack[EngineOptions],
    ) -> SynchronizationEngine:
        """Build from ``SYNCHRONIZATION_CONFIG``; ``options`` override or add to it."""
        settings: EngineOptions = {
            "mode": config.default_sync_mode,
            "tick_rate_hz": config.tick_rate_hz,
            "stale_timeout_s": config.stale_timeout_s,
            "batch_interval_s": config.default_sync_interval,
            "max_pending_samples": config.max_pending_samples,
        }
        settings.update(options)
        return cls(twin, connectors, **settings)

    def add_connector(self, connector: SampleSource) -> None:
        """Add a connector before :meth:`run`."""
        self._connectors.append(connector)
        self._by_name[connector.name] = connector

    def add_sink(self, sink: SampleSink, *, acknowledges: bool = False) -> Callable[[], None]:
        """Register ``sink(batch)``: every raw sample, once per tick. Returns an unregister.

        ``acknowledges=True``: the sink fires the acknowledgements the batch carries
        (:class:`~circman5.samples.SampleBatch`) once it made the batch durable; the
        engine then leaves them to it.
        """
        self._sinks.append(sink)
        if acknowledges:
            self._ack_sinks.add(id(sink))

        def remove() -> None:
            if sink in self._sinks:
                self._sinks.remove(sink)
            self._ack_sinks.discard(id(sink))

        return remove

    def subscribe(self, maxsize: int = 1000) -> SampleSubscription:
        """An async iterator of the per-tick raw sample batches (bounded; drops when full)."""
        subscription = SampleSubscription(maxsize)
        self._subscriptions.append(subscription)
        return subscription

    def add_update_listener(self, listener: UpdateListener) -> None:
        """Register ``listener(update)``, called after each accepted twin update."""
        self._listeners.append(listener)

    def set_mode(self, mode: SyncMode | str) -> None:
        self.mode = SyncMode(mode)
        self._wake.set()

    def watch(self, paths: Iterable[str], source: SampleSource | None = None) -> None:
        """Announce ``paths`` before their first sample: they go stale if none ever arrives."""
        now = self._clock()
        for path in paths:
            if path in self._last_seen:
                continue
            self._last_seen[path] = now
            self._never_seen.add(path)
            self._timeouts[path] = self._source_timeout(source, path)
        self._next_stale_due = -math.inf

    # -- state ------------------------------------------------------------------------------
    def quality(self, path: str) -> Quality | None:
        """The quality the twin shows for ``path`` (None if never heard of)."""
        return self._quality.get(path)

    def qualities(self) -> dict[str, str]:
        return {path: q.value for path, q in self._quality.items()}

    # -- running ----------------------------------------------------------------------------
    async def run(self) -> None:
        """Consume every connector and tick until cancelled."""
        for connector in self._connectors:
            self.watch(connector.paths(), connector)
        try:
            async with asyncio.TaskGroup() as group:
                for connector in self._connectors:
                    group.create_task(self._consume(connector), name=f"sync:{connector.name}")
                group.create_task(self._ticker(), name="sync:ticker")
        finally:
            for subscription in self._subscriptions:
                subscription.close()

    async def _consume(self, connector: SampleSource) -> None:
        name = connector.name
        while True:
            try:
                async for batch in connector.batches():
                    self.ingest(batch, connector)
                return
            except asyncio.CancelledError:
                raise
            except Exception as err:  # a broken connector must not stop the others
                logger.exception("sample stream of connector %s failed", name)
                self._report("error", "ConnectorStreamError", f"{name}: {err!r}", {"source": name})
                await asyncio.sleep(1.0)

    def ingest(self, batch: list[Sample], source: SampleSource | None = None) -> None:
        """Take one batch of samples (the connectors' tasks call this; usable for manual input)."""
        if not batch:
            return
        self._latest.update(zip(map(_path_of, batch), batch, strict=True))
        count = len(batch)
        stats = self.stats
        stats.samples_in += count
        name = source.name if source is not None else batch[0].source
        src = stats.sources.get(name)
        if src is None:
            src = stats.sources[name] = SourceStats()
        src.samples_in += count
        src.batches_in += 1
        now_ns = time.time_ns()
        lag = (now_ns - batch[-1].timestamp_ns) / 1e9
        src.lag_s = lag
        src.lag_avg_s = lag if src.batches_in == 1 else src.lag_avg_s * 0.9 + lag * 0.1
        if lag > src.lag_max_s:
            src.lag_max_s = lag
        src.last_sample_at = now_ns / 1e9
        if self._sinks or self._subscriptions:
            self._pending.append(batch)
            self._pending_count += count
            while self._pending_count > self.max_pending_samples and len(self._pending) > 1:
                old = self._pending.pop(0)
                self._pending_count -= len(old)
                stats.dropped += len(old)
                if not self._ack_sinks:
                    fire_acks(acks_of(old))  # lost and counted: do not hold the source back
            if self._ack_sinks:
                self._ack_pending.append(batch)
                if not self._ack_flush_scheduled:
                    self._schedule_ack_flush()
        else:
            fire_acks(acks_of(batch))  # nothing keeps the raw samples
        if self.mode is SyncMode.EVENT_DRIVEN:
            self._wake.set()

    async def _ticker(self) -> None:
        next_tick = self._clock() + 1.0 / self.tick_rate_hz
        while True:
            if self.mode is SyncMode.EVENT_DRIVEN:
                await self._wait_for_samples(next_tick)
            else:
                delay = next_tick - self._clock()
                if delay > 0:
                    await asyncio.sleep(delay)
            now = self._clock()
            if now >= next_tick:
                period = 1.0 / self.tick_rate_hz
                next_tick += period
                if next_tick < now:  # fell behind: do not try to catch up
                    next_tick = now + period
            await self.tick(now)

    async def _wait_for_samples(self, deadline: float) -> None:
        """EVENT_DRIVEN: return when samples are waiting (rate-limited) or at ``deadline``."""
        if not self._latest and not self._held:
            self._wake.clear()
            try:
                async with asyncio.timeout(max(0.0, deadline - self._clock())):
                    await self._wake.wait()
            except TimeoutError:
                return
        earliest = self._last_apply + 1.0 / self.max_event_rate_hz
        now = self._clock()
        if earliest > now:
            await asyncio.sleep(min(earliest, deadline) - now)

    async def tick(self, now: float | None = None) -> None:
        """One tick: feed the sinks, track liveness, apply to the twin if the mode says so."""
        now = self._clock() if now is None else now
        self.stats.ticks += 1
        self._deliver_to_sinks()
        self._take_latest(now)
        self._check_stale(now)
        mode = self.mode
        if (
            mode is SyncMode.REAL_TIME
            or (
                mode is SyncMode.EVENT_DRIVEN
                and now - self._last_apply >= 1.0 / self.max_event_rate_hz
            )
            or (mode is SyncMode.BATCH and now - self._last_apply >= self.batch_interval_s)
        ):
            await self._apply(now)
        elif self._quality_changes and mode is not SyncMode.MANUAL:
            await self._apply(now, values=False)
        self.stats.pending = len(self._held)
        self.stats.stale_paths = len(self._stale)

    async def synchronize(self) -> bool:
        """Apply everything received so far now (the MANUAL mode's trigger; works in any mode).

        Returns the twin's answer (True when there was nothing to apply).
        """
        now = self._clock()
        self._deliver_to_sinks()
        self._take_latest(now)
        self._check_stale(now)
        return await self._apply(now)

    # -- internals --------------------------------------------------------------------------
    def _schedule_ack_flush(self) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # manual input outside a loop: the next tick delivers it
            return
        self._ack_flush_scheduled = True
        loop.call_soon(self._flush_ack_sinks)

    def _flush_ack_sinks(self) -> None:
        """Everything waiting for the acknowledging sinks, now (in arrival order)."""
        self._ack_flush_scheduled = False
        pending = self._ack_pending
        if not pending:
            return
        self._ack_pending = []
        batch = merge_batches(pending)  # carries the parts' acknowledgements
        for index, sink in enumerate(list(self._sinks)):
            if id(sink) in self._ack_sinks:
                self._call_sink(index, sink, batch)

    def _deliver_to_sinks(self) -> None:
        if self._ack_sinks:
            self._flush_ack_sinks()
        pending = self._pending
        if not pending:
            return
        self._pending = []
        self._pending_count = 0
        batch = merge_batches(pending)
        for index, sink in enumerate(list(self._sinks)):
            if id(sink) not in self._ack_sinks:
                self._call_sink(index, sink, batch)
        if not self._ack_sinks:
            fire_acks(acks_of(batch))
        for subscription in self._subscriptions:
            subscription._offer(batch)

    def _call_sink(self, index: int, sink: SampleSink, batch: list[Sample]) -> None:
        try:
            sink(batch)
        except Exception as err:  # one failing sink must not stop the others or the twin
            self.stats.sink_errors += 1
            if index not in self._failing_sinks:
                self._failing_sinks.add(index)
                logger.exception("sample sink %r failed", sink)
                self._report("error", "SinkError", f"sample sink failed: {err!r}", {})
        else:
            self._failing_sinks.discard(index)

    def _take_latest(self, now: float) -> None:
        latest = self._latest
        if not latest:
            return
        self._latest = {}
        seen = self._last_seen
        timeouts = self._timeouts
        next_due = self._next_stale_due
        for path, sample in latest.items():
            seen[path] = now
            timeout = timeouts.get(path)
            if timeout is None:
                timeout = timeouts[path] = self._source_timeout(
                    self._by_name.get(sample.source), path
                )
            if now + timeout < next_due:
                next_due = now + timeout
        self._next_stale_due = next_due
        if self._never_seen:
            self._never_seen.difference_update(latest)
        if self._held:
            self._held.update(latest)
        else:
            self._held = latest

    def _source_timeout(self, source: SampleSource | None, path: str) -> float:
        value = source.stale_after(path) if source is not None else None
        timeout = self.stale_timeout_s if value is None else float(value)
        return math.inf if timeout <= 0 else timeout

    def _check_stale(self, now: float) -> None:
        if now < self._next_stale_due:
            return
        quality = self._quality
        changes = self._quality_changes
        timeouts = self._timeouts
        never = self._never_seen
        default = self.stale_timeout_s
        stale = self._stale
        next_due = math.inf
        for path, seen in self._last_seen.items():
            if path in stale:
                continue
            timeout = default if path in never else timeouts.get(path, default)
            due = seen + timeout
            if now > due:
                quality[path] = Quality.STALE
                changes[path] = Quality.STALE.value
                stale.add(path)
            elif due < next_due:
                next_due = due
        # Nothing can go stale before next_due unless a path turns good again (then its
        # last-seen time only moves forward), so the scan can wait until then.
        self._next_stale_due = next_due

    def _placed(self, path: str) -> bool:
        """Whether ``path`` fits the twin's tree (first time: checked and remembered)."""
        if path in self._known_paths:
            return True
        if path in self._bad_paths:
            return False
        sections = self._sections
        parts = path.split(".")
        above = [".".join(parts[:i]) for i in range(1, len(parts))]
        if path in sections or any(section in self._known_paths for section in above):
            self._path_conflict(path)
            return False
        self._known_paths.add(path)
        sections.update(above)
        return True

    def _build(
        self, held: Mapping[str, Sample], exclude: set[str] | frozenset[str] = frozenset()
    ) -> dict[str, Any]:
        """The values for ``held`` (of good/uncertain samples) by dotted path.

        Records quality changes in ``_quality_changes``; skips the paths in ``exclude``.
        """
        values: dict[str, Any] = {}
        quality = self._quality
        changes = self._quality_changes
        known = self._known_paths
        good, uncertain = Quality.GOOD, Quality.UNCERTAIN
        for path, sample in held.items():
            if path in exclude:
                continue
            q = sample.quality
            if quality.get(path) is not q:
                quality[path] = q
                changes[path] = q.value
                if q is Quality.STALE:
                    self._stale.add(path)
                else:
                    self._stale.discard(path)
            if q is not good and q is not uncertain:
                continue
            if path in known or self._placed(path):
                values[path] = sample.value
        return values

    def _path_conflict(self, path: str) -> None:
        if path not in self._bad_paths:
            self._bad_paths.add(path)
            self._report(
                "warning",
                "PathConflict",
                f"twin path '{path}' is both a value and a section; sample dropped",
                {"path": path},
            )

    async def _apply(self, now: float, values: bool = True) -> bool:
        async with self._apply_lock:
            held: Mapping[str, Sample] = {}
            if values:
                held = self._held
                self._held = {}
            rejected = self._rejected
            by_path = self._build(held, rejected)
            ok = True
            changes = self._quality_changes
            if changes:
                self._quality_changes = {}
            if by_path or changes:
                ok = await self._update(self._twin_update(by_path, changes))
                if ok:
                    self.stats.samples_applied += len(by_path)
                else:
                    ok = await self._apply_one_by_one(held, rejected, changes)
            if rejected and held:
                await self._retry_rejected(held)
            self._last_apply = now
            return ok

    def _twin_update(
        self, values: dict[str, Any], changes: Mapping[str, str] | None = None
    ) -> TwinUpdate:
        """One update of the twin, stamped now (the time it is applied)."""
        timestamp, epoch = now_stamp()  # the epoch is exactly what the timestamp reads back as
        return TwinUpdate(
            values,
            dict(changes) if changes else {},
            timestamp=timestamp,
            epoch=epoch,
            quality_section=self.quality_section,
        )

    async def _update(self, update: TwinUpdate) -> bool:
        try:
            if self.offload_updates:
                ok = await asyncio.to_thread(self.twin.update, update)
            else:
                ok = self.twin.update(update)
        except Exception as err:  # the twin reports False for bad data; anything else is a bug
            logger.exception("twin update raised")
            self._report("error", "TwinUpdateError", f"twin update raised: {err!r}", {})
            ok = False
        if ok:
            self.stats.updates += 1
            for listener in self._listeners:
                try:
                    listener(update)
                except Exception:
                    logger.exception("update listener %r failed", listener)
        else:
            self.stats.rejected_updates += 1
        return bool(ok)

    def _single(self, path: str, sample: Sample) -> TwinUpdate:
        """The update for one path, carrying its own quality change."""
        values = self._build({path: sample})
        change = self._quality_changes.pop(path, None)
        return self._twin_update(values, {path: change} if change is not None else None)

    async def _apply_one_by_one(
        self, held: Mapping[str, Sample], exclude: set[str], changes: dict[str, str]
    ) -> bool:
        """The twin rejected a whole update: apply path by path, mark the bad ones."""
        accepted = 0
        for path, sample in held.items():
            if path in exclude:
                continue
            # The quality changes of this tick are in ``changes`` (sent at the end).
            single = self._single(path, sample)
            if not single.flat:
                if single:
                    await self._update(single)
                continue
            if await self._update(single):
                accepted += 1
            else:
                self._reject(path, sample)
                changes[path] = Quality.BAD.value
        self.stats.samples_applied += accepted
        if changes:
            await self._update(self._twin_update({}, changes))
        return accepted > 0

    async def _retry_rejected(self, held: Mapping[str, Sample]) -> None:
        """Paths the twin rejected before are tried on their own, so they cannot spoil a tick."""
        for path in list(self._rejected):
            sample = held.get(path)
            if sample is None:
                continue
            single = self._single(path, sample)
            if not single.flat:
                if single:
                    await self._update(single)
                continue
            if await self._update(single):
                self._rejected.discard(path)
                self.stats.samples_applied += 1
            else:
                self._quality[path] = Quality.BAD
                self._quality_changes.pop(path, None)

    def _reject(self, path: str, sample: Sample) -> None:
        self._quality[path] = Quality.BAD
        if path not in self._rejected:
            self._rejected.add(path)
            self._report(
                "warning",
                "RejectedSample",
                f"the twin rejected {path} = {sample.value!r} from {sample.source} "
                f"({sample.address}); check the tag's data type",
                {"path": path, "source": sample.source, "address": sample.address},
            )

    def _report(
        self, severity: str, error_type: str, message: str, details: dict[str, object]
    ) -> None:
        try:
            self._reporter.report(severity, error_type, message, {"component": "sync", **details})
        except Exception:
            logger.exception("problem reporter failed")
