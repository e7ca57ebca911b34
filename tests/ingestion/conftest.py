"""Shared helpers of the ingestion tests: a recording problem reporter, condition waits, a twin."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import pytest

from circman5.connectors.base import BaseConnector
from circman5.manufacturing.digital_twin.core.twin_core import DigitalTwin
from circman5.manufacturing.digital_twin.event_notification.event_manager import EventManager
from circman5.samples import Quality, Sample, acks_of, fire_acks
from simulators.bench import SimulatorBench


@dataclass
class Report:
    severity: str
    error_type: str
    message: str
    details: dict[str, object]


@dataclass
class RecordingReporter:
    """A ProblemReporter that keeps what it is told."""

    reports: list[Report] = field(default_factory=list)

    def report(
        self, severity: str, error_type: str, message: str, details: dict[str, object]
    ) -> None:
        self.reports.append(Report(severity, error_type, message, details))

    def of(self, error_type: str) -> list[Report]:
        return [r for r in self.reports if r.error_type == error_type]


async def eventually(
    condition: Callable[[], bool | Awaitable[bool]],
    within: float = 10.0,
    what: str = "condition",
    interval: float = 0.02,
) -> None:
    """Poll ``condition`` (sync or async) until true; fail after ``within`` seconds."""
    deadline = time.monotonic() + within
    while True:
        result = condition()
        if not isinstance(result, bool):
            result = await result
        if result:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {within:.1f}s waiting for {what}")
        await asyncio.sleep(interval)


class Clock:
    """A monotonic clock the test moves by hand (``clock.now += 1``)."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def sample(
    path: str, value: float | str | bool, quality: Quality = Quality.GOOD, source: str = "src"
) -> Sample:
    """A sample of ``path`` received now (address ``addr:<path>``)."""
    return Sample(source, f"addr:{path}", path, value, time.time_ns(), quality)


@pytest.fixture
def reporter() -> RecordingReporter:
    return RecordingReporter()


@pytest.fixture
def twin() -> Iterator[DigitalTwin]:
    """A fresh, initialized DigitalTwin singleton (and event manager) for one test."""
    EventManager._reset_instance()
    DigitalTwin._reset_instance()
    instance = DigitalTwin()
    assert instance.initialize()
    yield instance
    DigitalTwin._reset_instance()
    EventManager._reset_instance()


class Collector:
    """Reads a connector's batches in a task and keeps every sample (and, having kept them,
    fires their acknowledgements, as the service does once they are durable)."""

    def __init__(self, connector: BaseConnector) -> None:
        self.connector = connector
        self.samples: list[Sample] = []

    async def run(self) -> None:
        async for batch in self.connector.batches():
            self.samples.extend(batch)
            fire_acks(acks_of(batch))

    def latest(self, quality: Quality | None = Quality.GOOD) -> dict[str, Sample]:
        """The latest sample per path (of that quality; all qualities for None)."""
        return {s.path: s for s in self.samples if quality is None or s.quality is quality}

    def values(self, path: str) -> list[object]:
        return [s.value for s in self.samples if s.path == path and s.quality is Quality.GOOD]


@asynccontextmanager
async def collecting(
    connector: BaseConnector, connect_timeout: float = 15.0
) -> AsyncIterator[Collector]:
    """Enter ``connector``, collect its samples in a task, wait until it is connected."""
    async with connector:
        collector = Collector(connector)
        async with asyncio.TaskGroup() as group:
            task = group.create_task(collector.run())
            if connect_timeout:
                async with asyncio.timeout(connect_timeout):
                    await connector.wait_connected()
            try:
                yield collector
            finally:
                task.cancel()


async def outage_and_recovery(
    bench: SimulatorBench,
    server: str,
    connector: BaseConnector,
    collector: Collector,
    paths: set[str],
) -> None:
    """Take ``server`` of the bench down for a second: every path turns stale, the connector
    reconnects and every path gets a fresh good value."""
    await eventually(lambda: len(collector.latest()) == len(paths))
    await bench.outage(server, 1.0)
    await eventually(
        lambda: len(collector.latest(Quality.STALE)) == len(paths), what="every tag stale"
    )
    mark = len(collector.samples)
    await eventually(lambda: connector.status.connected, within=15, what="the reconnect")
    await eventually(
        lambda: {s.path for s in collector.samples[mark:] if s.quality is Quality.GOOD} == paths,
        what="fresh values of every tag",
    )
    assert connector.status.reconnects >= 1
