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

A batch may carry acknowledgements (:class:`~circman5.samples.SampleBatch`: MQTT QoS 1/2
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
import operator
import time
from collections.abc import AsyncIterator, Sequence
from types import TracebackType
from typing import Protocol, Self, runtime_checkable

from circman5.connectors.buffer import SampleBuffer
from circman5.connectors.status import ConnectorStatus
from circman5.connectors.timestamps import DEFAULT_MAX_AGE_S, TimestampPolicy, TimestampWindow
from circman5.reporting import LoggingProblemReporter, ProblemReporter, RateLimitedReporter
from circman5.samples import (
    Quality,
    Sample,
    SampleValue,
    acks_of,
    fire_acks,
)

logger = logging.getLogger(__name__)

_path_of = operator.attrgetter("path")

__all__ = ["BaseConnector", "Connector"]


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
        # Connection-state reporting (see _set_connected).
        self._ever_up = False
        self._failure_reason: str | None = None
        self._outage_started: float | None = None
        self._outage_failures = 0
        # Source timestamps (see use_output_retention and _timestamp_outside).
        self._window_max_age_s: float | None = None
        self.timestamp_window = TimestampWindow()

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

    def use_output_retention(self, max_age_s: float | None) -> None:
        """Tell the connector the output's retention: source timestamps older than this are
        outside its window, unless the connector's own ``timestamp_max_age_s`` is set."""
        if self._window_max_age_s is None and max_age_s is not None:
            self.timestamp_window = TimestampWindow(max_age_s, self.timestamp_window.max_future_s)

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
        """Track the connection state and tell the user about it, once per change.

        * connected (was not): INFO log; if attempts failed first (an outage, or a first
          connection that took retries), one ``ConnectionRestored`` info event with the outage
          length (``outage_s``) and the number of failed attempts (``failed_attempts``).
        * an established connection drops: WARNING log and one ``ConnectionLost`` error event.
        * an attempt fails (not connected before): counted in ``connect_failures``; the first
          failure of an outage and every change of the reason log one WARNING line and publish
          one ``ConnectionFailed`` error event; identical repeats are only counted.

        ``status.last_error`` always holds the latest reason (``/ready`` shows it).
        """
        status = self._status
        if error:
            self._record_error(error)
        if connected:
            if status.connected:
                return
            status.connect_attempts += 1
            self._report_connected(status)
            return
        if self._shutting_down:
            if status.connected:
                status.connected = False
                status.connected_since = None
                self._connected_event.clear()
                self._log.info("%s connector %s: closed", self.protocol, self._name)
            return
        if status.connected:
            self._report_lost(status, error)
        elif error:
            status.connect_attempts += 1
            self._report_attempt_failed(status, error)

    def _report_connected(self, status: ConnectorStatus) -> None:
        status.connected = True
        status.connected_since = time.time()
        self._connected_event.set()
        failures = self._outage_failures
        started = self._outage_started
        self._outage_failures = 0
        self._outage_started = None
        self._failure_reason = None
        first = not self._ever_up
        self._ever_up = True
        if started is None:
            self._log.info("%s connector %s: connected", self.protocol, self._name)
            return
        outage_s = round(time.monotonic() - started, 3)
        what = "connected" if first else "connection restored"
        self._log.info(
            "%s connector %s: %s after %.1f s (%d failed attempt(s))",
            self.protocol,
            self._name,
            what,
            outage_s,
            failures,
        )
        self._problems.note(
            "ConnectionRestored",
            f"{self.protocol} connector {self._name}: {what} after {outage_s:.1f} s "
            f"({failures} failed attempt(s))",
            {
                "protocol": self.protocol,
                "outage_s": outage_s,
                "failed_attempts": failures,
                "first_connection": first,
            },
            "info",
        )

    def _report_lost(self, status: ConnectorStatus, error: str | None) -> None:
        status.connected = False
        status.connected_since = None
        self._connected_event.clear()
        self._outage_started = time.monotonic()
        self._outage_failures = 0
        reason = error or "closed"
        self._failure_reason = reason
        self._log.warning("%s connector %s: disconnected (%s)", self.protocol, self._name, reason)
        self._problems.note(
            "ConnectionLost",
            f"{self.protocol} connector {self._name} lost its connection: {reason}",
            {"protocol": self.protocol, "reason": reason},
            "error",
            key=f"ConnectionLost:{reason}",
        )

    def _report_attempt_failed(self, status: ConnectorStatus, error: str) -> None:
        status.connect_failures += 1
        self._outage_failures += 1
        if self._outage_started is None:
            self._outage_started = time.monotonic()
        if error == self._failure_reason:
            return
        self._failure_reason = error
        self._log.warning("%s connector %s: cannot connect (%s)", self.protocol, self._name, error)
        self._problems.note(
            "ConnectionFailed",
            f"{self.protocol} connector {self._name} cannot connect: {error}",
            {
                "protocol": self.protocol,
                "reason": error,
                "failed_attempts": self._outage_failures,
                "ever_connected": self._ever_up,
            },
            "error",
            key=f"ConnectionFailed:{error}",
        )

    def _configure_timestamp_window(self, max_age_s: float | None, max_future_s: float) -> None:
        """The connector's own window settings (``max_age_s`` None: the output's retention)."""
        self._window_max_age_s = max_age_s
        self.timestamp_window = TimestampWindow(
            DEFAULT_MAX_AGE_S if max_age_s is None else max_age_s, max_future_s
        )

    def _timestamp_outside(
        self,
        address: str,
        path: str,
        timestamp_ns: int,
        received_ns: int,
        policy: TimestampPolicy,
    ) -> int | None:
        """Count and report (rate-limited) a source timestamp outside the window.

        Returns the timestamp to use instead (the receive time) for ``"replace"``, or None: drop
        the sample (``"reject"``).
        """
        reason = self.timestamp_window.describe(timestamp_ns, received_ns)
        details: dict[str, object] = {
            "address": address,
            "path": path,
            "timestamp_ns": timestamp_ns,
            "reason": reason,
            "action": "replaced by the receive time" if policy == "replace" else "rejected",
        }
        if policy == "replace":
            self._status.timestamps_replaced += 1
            result: int | None = received_ns
        else:
            self._status.timestamps_rejected += 1
            result = None
        self._problems.note(
            "TimestampOutOfRange",
            f"{address} -> {path}: {reason}; {details['action']}",
            details,
            "warning",
        )
        return result

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

    async def _sleep(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.sleep(seconds)
