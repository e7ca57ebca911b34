"""The service side of the ingestion workers: start, supervise and listen to N processes.

:class:`IngestionWorkerPool` stands in for the MQTT or OPC UA connector of ``workers = N``: it is a
connector to the synchronization engine (its samples are the latest per path the workers
forward; newer source timestamps win, as the workers' shares arrive in any order), and its
status is the sum of the workers'. The tags of a dead OPC UA worker are marked stale until its
successor delivers them. One task per worker runs the process and reads its frames; a
worker that exits is restarted with exponential backoff (``restart_initial_s`` up to
``restart_max_s``, from the shortest again once it stayed up a minute), logged and published as a
``WorkerExited`` error event. On shutdown each worker's stdin is closed and it gets
``stop_timeout_s`` to store and deliver what it holds before it is killed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import sys
import time
from collections.abc import Sequence
from dataclasses import fields
from typing import Any, TypedDict, Unpack

import orjson

from circman5.connectors.base import BaseConnector
from circman5.connectors.config import (
    AnyConnectorSettings,
    MqttConnectorSettings,
    OpcUaConnectorSettings,
    stale_timeout,
)
from circman5.connectors.factory import create_connector
from circman5.connectors.status import ConnectorStatus
from circman5.errors import TagWriteError
from circman5.reporting import ProblemReporter
from circman5.retry import Backoff
from circman5.samples import Quality, Sample, SampleValue, make_sample
from circman5.service.workers.job import PooledSettings, WorkerJob
from circman5.service.workers.status import WorkerStatus
from circman5.sinks.config import OutputSettings
from circman5.sinks.outbox import OutboxMetrics

logger = logging.getLogger(__name__)

WORKER_MODULE = "circman5.service.workers"
_FRAME_LIMIT = 256 * 1024 * 1024
_QUALITIES = {q.value: q for q in Quality}
#: ConnectorStatus counters summed over the workers (and over their earlier incarnations).
_COUNTERS = (
    "samples_in",
    "dropped",
    "malformed",
    "reconnects",
    "connect_attempts",
    "connect_failures",
    "timestamps_replaced",
    "timestamps_rejected",
    "topics_refused",
    "paths_over_limit",
)
_OUTBOX_FIELDS = frozenset(f.name for f in fields(OutboxMetrics))


class _Worker:
    """One worker slot: the current process and what its frames said."""

    def __init__(self, connector: str, index: int) -> None:
        self.status = WorkerStatus(connector, index)
        self.process: asyncio.subprocess.Process | None = None
        self.connector: dict[str, Any] = {}
        self.retired: dict[str, int] = dict.fromkeys(_COUNTERS, 0)
        self.outbox: OutboxMetrics | None = None
        self.paths: set[str] = set()  # the twin paths its frames carried

    def counter(self, key: str) -> int:
        return self.retired[key] + int(self.connector.get(key, 0))

    def retire(self) -> None:
        """The process ended: its counters carry over to the next one."""
        for key in _COUNTERS:
            self.retired[key] += int(self.connector.get(key, 0))
        self.connector = {}
        self.status.alive = self.status.connected = False
        self.status.pid = None


class PoolOptions(TypedDict, total=False):
    """The keyword options of :class:`IngestionWorkerPool` (see its constructor)."""

    tick_s: float
    log_level: str
    log_format: str
    restart_initial_s: float
    restart_max_s: float
    stable_after_s: float
    stop_timeout_s: float


class IngestionWorkerPool(BaseConnector):
    """``workers = N`` of an MQTT or OPC UA connector (see the module documentation)."""

    def __init__(
        self,
        settings: PooledSettings,
        outputs: OutputSettings,
        reporter: ProblemReporter | None = None,
        *,
        tick_s: float = 0.05,
        log_level: str = "INFO",
        log_format: str = "plain",
        restart_initial_s: float = 0.5,
        restart_max_s: float = 30.0,
        stable_after_s: float = 60.0,
        stop_timeout_s: float = 15.0,
    ) -> None:
        self.protocol = settings.type
        super().__init__(
            settings.name, reporter, max_buffered_samples=settings.max_buffered_samples
        )
        self.settings = settings
        self._outputs = outputs
        self._tick_s = tick_s
        self._log_level = log_level
        self._log_format = log_format
        self._restart = (restart_initial_s, restart_max_s)
        self._stable_after_s = stable_after_s
        self._stop_timeout_s = stop_timeout_s
        self._workers = [_Worker(settings.name, k) for k in range(1, settings.workers + 1)]
        self._newest: dict[str, int] = {}  # twin path -> newest source timestamp forwarded
        self._path_tags = {tag.path: tag for tag in settings.tags if "{" not in tag.path}

    # -- the connector contract --------------------------------------------------------------
    def paths(self) -> list[str]:
        return list(self._path_tags)

    def stale_after(self, path: str) -> float | None:
        tag = self._path_tags.get(path)
        timeout = stale_timeout(tag) if tag is not None else None
        if timeout is None and self.protocol == "opcua":
            return math.inf  # as the OPC UA connector: subscriptions report changes only
        return timeout

    async def write(self, target: str, value: SampleValue) -> None:
        raise TagWriteError(
            f"{self.name}: writes are not offered by a connector with ingestion workers "
            "(configure a writable tag on a connector with workers = 1)"
        )

    @property
    def status(self) -> ConnectorStatus:
        status = self._status
        workers = self._workers
        for key in _COUNTERS:
            setattr(status, key, sum(w.counter(key) for w in workers))
        status.dropped += self._buffer.dropped
        status.stale_tags = len(self._stale_paths)
        down = [w for w in workers if not (w.status.alive and w.status.connected)]
        status.connected = not down
        if down:
            worker = down[0]
            why = (
                worker.connector.get("last_error")
                if worker.status.alive
                else worker.status.last_exit
            )
            status.last_error = f"worker {worker.status.index}: {why or 'starting'}"
        status.extra["workers"] = [
            {
                "index": w.status.index,
                "pid": w.status.pid,
                "alive": w.status.alive,
                "connected": w.status.connected,
                "tags": w.status.tags,
            }
            for w in workers
        ]
        return status

    @property
    def workers(self) -> list[WorkerStatus]:
        for worker in self._workers:
            worker.status.messages = worker.counter("samples_in")
            worker.status.outbox_depth_points = worker.outbox.depth_points if worker.outbox else 0
        return [w.status for w in self._workers]

    @property
    def outboxes(self) -> list[OutboxMetrics]:
        """The workers' outboxes as they last reported them."""
        return [w.outbox for w in self._workers if w.outbox is not None]

    # -- running -----------------------------------------------------------------------------
    async def _run(self) -> None:
        async with asyncio.TaskGroup() as group:
            for worker in self._workers:
                group.create_task(self._keep_running(worker), name=f"{self.name}:worker")

    async def _keep_running(self, worker: _Worker) -> None:
        backoff = Backoff(*self._restart)
        status = worker.status
        while True:
            started = time.monotonic()
            exit_code = await self._run_once(worker)
            status.restarts += 1
            status.last_exit = f"exited with code {exit_code}" if exit_code is not None else "lost"
            if time.monotonic() - started >= self._stable_after_s:
                backoff.reset()
            delay = backoff.next_delay()
            message = (
                f"ingestion worker {status.index} of connector {self.name} {status.last_exit}; "
                f"restart #{status.restarts} in {delay:.1f} s"
            )
            logger.error("%s", message)
            self._reporter.report(
                "error",
                "WorkerExited",
                message,
                {
                    "connector": self.name,
                    "worker": status.index,
                    "exit_code": exit_code,
                    "restarts": status.restarts,
                },
            )
            await asyncio.sleep(delay)

    async def _run_once(self, worker: _Worker) -> int | None:
        job = WorkerJob(
            connector=self.settings,
            outputs=self._outputs,
            index=worker.status.index,
            tick_s=self._tick_s,
            log_level=self._log_level,
            log_format=self._log_format,
            shutdown_budget_s=max(1.0, self._stop_timeout_s / 3),
        )
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            WORKER_MODULE,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            limit=_FRAME_LIMIT,
        )
        worker.process = process
        worker.status.pid = process.pid
        worker.status.alive = True
        assert process.stdin is not None and process.stdout is not None
        try:
            process.stdin.write(job.dumps())
            with contextlib.suppress(ConnectionError):
                await process.stdin.drain()
            while line := await process.stdout.readline():
                self._on_frame(worker, line)
            return await process.wait()
        except asyncio.CancelledError:
            raise  # shutting down: _close stops the process gracefully
        except Exception as err:  # a broken frame: the process goes, the slot restarts
            logger.exception("ingestion worker %d of %s failed", worker.status.index, self.name)
            self._record_error(f"worker {worker.status.index}: {err!r}")
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            return await process.wait()
        finally:
            if process.returncode is not None:
                worker.process = None
                worker.retire()
                self._orphaned(worker)

    def _orphaned(self, worker: _Worker) -> None:
        """OPC UA: a dead worker's tags go stale until its successor's session delivers them
        (silence alone never marks an OPC UA tag stale). MQTT: any worker may carry any path."""
        if self.protocol == "opcua" and worker.paths:
            self._mark_stale(sorted(worker.paths))

    def _on_frame(self, worker: _Worker, line: bytes) -> None:
        frame = orjson.loads(line)
        worker.connector = frame["c"]
        worker.status.connected = bool(worker.connector.get("connected"))
        tags = worker.connector.get("extra", {}).get("tags")
        if tags is not None:
            worker.status.tags = int(tags)
        outbox = frame.get("o")
        if outbox:
            worker.outbox = OutboxMetrics(
                **{k: v for k, v in outbox.items() if k in _OUTBOX_FIELDS}
            )
        for severity, error_type, message, details in frame.get("p", ()):
            details = dict(details)
            details["worker"] = worker.status.index
            self._reporter.report(severity, error_type, message, details)
        rows = frame["s"]
        if not rows:
            return
        newest = self._newest
        name = self.name
        batch: list[Sample] = []
        if self.protocol == "opcua":
            worker.paths.update(row[1] for row in rows)
        for address, path, value, timestamp_ns, quality in rows:
            # the workers' shares arrive in any order: an older sample never replaces a newer one
            if timestamp_ns < newest.get(path, 0):
                continue
            newest[path] = timestamp_ns
            batch.append(make_sample(name, address, path, value, timestamp_ns, _QUALITIES[quality]))
        self._emit(batch)

    async def _close(self) -> None:
        """Stop every worker: close its stdin, let it finish, kill it after the timeout."""
        await asyncio.gather(*(self._stop(w) for w in self._workers))

    async def _stop(self, worker: _Worker) -> None:
        process = worker.process
        if process is None or process.returncode is not None:
            return
        if process.stdin is not None:
            process.stdin.close()  # the worker's signal to stop
        try:
            async with asyncio.timeout(self._stop_timeout_s):
                await process.communicate()  # reads (and drops) the last frames, waits
        except TimeoutError:
            logger.warning(
                "ingestion worker %d of %s did not stop in %.0f s: killed",
                worker.status.index,
                self.name,
                self._stop_timeout_s,
            )
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            await process.wait()
        worker.process = None
        worker.retire()


