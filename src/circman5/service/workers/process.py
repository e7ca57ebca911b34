"""One ingestion worker process: ``python -m circman5.service.workers``.

Started by :class:`~circman5.service.workers.pool.IngestionWorkerPool`, never by hand. It reads
its :class:`~circman5.service.workers.job.WorkerJob` from stdin, builds the connector with the
connector factory from the job's settings made the worker's own (:func:`worker_connector_settings`:
MQTT on the shared subscription with a client id of its own, OPC UA on its share of the tags
with a session of its own), stores every sample through its own outbox (MQTT QoS 1/2 messages are
acknowledged once their samples are on disk) and, every ``tick_s``, writes one frame with the
latest sample per path, its status, its outbox figures and its problems to the pipe that was its
stdout (stdout itself goes to stderr, so nothing a library prints can corrupt the frames).

It stops when stdin closes (the service stops, or died) or on SIGTERM: the connector disconnects,
the outbox gets ``shutdown_budget_s`` to deliver, and what it could not deliver stays on disk for
the next worker with the same index.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import operator
import os
import signal
import sys
from collections.abc import AsyncIterator, Callable
from typing import Literal, cast

import orjson

from circman5.connectors.base import BaseConnector
from circman5.connectors.factory import create_connector
from circman5.connectors.mqtt.config import MqttConnectorSettings
from circman5.errors import ConfigError
from circman5.logging_setup import configure_logging
from circman5.samples import Sample
from circman5.service.gc_tuning import tune_garbage_collector
from circman5.service.outputs import durable_sample_sink
from circman5.service.workers.job import PooledSettings, WorkerJob
from circman5.sinks.line_protocol import LineEncoder
from circman5.sinks.outbox import Outbox
from circman5.sinks.timeseries import LineProtocolWriter

logger = logging.getLogger(__name__)

_MAX_PENDING_PROBLEMS = 1000
_path_of = operator.attrgetter("path")


class ForwardingReporter:
    """Keeps the worker's problems for the next frame (the service publishes them)."""

    def __init__(self) -> None:
        self.pending: list[list[object]] = []
        self.dropped = 0

    def report(
        self, severity: str, error_type: str, message: str, details: dict[str, object]
    ) -> None:
        if len(self.pending) < _MAX_PENDING_PROBLEMS:
            self.pending.append([severity, error_type, message, details])
        else:
            self.dropped += 1

    def take(self) -> list[list[object]]:
        taken, self.pending = self.pending, []
        return taken


def worker_connector_settings(job: WorkerJob) -> PooledSettings:
    """The connector as worker ``job.index`` runs it. MQTT: its own persistent session on the
    shared subscription; OPC UA: its own session for its share of the tags."""
    s = job.connector
    if isinstance(s, MqttConnectorSettings):
        return s.model_copy(
            update={
                "client_id": f"{s.effective_client_id}-worker-{job.index}",
                "share_group": s.effective_share_group,
                "workers": 1,
            }
        )
    return s.model_copy(update={"share": (job.index, s.workers), "workers": 1})


def _describe(settings: PooledSettings) -> str:
    if isinstance(settings, MqttConnectorSettings):
        return f"subscribing as {settings.effective_client_id} in group {settings.share_group}"
    index, count = settings.share or (1, 1)
    return f"monitoring share {index} of {count} of the tags of {settings.url}"


def outbox_name(sink_name: str, job: WorkerJob) -> str:
    """``influxdb-<connector>-worker-<k>``: the worker's outbox file under ``<data dir>/outbox``."""
    return f"{sink_name}-{job.connector.name}-worker-{job.index}"


@contextlib.asynccontextmanager
async def open_worker_output(
    job: WorkerJob, reporter: ForwardingReporter
) -> AsyncIterator[tuple[LineProtocolWriter, Outbox]]:
    """The worker's time-series output: the configured InfluxDB behind an outbox of its own."""
    outputs = job.outputs
    from circman5.sinks.influxdb import InfluxDB1Sink, InfluxDB2Sink

    sink: InfluxDB2Sink | InfluxDB1Sink
    if outputs.influxdb is not None:
        sink = InfluxDB2Sink(outputs.influxdb, name=outbox_name("influxdb", job))
    elif outputs.influxdb1 is not None:
        sink = InfluxDB1Sink(outputs.influxdb1, name=outbox_name("influxdb1", job))
    else:
        raise ConfigError("settings", "outputs", "ingestion workers need an InfluxDB output")
    async with sink:
        outbox = Outbox(
            sink, name=sink.name, settings=outputs.outbox, reporter=reporter, mergeable=True
        )
        async with outbox:
            yield LineProtocolWriter(LineEncoder.from_settings(outputs.series), outbox), outbox


