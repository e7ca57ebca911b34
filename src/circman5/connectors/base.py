"""The connector contract, and the plumbing every connector shares.

A connector is an async context manager that owns its device connection::

    async with OpcUaConnector(settings, reporter) as plc:
        async for batch in plc.batches():      # lists of Samples, in arrival order
            ...
        await plc.write("production_line.target_temperature", 23.0)

Entering starts the connector's background work (connect, subscribe or poll, reconnect with
backoff) and returns at once: a device that is down at start-up is not an error, its tags simply
stay stale until it answers. Leaving stops everything the connector started. Nothing in a
connector raises into the consumer because a device misbehaves; problems are counted in
:class:`ConnectorStatus`, logged once per state change, and reported to the injected
:class:`ProblemReporter` (the composition root turns them into twin error events).

Samples come in **batches**: :meth:`Connector.batches` yields ``list[Sample]`` holding everything
that arrived since the consumer last asked. One ``await`` per batch instead of one per sample is
what lets the MQTT path keep up with a bare paho subscriber (see ``docs/tag_mapping.md``,
"Throughput"); :meth:`Connector.samples` yields single samples for callers that prefer that.

A batch may carry acknowledgements (:class:`~circman5.connectors.sample.SampleBatch`: MQTT QoS 1/2
messages are acknowledged to the broker only once their samples are durable). A consumer of
``batches()`` fires them with ``fire_acks(acks_of(batch))`` once it stored or handled the batch
(the synchronization engine leaves that to the service's durable sink); ``samples()`` fires them
itself.

Quality: a connector marks a tag's loss itself where it can (connection lost, Modbus timeout or
exception response, OPC UA Bad status) by emitting a sample with :attr:`Quality.STALE` or
:attr:`Quality.BAD` that carries the last known value. For sources where silence is the only
symptom (an MQTT publisher that died while the broker lives on), :meth:`Connector.stale_after`
tells the synchronization engine how long a path may stay silent.
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import logging
import math
import operator
import random
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import asdict, dataclass, field
from types import TracebackType
from typing import Protocol, Self, runtime_checkable

from circman5.connectors.sample import (
    Quality,
    Sample,
    SampleValue,
    acks_of,
    fire_acks,
    merge_batches,
)

logger = logging.getLogger(__name__)

_path_of = operator.attrgetter("path")

__all__ = [
    "Backoff",
    "BaseConnector",
    "Connector",
    "ConnectorStatus",
    "LoggingProblemReporter",
    "ProblemReporter",
    "RateLimitedReporter",
    "SampleBuffer",
]


class ProblemReporter(Protocol):
    """Receives a connector's operational problems (severity: info, warning, error, critical).

    Same shape as :class:`circman5.sinks.base.EventReporter`, so one object can serve both; the
    composition root turns reports into ``ErrorEvent``s. Must be cheap and must not raise.
    """

    def report(
        self, severity: str, error_type: str, message: str, details: dict[str, object]
    ) -> None: ...


_LEVELS = {
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
    "critical": logging.CRITICAL,
}


class LoggingProblemReporter:
    """The default reporter: one log record per report."""

    def __init__(self, log: logging.Logger | None = None) -> None:
        self._log = log or logger

    def report(
        self, severity: str, error_type: str, message: str, details: dict[str, object]
    ) -> None:
        self._log.log(
            _LEVELS.get(severity, logging.WARNING), "%s: %s %s", error_type, message, details
        )


@dataclass
class _Window:
    start: float
    suppressed: int
    message: str
    details: dict[str, object]
    severity: str


class RateLimitedReporter:
    """Aggregates repeated problems so that a flood of bad input is not a flood of events.

    The first problem of a kind (``error_type``) is reported at once; further ones within
    ``interval_s`` are only counted, and :meth:`flush` (called periodically by the connector)
    reports them as one summary (``"1234 more MalformedInput problem(s) ..."``) with the last
    problem's details and the count in ``details["suppressed"]``. ``clock`` is injectable.
    """

    def __init__(
        self,
        reporter: ProblemReporter,
        source: str,
        interval_s: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._reporter = reporter
        self._source = source
        self._interval = interval_s
        self._clock = clock
        self._windows: dict[str, _Window] = {}
        self.reported = 0

    def note(
        self,
        error_type: str,
        message: str,
        details: dict[str, object] | None = None,
        severity: str = "warning",
    ) -> None:
        now = self._clock()
        details = {"source": self._source, **(details or {})}
        window = self._windows.get(error_type)
        if window is None or now - window.start >= self._interval:
            if window is not None and window.suppressed:
                self._summary(error_type, window)
            self._windows[error_type] = _Window(now, 0, message, details, severity)
            self._emit(severity, error_type, message, details)
            return
        window.suppressed += 1
        window.message = message
        window.details = details
        window.severity = severity

    def flush(self) -> None:
        """Report the summaries of windows that have ended."""
        now = self._clock()
        for error_type, window in list(self._windows.items()):
            if now - window.start < self._interval:
                continue
            if window.suppressed:
                self._summary(error_type, window)
                window.start = now
                window.suppressed = 0
            else:
                del self._windows[error_type]

    def _summary(self, error_type: str, window: _Window) -> None:
        details = dict(window.details)
        details["suppressed"] = window.suppressed
        details["last_message"] = window.message
        self._emit(
            window.severity,
            error_type,
            f"{window.suppressed} more {error_type} problem(s) from {self._source} in the last "
            f"{self._interval:.1f} s; last: {window.message}",
            details,
        )

    def _emit(
        self, severity: str, error_type: str, message: str, details: dict[str, object]
    ) -> None:
        self.reported += 1
        try:
            self._reporter.report(severity, error_type, message, details)
        except Exception:  # a reporter must not raise; if it does, ingestion still goes on
            logger.exception("problem reporter failed")


@dataclass
class ConnectorStatus:
    """What a connector reports about itself (read-only for everyone but the connector).

    Counters only grow. ``stale_tags`` is the number of tags currently marked stale or bad by
    the connector itself. Times are Unix seconds.
    """

    name: str
    protocol: str
    connected: bool = False
    last_error: str | None = None
    last_error_at: float | None = None
    connected_since: float | None = None
    samples_in: int = 0
    dropped: int = 0
    malformed: int = 0
    stale_tags: int = 0
    reconnects: int = 0
    writes: int = 0
    write_errors: int = 0
    extra: dict[str, object] = field(default_factory=dict)

    def snapshot(self) -> dict[str, object]:
        """A JSON-ready copy."""
        return asdict(self)


@runtime_checkable
class Connector(Protocol):
    """The contract the synchronization engine and the composition root rely on."""

    @property
    def name(self) -> str: ...

    @property
    def status(self) -> ConnectorStatus: ...

    async def __aenter__(self) -> Self: ...

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool | None: ...

    def batches(self) -> AsyncIterator[list[Sample]]:
        """Everything received since the last batch, oldest first; ends when the connector
        closes."""
        ...

    def samples(self) -> AsyncIterator[Sample]: ...

    async def write(self, target: str, value: SampleValue) -> None:
        """Write ``value`` to the tag with twin path or address ``target``.

        Raises :class:`~circman5.errors.TagWriteError` (refused, unknown or read-only tag,
        protocol cannot write) or :class:`~circman5.errors.DeviceUnavailable` (not connected).
        """
        ...

    def stale_after(self, path: str) -> float | None:
        """Seconds of silence after which ``path`` counts as stale.

        ``None``: the engine's default; ``math.inf``: never by silence alone (the connector
        reports the loss itself with STALE samples).
        """
        ...

    def paths(self) -> list[str]:
        """The twin paths known before any data arrives (not those of wildcard topics or
        browse discovery); the engine marks them stale if they never deliver."""
        ...


class SampleBuffer:
    """A bounded single-consumer buffer of sample batches between a connector and its reader.

    ``put`` never blocks: when more than ``max_samples`` are waiting, the oldest batches are
    dropped and counted (``dropped``), so a stalled consumer costs memory up to a limit and then
    data, never the device connection. ``get`` returns everything waiting as one list.
    """

    def __init__(self, max_samples: int = 1_000_000) -> None:
        self._batches: deque[list[Sample]] = deque()
        self._count = 0
        self._max = max_samples
        self._waiter: asyncio.Future[None] | None = None
        self._closed = False
        self.dropped = 0

    def __len__(self) -> int:
        return self._count

    def put(self, batch: list[Sample]) -> None:
        if not batch or self._closed:
            return
        self._batches.append(batch)
        self._count += len(batch)
        while self._count > self._max and len(self._batches) > 1:
            old = self._batches.popleft()
            self._count -= len(old)
            self.dropped += len(old)
            fire_acks(acks_of(old))  # lost and counted: do not hold the source back
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def close(self) -> None:
        self._closed = True
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def get(self) -> list[Sample] | None:
        """Everything waiting (at least one sample), or None once closed and empty."""
        while not self._batches:
            if self._closed:
                return None
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        if len(self._batches) == 1:
            batch = self._batches.popleft()
        else:
            batch = merge_batches(self._batches)  # carries the parts' acknowledgements
            self._batches.clear()
        self._count = 0
        return batch


class Backoff:
    """Exponential backoff with jitter: ``initial``, doubled per failure, capped at ``maximum``."""

    def __init__(self, initial: float, maximum: float, factor: float = 2.0, jitter: float = 0.1):
        self.initial = initial
        self.maximum = max(maximum, initial)
        self.factor = factor
        self.jitter = jitter
        self.failures = 0

    def next_delay(self) -> float:
        """The delay before the next attempt (and count one more failure)."""
        delay = min(self.maximum, self.initial * self.factor**self.failures)
        self.failures += 1
        if self.jitter:
            delay *= 1.0 + random.uniform(-self.jitter, self.jitter)
        return max(0.0, delay)

    def reset(self) -> None:
        self.failures = 0


def scale_value(value: float, scale: float, offset: float) -> float:
    """The engineering value of a raw reading: ``raw * scale + offset``."""
    return value * scale + offset


def unscale_value(value: float, scale: float, offset: float) -> float:
    """The raw value to write for an engineering value (inverse of :func:`scale_value`)."""
    return (value - offset) / scale


class Deadband:
    """Client-side absolute deadband: pass a value when it moved at least ``deadband``.

    A value inside the deadband is still passed on when the last one passed is older than
    ``refresh_s``, so the engine keeps hearing from a live source.
    """

    __slots__ = ("_last", "deadband", "refresh_ns")

    def __init__(self, deadband: float, refresh_s: float = 1.0) -> None:
        self.deadband = deadband
        self.refresh_ns = int(refresh_s * 1e9)
        self._last: dict[str, tuple[float, int]] = {}

    def passes(self, key: str, value: SampleValue, now_ns: int) -> bool:
        if type(value) is not float and type(value) is not int:
            return True
        last = self._last.get(key)
        if (
            last is None
            or abs(value - last[0]) >= self.deadband
            or now_ns - last[1] >= self.refresh_ns
        ):
            self._last[key] = (float(value), now_ns)
            return True
        return False


async def _cancel_until_done(tasks: list[asyncio.Task[None]]) -> None:
    """Cancel ``tasks`` and wait until they are done, cancelling again while one is not.

    A protocol library can swallow a cancellation (``asyncio.wait_for`` on Python 3.11 does when
    the awaited call completes at the same moment, and pymodbus connects through it); the task
    then keeps running, and a connector that waited for it would never close.
    """
    pending = [task for task in tasks if not task.done()]
    while pending:
        for task in pending:
            task.cancel()
        await asyncio.wait(pending, timeout=1.0)
        pending = [task for task in pending if not task.done()]


class BaseConnector(abc.ABC):
    """Shared plumbing: the sample buffer, status, TaskGroup lifecycle, problem reporting.

    Subclasses implement :meth:`_run` (the connection loop; runs until cancelled and must
    handle its own errors) and :meth:`write`. They hand samples to :meth:`_emit` and mark
    tags stale with :meth:`_mark_stale`.
    """

    protocol = "base"

    def __init__(
        self,
        name: str,
        reporter: ProblemReporter | None = None,
        *,
        max_buffered_samples: int = 1_000_000,
        problem_interval_s: float = 10.0,
    ) -> None:
        self._name = name
        self._status = ConnectorStatus(name=name, protocol=self.protocol)
        self._reporter = reporter or LoggingProblemReporter()
        self._problems = RateLimitedReporter(self._reporter, name, problem_interval_s)
        self._buffer = SampleBuffer(max_buffered_samples)
        self._task_group: asyncio.TaskGroup | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._connected_event = asyncio.Event()
        self._log = logging.getLogger(f"{type(self).__module__}")
        # Last value per path (for STALE samples that carry the last known value).
        self._last_values: dict[str, Sample] = {}
        self._stale_paths: set[str] = set()
        self._shutting_down = False

    # -- contract -------------------------------------------------------------------------
    @property
    def name(self) -> str:
        return self._name

    @property
    def status(self) -> ConnectorStatus:
        self._status.dropped = self._buffer.dropped + self._extra_dropped()
        self._status.stale_tags = len(self._stale_paths)
        return self._status

    def _extra_dropped(self) -> int:
        return 0

    async def __aenter__(self) -> Self:
        group = asyncio.TaskGroup()
        await group.__aenter__()
        self._task_group = group
        self._tasks = [
            group.create_task(self._guarded_run(), name=f"connector:{self._name}"),
            group.create_task(self._flush_problems(), name=f"connector:{self._name}:problems"),
        ]
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool | None:
        group = self._task_group
        self._task_group = None
        self._shutting_down = True
        try:
            await _cancel_until_done(self._tasks)
            if group is not None:
                await group.__aexit__(exc_type, exc, tb)
        finally:
            try:
                await self._close()
            finally:
                self._buffer.close()
                self._set_connected(False, None)
        return None

    async def batches(self) -> AsyncIterator[list[Sample]]:
        buffer = self._buffer
        while True:
            batch = await buffer.get()
            if batch is None:
                return
            yield batch

    async def samples(self) -> AsyncIterator[Sample]:
        async for batch in self.batches():
            for sample in batch:
                yield sample
            fire_acks(acks_of(batch))  # the caller has taken every sample of the batch

    @abc.abstractmethod
    async def write(self, target: str, value: SampleValue) -> None: ...

    def stale_after(self, path: str) -> float | None:
        return None

    def paths(self) -> list[str]:
        return []

    async def wait_connected(self) -> None:
        """Wait until the connector is connected (bound it with ``asyncio.timeout``)."""
        await self._connected_event.wait()

    # -- for subclasses -------------------------------------------------------------------
    @abc.abstractmethod
    async def _run(self) -> None:
        """The connection loop: connect, read, reconnect with backoff, until cancelled."""

    async def _close(self) -> None:
        """Release the connection (called on exit after the tasks ended)."""
        return None

    async def _guarded_run(self) -> None:
        # _run handles the device's errors; this is the connector's last line of defence so that
        # a bug in one connector never takes the TaskGroup (and the service) down.
        while True:
            try:
                await self._run()
                return
            except asyncio.CancelledError:
                raise
            except Exception as err:
                self._log.exception("connector %s: unexpected error; restarting", self._name)
                self._record_error(f"internal error: {err!r}")
                self._set_connected(False, str(err))
                await asyncio.sleep(1.0)

    async def _flush_problems(self) -> None:
        while True:
            await asyncio.sleep(1.0)
            self._problems.flush()

    def _emit(self, batch: list[Sample], remember: bool = True) -> None:
        """Hand samples to the reader; remembers the last value per path (for STALE samples).

        ``remember=False``: the connector keeps its last batches itself and fills
        ``_last_values`` in :meth:`_recall` when it needs them (saves work per sample).
        """
        if not batch:
            return
        if remember:
            self._last_values.update(zip(map(_path_of, batch), batch, strict=True))
        stale = self._stale_paths
        if stale:
            for sample in batch:
                if sample.quality is Quality.GOOD:
                    stale.discard(sample.path)
        self._status.samples_in += len(batch)
        self._buffer.put(batch)

    def _mark_stale(
        self, paths: Sequence[str] | None = None, quality: Quality = Quality.STALE
    ) -> None:
        """Emit ``quality`` samples (last known value, now) for ``paths`` (default: all known)."""
        self._recall()
        now = time.time_ns()
        batch: list[Sample] = []
        targets = list(self._last_values) if paths is None else paths
        for path in targets:
            last = self._last_values.get(path)
            self._stale_paths.add(path)
            if last is None or last.quality is quality:
                continue
            batch.append(Sample(last.source, last.address, path, last.value, now, quality))
        if batch:
            self._buffer.put(batch)
            for sample in batch:
                self._last_values[sample.path] = sample

    def _recall(self) -> None:
        """Bring ``_last_values`` up to date (for connectors that emit with remember=False)."""
        return None

    def _record_error(self, message: str) -> None:
        self._status.last_error = message
        self._status.last_error_at = time.time()

    def _set_connected(self, connected: bool, error: str | None) -> None:
        """Track the connection state; logs only on a change (once down, once back up)."""
        status = self._status
        if error:
            self._record_error(error)
        if connected == status.connected:
            return
        status.connected = connected
        if connected:
            status.connected_since = time.time()
            self._connected_event.set()
            self._log.info("%s connector %s: connected", self.protocol, self._name)
        elif self._shutting_down:
            status.connected_since = None
            self._connected_event.clear()
            self._log.info("%s connector %s: closed", self.protocol, self._name)
        else:
            status.connected_since = None
            self._connected_event.clear()
            self._log.warning(
                "%s connector %s: disconnected (%s)", self.protocol, self._name, error or "closed"
            )
            if error:
                self._problems.note(
                    "ConnectionLost",
                    f"{self.protocol} connector {self._name} lost its connection: {error}",
                    {"protocol": self.protocol},
                )

    def _malformed(self, address: str, reason: str, payload: object = None) -> None:
        """Count and report (rate-limited) one piece of bad input; ingestion goes on."""
        self._status.malformed += 1
        details: dict[str, object] = {"address": address, "reason": reason}
        if payload is not None:
            text = repr(payload)
            details["payload"] = text if len(text) <= 200 else text[:200] + "..."
        self._problems.note(
            "MalformedInput", f"malformed input on {address}: {reason}", details, "warning"
        )

    @staticmethod
    def _finite(value: float) -> bool:
        return math.isfinite(value)

    async def _sleep(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.sleep(seconds)