def _pooled(entry: AnyConnectorSettings) -> PooledSettings | None:
    if isinstance(entry, MqttConnectorSettings | OpcUaConnectorSettings) and entry.workers > 1:
        return entry
    return None


def create_service_connectors(
    entries: Sequence[AnyConnectorSettings],
    outputs: OutputSettings,
    reporter: ProblemReporter | None = None,
    **pool_options: Unpack[PoolOptions],
) -> list[BaseConnector]:
    """The service's connectors: a worker pool for ``workers > 1``, the connector otherwise."""
    connectors: list[BaseConnector] = []
    for entry in entries:
        if not entry.enabled:
            continue
        pooled = _pooled(entry)
        if pooled is not None:
            connectors.append(IngestionWorkerPool(pooled, outputs, reporter, **pool_options))
        else:
            connectors.append(create_connector(entry, reporter))
    return connectors


def _pools(connectors: Sequence[object]) -> list[IngestionWorkerPool]:
    return [c for c in connectors if isinstance(c, IngestionWorkerPool)]


def stored_by_workers(connectors: Sequence[object]) -> frozenset[str]:
    """The sources whose samples the workers store themselves (the service must not again)."""
    return frozenset(pool.name for pool in _pools(connectors))


def worker_outboxes(connectors: Sequence[object]) -> list[OutboxMetrics]:
    """Every worker's outbox, as last reported (for ``/ready`` and the metrics)."""
    return [outbox for pool in _pools(connectors) for outbox in pool.outboxes]


def worker_statuses(connectors: Sequence[object]) -> list[WorkerStatus]:
    """Every worker of every pool (for the metrics)."""
    return [status for pool in _pools(connectors) for status in pool.workers]
