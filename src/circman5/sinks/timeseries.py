"""The time-series output as the composition root sees it: hand it samples and twin states.

:func:`open_series_output` picks the destination from
:class:`~circman5.sinks.config.OutputSettings`: InfluxDB (v2 API or 1.x) behind an outbox when one
is configured, otherwise the embedded SQLite store, or both when ``embedded.mode = "always"``
(local history for the HMI). Every destination has the same two non-blocking methods
(:class:`SeriesWriter`)::

    async with open_series_output(settings.outputs, reporter) as output:
        output.writer.write_samples(samples)       # from the sample stream
        output.writer.write_state(twin_state)      # after each twin update
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from circman5.reporting import ProblemReporter
from circman5.samples import Sample
from circman5.sinks.config import OutputSettings
from circman5.sinks.embedded_store import EmbeddedStore
from circman5.sinks.line_protocol import LineEncoder, format_line
from circman5.sinks.outbox import Outbox

if TYPE_CHECKING:
    from circman5.sinks.influxdb import InfluxDB1Sink, InfluxDB2Sink


OnDurable = Callable[[], None]
"""Called once (on the event loop) when the samples of a ``write_samples`` call are on disk."""


class SeriesWriter(Protocol):
    """Accepts samples and twin states; both calls are cheap and never block.

    ``write_samples(samples, on_durable)``: ``on_durable()`` runs once the samples are committed
    (the outbox, or the embedded store when it is the only destination); never if storing them
    failed.
    """

    def write_samples(
        self, samples: Iterable[Sample], on_durable: OnDurable | None = None
    ) -> None: ...

    def write_state(self, state: Mapping[str, object], timestamp_ns: int | None = None) -> None: ...

    def write_kpi(
        self,
        measurement: str,
        fields: Mapping[str, float],
        tags: Mapping[str, str],
        timestamp_ns: int | None = None,
    ) -> None: ...


class LineProtocolWriter:
    """Encodes to line protocol and hands the batch to the outbox (call from one thread)."""

    def __init__(self, encoder: LineEncoder, outbox: Outbox) -> None:
        self.encoder = encoder
        self.outbox = outbox

    def write_samples(self, samples: Iterable[Sample], on_durable: OnDurable | None = None) -> None:
        payload, count = self.encoder.encode_samples(samples)
        if count:
            self.outbox.submit(payload, count, on_durable)
        elif on_durable is not None:
            on_durable()  # nothing to store

    def write_state(self, state: Mapping[str, object], timestamp_ns: int | None = None) -> None:
        payload, count = self.encoder.encode_state(state, timestamp_ns)
        if count:
            self.outbox.submit(payload, count)

    def write_kpi(
        self,
        measurement: str,
        fields: Mapping[str, float],
        tags: Mapping[str, str],
        timestamp_ns: int | None = None,
    ) -> None:
        """One record of its own measurement, tagged with site and line plus ``tags``."""
        all_tags = {"site": self.encoder.site, "line": self.encoder.line, **tags}
        ts = time.time_ns() if timestamp_ns is None else timestamp_ns
        line = format_line(measurement, all_tags, dict(fields), ts)
        if line is not None:
            self.outbox.submit((line + "\n").encode(), 1)

    async def put_samples(self, samples: Iterable[Sample]) -> None:
        """Like :meth:`write_samples`, returning once the batch is on disk."""
        payload, count = self.encoder.encode_samples(samples)
        if count:
            await self.outbox.put(payload, count)


class FanOutWriter:
    """Writes to several destinations."""

    def __init__(self, *writers: SeriesWriter) -> None:
        self.writers = writers

    def write_samples(self, samples: Iterable[Sample], on_durable: OnDurable | None = None) -> None:
        """``on_durable`` follows the first destination (the remote one's outbox)."""
        batch = samples if isinstance(samples, list | tuple) else list(samples)
        for index, writer in enumerate(self.writers):
            writer.write_samples(batch, on_durable if index == 0 else None)

    def write_state(self, state: Mapping[str, object], timestamp_ns: int | None = None) -> None:
        for writer in self.writers:
            writer.write_state(state, timestamp_ns)

    def write_kpi(
        self,
        measurement: str,
        fields: Mapping[str, float],
        tags: Mapping[str, str],
        timestamp_ns: int | None = None,
    ) -> None:
        for writer in self.writers:
            writer.write_kpi(measurement, fields, tags, timestamp_ns)


@dataclass(frozen=True, slots=True)
class SeriesOutput:
    """The open time-series output: ``writer`` takes data; ``outbox`` (remote) and ``store``
    (embedded) are there for metrics and queries."""

    writer: SeriesWriter
    outbox: Outbox | None
    store: EmbeddedStore | None


@contextlib.asynccontextmanager
async def open_series_output(
    settings: OutputSettings, reporter: ProblemReporter | None = None
) -> AsyncIterator[SeriesOutput]:
    """Open the configured time-series destinations (see the module docstring)."""
    async with contextlib.AsyncExitStack() as stack:
        sink: InfluxDB2Sink | InfluxDB1Sink | None = None
        if settings.influxdb is not None or settings.influxdb1 is not None:
            # the InfluxDB clients load only when a server is configured
            from circman5.sinks.influxdb import InfluxDB1Sink, InfluxDB2Sink
        if settings.influxdb is not None:
            sink = InfluxDB2Sink(settings.influxdb)
        elif settings.influxdb1 is not None:
            sink = InfluxDB1Sink(settings.influxdb1)
        writers: list[SeriesWriter] = []
        outbox = store = None
        if sink is not None:
            await stack.enter_async_context(sink)
            outbox = Outbox(
                sink, name=sink.name, settings=settings.outbox, reporter=reporter, mergeable=True
            )
            await stack.enter_async_context(outbox)
            writers.append(LineProtocolWriter(LineEncoder.from_settings(settings.series), outbox))
        if sink is None or settings.embedded.mode == "always":
            store = EmbeddedStore(settings.embedded, settings.series)
            await stack.enter_async_context(store)
            writers.append(store)
        writer = writers[0] if len(writers) == 1 else FanOutWriter(*writers)
        yield SeriesOutput(writer, outbox, store)