class FrameChannel:
    """The pipe to the service process: one JSON line per frame."""

    def __init__(self, writer: asyncio.StreamWriter) -> None:
        self._writer = writer

    @classmethod
    async def open(cls, fd: int) -> FrameChannel:
        loop = asyncio.get_running_loop()
        pipe = os.fdopen(fd, "wb", buffering=0)
        transport, protocol = await loop.connect_write_pipe(
            lambda: asyncio.streams.FlowControlMixin(loop=loop), pipe
        )
        return cls(asyncio.StreamWriter(transport, protocol, None, loop))

    async def send(self, frame: dict[str, object]) -> None:
        self._writer.write(orjson.dumps(frame, option=orjson.OPT_APPEND_NEWLINE, default=str))
        await self._writer.drain()

    def close(self) -> None:
        self._writer.close()


def _frame(
    latest: dict[str, Sample],
    connector: BaseConnector,
    outbox: Outbox,
    reporter: ForwardingReporter,
) -> dict[str, object]:
    samples = [
        [s.address, s.path, s.value, s.timestamp_ns, s.quality.value] for s in latest.values()
    ]
    latest.clear()
    return {"s": samples, "c": connector.status, "o": outbox.metrics, "p": reporter.take()}


async def _consume(
    connector: BaseConnector,
    store: Callable[[list[Sample]], None],
    latest: dict[str, Sample],
) -> None:
    async for batch in connector.batches():
        store(batch)  # durable first: the acknowledgements fire once the outbox committed
        latest.update(zip(map(_path_of, batch), batch, strict=True))  # the last per path wins


async def _forward(
    channel: FrameChannel,
    tick_s: float,
    frame: Callable[[], dict[str, object]],
) -> None:
    while True:
        await asyncio.sleep(tick_s)
        await channel.send(frame())


def _watch_stdin(stop: asyncio.Event) -> None:
    """Stop once stdin closes: the service stopped us, or died."""
    loop = asyncio.get_running_loop()

    def readable() -> None:
        try:
            data = os.read(0, 4096)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            loop.remove_reader(0)
            stop.set()

    loop.add_reader(0, readable)


async def run(job: WorkerJob, channel_fd: int) -> None:
    """The worker until stdin closes or SIGTERM."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    _watch_stdin(stop)
    channel = await FrameChannel.open(channel_fd)
    reporter = ForwardingReporter()
    settings = worker_connector_settings(job)
    latest: dict[str, Sample] = {}
    logger.info(
        "ingestion worker %d of connector %s (pid %d): %s",
        job.index,
        settings.name,
        os.getpid(),
        _describe(settings),
    )
    async with open_worker_output(job, reporter) as (writer, outbox):
        connector = create_connector(settings, reporter)

        def frame() -> dict[str, object]:
            return _frame(latest, connector, outbox, reporter)

        async with connector, asyncio.TaskGroup() as group:
            tune_garbage_collector()
            consume = group.create_task(_consume(connector, durable_sample_sink(writer), latest))
            forward = group.create_task(_forward(channel, job.tick_s, frame))
            await stop.wait()
            consume.cancel()
            forward.cancel()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(outbox.drain(), job.shutdown_budget_s)
        with contextlib.suppress(ConnectionError):
            await channel.send(frame())
        m = outbox.metrics
        logger.info(
            "ingestion worker %d of connector %s stopped: %d samples, %d points delivered, "
            "%d kept on disk",
            job.index,
            settings.name,
            connector.status.samples_in,
            m.delivered_points,
            m.depth_points,
        )
    channel.close()


def _name_records(suffix: str) -> None:
    """Every log record of this process names the worker (``circman5...client[mes worker 2]``)."""
    make_record = logging.getLogRecordFactory()

    def named(*args: object, **kwargs: object) -> logging.LogRecord:
        record = make_record(*args, **kwargs)
        if isinstance(record.name, str):
            record.name += suffix
        return record

    logging.setLogRecordFactory(named)


def main() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl+C goes to the service, which stops us
    job = WorkerJob.load(sys.stdin.buffer)
    channel_fd = os.dup(1)
    os.dup2(2, 1)  # print() and libraries' output go to the log, not into the frames
    configure_logging(job.log_level, cast(Literal["plain", "json"], job.log_format))
    _name_records(f"[{job.connector.name} worker {job.index}]")
    asyncio.run(run(job, channel_fd))
