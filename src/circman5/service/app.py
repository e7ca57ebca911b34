"""The composition root: ``circman5 run`` builds every part from the settings and runs them.

This is the only module that knows connectors, the twin, the sinks and the API at once::

    connectors ─► SynchronizationEngine ─► DigitalTwin ─► EventManager ─► MQTT events, API
                        └─► time-series writer (every raw sample; KPIs at a fixed rate)

Every long-running part is a supervised component: a failure is logged, published as an error
event and the component restarts with backoff; the service itself keeps running. Shutdown
(SIGTERM/SIGINT, or :meth:`EdgeService.stop`): stop ingestion, apply the last tick, write the
last KPIs, then leave the outputs (outboxes persist what is not delivered), the connectors and
the event store, all within ``shutdown_timeout_s``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from circman5.adapters.services.constants_service import ConstantsService
from circman5.api.setpoints import SetpointLimit, SetpointService
from circman5.connectors.base import BaseConnector
from circman5.errors import ConfigError
from circman5.manufacturing.digital_twin.core.synchronization import SynchronizationEngine
from circman5.manufacturing.digital_twin.core.twin_core import DigitalTwin
from circman5.manufacturing.digital_twin.event_notification.event_manager import event_manager
from circman5.manufacturing.digital_twin.event_notification.event_types import (
    ErrorEvent,
)
from circman5.manufacturing.digital_twin.event_notification.reporter import EventProblemReporter
from circman5.paths import data_dir, locations
from circman5.service.batches import BatchTracker
from circman5.service.gc_tuning import tune_garbage_collector
from circman5.service.health import HealthServer
from circman5.service.metrics import ServiceMetrics
from circman5.service.outputs import durable_sample_sink, output_reasons
from circman5.service.roles import Role, role_parts
from circman5.service.supervisor import Supervisor
from circman5.service.twin_database import api_database_parts, twin_database
from circman5.service.workers import (
    create_service_connectors,
    stored_by_workers,
    worker_outboxes,
    worker_statuses,
)
from circman5.settings import Settings
from circman5.sinks.mqtt_events import MqttEventPublisher
from circman5.sinks.outbox import OutboxMetrics
from circman5.sinks.site_watch import SiteWatcher
from circman5.sinks.timeseries import SeriesOutput, open_series_output
from circman5.storage.database import TwinDatabase
from circman5.twin_update import TwinUpdate

if TYPE_CHECKING:  # imported where configured: protobuf and the edge node; the API
    from circman5.api.context import HistoryArraysReader
    from circman5.service.sparkplug_output import SparkplugOutput

logger = logging.getLogger(__name__)


class _TimedTwin:
    """The twin as the engine sees it, timing each applied tick for the metrics."""

    def __init__(self, twin: DigitalTwin, metrics: ServiceMetrics) -> None:
        self._twin = twin
        self._observe = metrics.tick_duration.observe

    def update(self, external_data: TwinUpdate) -> bool:
        start = time.perf_counter()
        try:
            return self._twin.update(external_data)
        finally:
            self._observe(time.perf_counter() - start)


@dataclass
class RunningService:
    """What a running service exposes (the demo's view, tests).

    ``engine`` and ``series`` are None in a role without ingestion (``api``)."""

    twin: DigitalTwin
    engine: SynchronizationEngine | None
    connectors: list[BaseConnector]
    series: SeriesOutput | None
    metrics: ServiceMetrics
    supervisor: Supervisor
    health: HealthServer | None
    mqtt: MqttEventPublisher | None = None
    sparkplug: SparkplugOutput | None = None
    setpoints: SetpointService | None = None
    site_view: SiteWatcher | None = None
    api_url: str | None = None
    started_at: float = field(default_factory=time.monotonic)

    def outboxes(self) -> list[OutboxMetrics]:
        series = self.series
        found = [series.outbox.metrics] if series is not None and series.outbox is not None else []
        found += worker_outboxes(self.connectors)
        if self.mqtt is not None:
            found.append(self.mqtt.outbox.metrics)
        return found

    def not_ready(self) -> list[str]:
        """Why the service is not ready (empty when every connector and sink is healthy)."""
        reasons = [
            f"connector {c.name}: not connected ({c.status.last_error or 'connecting'})"
            for c in self.connectors
            if not c.status.connected
        ]
        reasons += output_reasons(self.outboxes())
        if self.mqtt is not None and not self.mqtt.link.connected:
            reasons.append("mqtt events: broker not connected")
        if self.sparkplug is not None and not self.sparkplug.connected:
            reasons.append("sparkplug edge node: broker not connected")
        if self.site_view is not None and not self.site_view.connected:
            reasons.append("site view: broker not connected")
        reasons += [
            f"component {s.name}: {s.last_error or 'not running'}"
            for s in self.supervisor.statuses
            if not s.running
        ]
        return reasons


class EdgeService:
    """``circman5 run``: the edge service built from :class:`Settings`."""

    def __init__(
        self,
        settings: Settings,
        constants: ConstantsService,
        role: Role = "all",
        settings_file: str = "settings",
    ) -> None:
        """``constants``: the twin's constants, built by the caller (the ``circman5`` command:
        ``ConstantsService(settings.config_dir)``); the twin and the service read only these.
        ``role``: which parts run (:mod:`circman5.service.roles`; ``processing`` is not this
        class's); :class:`ConfigError` naming ``settings_file`` when the settings do not allow
        it."""
        self.settings = settings
        self.constants = constants
        self.role = role
        self.parts = role_parts(role, settings, settings_file)
        if self.parts.jobs:
            raise ConfigError(settings_file, "--role", "the processing role is ProcessingWorker's")
        self._stop = asyncio.Event()
        self.running: RunningService | None = None
        self.ready = asyncio.Event()
        self.database: TwinDatabase | None = None

    def stop(self) -> None:
        """Ask the service to shut down (signal handlers call this)."""
        self._stop.set()

    async def wait_stop_requested(self, runner: asyncio.Task[None]) -> None:
        """Until :meth:`stop` is called or ``runner`` (the :meth:`run` task) ends by itself."""
        waiter = asyncio.create_task(self._stop.wait())
        try:
            await asyncio.wait({waiter, runner}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            waiter.cancel()

    async def run(self) -> None:
        """Run until :meth:`stop`; returns after a graceful shutdown.

        The settings' ``data_dir`` and ``config_dir`` are where everything started here keeps
        its files and finds its constants (:func:`circman5.paths.locations`, for the run).
        """
        settings = self.settings
        with locations(settings.data_dir, settings.config_dir):
            await self._run()

    async def _run(self) -> None:
        settings = self.settings
        parts = self.parts
        constants = self.constants
        twin = DigitalTwin(constants=constants)
        reporter = EventProblemReporter()
        metrics = ServiceMetrics()
        event_manager.subscribe(metrics.on_event)
        logger.info("data directory %s (role %s)", data_dir(), self.role)
        try:
            async with contextlib.AsyncExitStack() as stack:
                # first: the twin's start-up events already go to the configured database
                self.database = await stack.enter_async_context(twin_database(settings.database))
                supervisor = Supervisor(report=self._report_failure)
                if parts.ingestion:
                    running = await self._start_ingestion(
                        stack, twin, reporter, metrics, supervisor, constants
                    )
                else:  # the twin only serves the API's simulations; nothing feeds it
                    if not twin.initialize():
                        raise RuntimeError("the digital twin did not initialize (see the log)")
                    running = RunningService(twin, None, [], None, metrics, supervisor, None)
                if parts.health and settings.health.enabled:
                    running.health = HealthServer(
                        running.not_ready,
                        metrics.render,
                        settings.health.host,
                        settings.health.port,
                    )
                    supervisor.add("health", running.health.run)
                api_server = None
                if parts.api and settings.api.enabled:
                    site_view = None
                    if parts.wants_site_view(settings.site_view.enabled):
                        site_view = self._site_watcher(stack)
                        running.site_view = site_view
                    api_server = self._api_server(running, site_view)
                    supervisor.add("api", api_server.serve)
                self.running = running
                await self._supervise(running, api_server)
        finally:
            event_manager.unsubscribe(metrics.on_event)
            event_manager.flush()
            twin.close()
            logger.info("circman5 stopped")

    async def _start_ingestion(
        self,
        stack: contextlib.AsyncExitStack,
        twin: DigitalTwin,
        reporter: EventProblemReporter,
        metrics: ServiceMetrics,
        supervisor: Supervisor,
        constants: ConstantsService,
    ) -> RunningService:
        """One line's edge chain: outputs, connectors, synchronization, the twin's checks."""
        settings = self.settings
        series = await stack.enter_async_context(open_series_output(settings.outputs, reporter))
        mqtt: MqttEventPublisher | None = None
        if settings.outputs.mqtt is not None:
            mqtt = await stack.enter_async_context(
                MqttEventPublisher(settings.outputs.mqtt, reporter=reporter)
            )
            event_manager.subscribe(mqtt.on_event)
            stack.callback(event_manager.unsubscribe, mqtt.on_event)
        # initialized once the outputs listen, so its start-up events go out too
        if not twin.initialize():
            raise RuntimeError("the digital twin did not initialize (see the log)")
        units = {
            tag.path: tag.unit
            for connector in settings.connectors
            for tag in connector.tags
            if tag.unit
        }
        twin.set_units(units)
        connectors = create_service_connectors(
            settings.connectors,
            settings.outputs,
            reporter,
            log_level=settings.log.level,
            log_format=settings.log.format,
            stop_timeout_s=settings.shutdown_timeout_s / 2,
        )
        # source timestamps older than the embedded store keeps are outside the window
        retention = series.store.settings.max_age_s if series.store else None
        for connector in connectors:
            connector.use_output_retention(retention)
            await stack.enter_async_context(connector)
        sync_config = constants.get_digital_twin_model().SYNCHRONIZATION_CONFIG
        engine = SynchronizationEngine.from_config(
            _TimedTwin(twin, metrics),
            connectors,
            sync_config,
            reporter=reporter,
        )
        # every raw sample to the time series; acknowledgements once it is committed
        # (ingestion workers store their connectors' samples themselves)
        engine.add_sink(
            durable_sample_sink(series.writer, stored_by_workers(connectors)),
            acknowledges=True,
        )
        metrics.connectors = lambda: [c.status for c in connectors]
        metrics.workers = lambda: worker_statuses(connectors)
        metrics.sync = lambda: engine.stats
        running = RunningService(twin, engine, connectors, series, metrics, supervisor, None, mqtt)
        metrics.outboxes = running.outboxes
        running.setpoints = setpoints = self._setpoint_service(running)
        spb = settings.outputs.sparkplug
        if spb is not None and spb.enabled:
            from circman5.service.sparkplug_output import SparkplugOutput

            running.sparkplug = await stack.enter_async_context(
                SparkplugOutput(
                    spb,
                    running.twin.state_manager.snapshot,
                    setpoints=setpoints,
                    units={**{s.path: s.unit for s in settings.setpoints}, **units},
                    publish_event=event_manager.publish,
                    reporter=reporter,
                )
            )
            engine.add_update_listener(running.sparkplug.on_update)
            node = running.sparkplug.node
            metrics.sparkplug = lambda: (node.connected.is_set(), node.stats)
        self._wire_state_outputs(running)
        supervisor.add("synchronization", engine.run)
        kpi_interval_s = float(constants.get_monitoring_config()["KPI_RATE_S"])
        supervisor.add("kpis", lambda: self._write_kpis(series, twin, kpi_interval_s))
        if settings.batches.enabled:
            tracker = self._batch_tracker(series)
            engine.add_update_listener(tracker.on_update)
            supervisor.add("batches", tracker.run)
        return running

    async def _supervise(self, running: RunningService, api_server: Any) -> None:
        task = asyncio.create_task(running.supervisor.run(), name="supervisor")
        try:
            if running.health is not None:
                await asyncio.wait_for(running.health.started.wait(), 15)
            if api_server is not None:
                await asyncio.wait_for(api_server.wait_started(), 15)
                scheme = "https" if api_server.tls else "http"
                host = api_server.config.host
                running.api_url = f"{scheme}://{host}:{api_server.port}/"
        except TimeoutError:
            logger.warning("the health port or the API did not start; the supervisor retries")
        tune_garbage_collector()  # start-up objects frozen, fewer young collections
        self.ready.set()
        logger.info(
            "circman5 running: %d connector(s)%s%s",
            len(running.connectors),
            f", health on port {running.health.port}" if running.health else "",
            f", HMI at {running.api_url}" if running.api_url else "",
        )
        stop_waiter = asyncio.create_task(self._stop.wait())
        try:
            await asyncio.wait({task, stop_waiter}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stop_waiter.cancel()
            logger.info("shutting down")
            running.supervisor.request_stop()
            if api_server is not None:
                api_server.stop()  # graceful: open requests finish, WebSockets close
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(running.supervisor.component("api").finished.wait(), 5)
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            await self._last_tick(running)

    async def _last_tick(self, running: RunningService) -> None:
        """Apply what arrived since the last tick, write the final KPIs, and give the outboxes
        a bounded moment to deliver; what they cannot deliver stays on disk for the next start.
        """
        engine, series = running.engine, running.series
        if engine is None or series is None:  # no ingestion in this role
            return
        try:
            await engine.synchronize()
            series.writer.write_state(running.twin.state_manager.snapshot())
        except Exception:
            logger.exception("the last tick failed")
        budget = min(5.0, self.settings.shutdown_timeout_s / 3)
        outboxes = [series.outbox] if series.outbox is not None else []
        if running.mqtt is not None:
            outboxes.append(running.mqtt.outbox)
        for outbox in outboxes:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(outbox.drain(), budget)
        stats = engine.stats
        logger.info(
            "stopping: %d samples received, %d twin updates; %s",
            stats.samples_in,
            stats.updates,
            ", ".join(
                f"outbox {m.name}: {m.delivered_points} points delivered, "
                f"{m.depth_points} kept on disk"
                for m in running.outboxes()
            )
            or "no outbox",
        )

    def _wire_state_outputs(self, running: RunningService) -> None:
        mqtt, engine = running.mqtt, running.engine
        if mqtt is None or engine is None:
            return
        snapshot = running.twin.state_manager.snapshot

        def publish_state(_update: TwinUpdate) -> None:
            mqtt.set_state(snapshot())

        engine.add_update_listener(publish_state)
        mqtt.set_state(snapshot())

    async def _write_kpis(self, series: SeriesOutput, twin: DigitalTwin, interval: float) -> None:
        """The twin's numeric state as KPIs, every ``interval`` (``KPI_RATE_S``) seconds."""
        while True:
            series.writer.write_state(twin.state_manager.snapshot())
            await asyncio.sleep(interval)

    def _batch_tracker(self, series: SeriesOutput) -> BatchTracker:
        from circman5.manufacturing.lifecycle.batch_footprint import BatchFootprint

        footprint = BatchFootprint(series.writer.write_kpi, event_manager.publish)
        return BatchTracker(self.settings.batches, footprint.on_batch_end)

    def _setpoint_service(self, running: RunningService) -> SetpointService:
        """The one path of setpoint writes (the API's and Sparkplug's): limits, write, confirm."""
        settings = self.settings
        limits = [
            SetpointLimit(
                path=s.path,
                min=s.min,
                max=s.max,
                connector=settings.setpoint_owner(s.path),
                unit=s.unit,
                description=s.description,
            )
            for s in settings.setpoints
        ]
        return SetpointService(
            limits,
            {c.name: c for c in running.connectors},
            running.twin.get_current_state,
            event_manager.publish,
        )

    def _api_server(self, running: RunningService, site_view: SiteWatcher | None = None) -> Any:
        from circman5.api.app import create_app
        from circman5.api.context import ApiContext, status_provider
        from circman5.api.server import ApiServer
        from circman5.manufacturing.human_interface.adapters.digital_twin_adapter import (
            digital_twin_adapter,
        )
        from circman5.manufacturing.human_interface.core.interface_manager import (
            interface_manager,
        )

        settings = self.settings
        # every dependency handed over here, none left to the context's singleton defaults
        context = ApiContext(
            twin=running.twin,
            settings=settings.api,
            events=event_manager,
            setpoints=running.setpoints,
            connector_status=status_provider(running.connectors),
            history_reader=self._history_reader(),
            site_view=site_view,
            data_dir=data_dir(),
            adapter=digital_twin_adapter,
            interface=interface_manager,
            **api_database_parts(self.database, running.twin),
        )
        return ApiServer(create_app(context), settings.api)

    def _site_watcher(self, stack: contextlib.AsyncExitStack) -> SiteWatcher:
        """The site page's view of every line (``[site_view]``), stopped with the service."""
        settings = self.settings
        watcher = SiteWatcher(
            settings.site_view, settings.site, instance=f"{settings.site}-{settings.line}"
        )
        watcher.start()
        stack.push_async_callback(watcher.stop)
        return watcher

    def _history_reader(self) -> HistoryArraysReader:
        """Recorded history for calibration and model training (``embedded``, ``influxdb``)."""
        from circman5.service.calibration_runner import FloatArray, Window, read_arrays

        settings = self.settings

        def read(
            source: str, start_s: float | None, end_s: float | None, paths: Sequence[str]
        ) -> dict[str, tuple[FloatArray, FloatArray]]:
            return dict(read_arrays(settings, source, Window(start_s, end_s), data_dir(), paths))

        return read

    @staticmethod
    def _report_failure(component: str, error: BaseException, restarts: int) -> None:
        logger.error("component %s failed (restart %d): %r", component, restarts, error)
        event = ErrorEvent(
            error_type="ComponentFailure",
            error_message=f"{component} failed and restarts (#{restarts}): {error!r}",
            details={"component": component, "restarts": restarts},
        )
        event.source = "service"
        event_manager.publish(event)
