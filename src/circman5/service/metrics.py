"""Prometheus metrics of the service, read from the components at scrape time.

Counters the components keep anyway (connector status, synchronization stats, outbox figures)
are not duplicated on the hot path: a collector reads them when Prometheus scrapes. Only events
and tick durations are recorded as they happen. The registry is the service's own (no global).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from circman5.connectors.status import ConnectorStatus
from circman5.manufacturing.digital_twin.core.synchronization import SyncStats
from circman5.manufacturing.digital_twin.event_notification.event_types import Event
from circman5.sinks.outbox import OutboxMetrics

if TYPE_CHECKING:  # the Sparkplug node and the workers are imported only where configured
    from circman5.connectors.sparkplug.edge_node import EdgeNodeStats
    from circman5.service.workers.status import WorkerStatus

PREFIX = "circman5"


class _ComponentCollector(Collector):
    def __init__(self, metrics: ServiceMetrics) -> None:
        self._m = metrics

    def collect(self) -> Iterator[Any]:
        yield from self._connectors(self._m.connectors())
        sync = self._m.sync()
        if sync is not None:
            yield from self._sync(sync)
        yield from self._outboxes(self._m.outboxes())
        yield from self._workers(self._m.workers())
        sparkplug = self._m.sparkplug()
        if sparkplug is not None:
            yield from self._sparkplug(*sparkplug)

    @staticmethod
    def _workers(workers: Sequence[WorkerStatus]) -> Iterator[Any]:
        labels = ["connector", "worker"]
        alive = GaugeMetricFamily(
            f"{PREFIX}_ingestion_worker_alive", "1 while the worker process runs", labels=labels
        )
        connected = GaugeMetricFamily(
            f"{PREFIX}_ingestion_worker_connected",
            "1 while the worker is connected to its broker",
            labels=labels,
        )
        restarts = CounterMetricFamily(
            f"{PREFIX}_ingestion_worker_restarts", "worker processes restarted", labels=labels
        )
        messages = CounterMetricFamily(
            f"{PREFIX}_ingestion_worker_samples",
            "samples the worker decoded and stored",
            labels=labels,
        )
        depth = GaugeMetricFamily(
            f"{PREFIX}_ingestion_worker_outbox_depth_points",
            "points waiting in the worker's outbox",
            labels=labels,
        )
        tags = GaugeMetricFamily(
            f"{PREFIX}_ingestion_worker_tags",
            "OPC UA tags the worker's session monitors (its share)",
            labels=labels,
        )
        for w in workers:
            key = [w.connector, str(w.index)]
            if w.tags is not None:
                tags.add_metric(key, float(w.tags))
            alive.add_metric(key, 1.0 if w.alive else 0.0)
            connected.add_metric(key, 1.0 if w.connected else 0.0)
            restarts.add_metric(key, float(w.restarts))
            messages.add_metric(key, float(w.messages))
            depth.add_metric(key, float(w.outbox_depth_points))
        yield from (alive, connected, restarts, messages, depth, tags)

    @staticmethod
    def _sparkplug(connected: bool, stats: EdgeNodeStats) -> Iterator[Any]:
        up = GaugeMetricFamily(
            f"{PREFIX}_sparkplug_connected", "1 while the Sparkplug edge node is online"
        )
        up.add_metric([], 1.0 if connected else 0.0)
        yield up
        for key, help_text in (
            ("connects", "MQTT sessions of the edge node"),
            ("births", "NBIRTHs published (connects, rebirth requests, new metrics)"),
            ("data_messages", "NDATA/DDATA messages published"),
            ("metrics_published", "metric values published in NDATA/DDATA"),
            ("within_deadband", "changes not published (within the deadband)"),
            ("commands", "NCMD/DCMD metrics handed to the setpoint path"),
            ("rebirth_requests", "rebirths requested by hosts"),
            ("bad_commands", "commands that could not be used"),
        ):
            family = CounterMetricFamily(f"{PREFIX}_sparkplug_{key}", help_text)
            family.add_metric([], float(getattr(stats, key)))
            yield family

    @staticmethod
    def _connectors(statuses: Sequence[ConnectorStatus]) -> Iterator[Any]:
        families: dict[str, CounterMetricFamily | GaugeMetricFamily] = {
            "samples_in": CounterMetricFamily(
                f"{PREFIX}_samples_in", "samples received per connector", labels=["connector"]
            ),
            "dropped": CounterMetricFamily(
                f"{PREFIX}_samples_dropped",
                "samples dropped per connector (malformed, overflow)",
                labels=["connector"],
            ),
            "malformed": CounterMetricFamily(
                f"{PREFIX}_samples_malformed", "malformed payloads", labels=["connector"]
            ),
            "reconnects": CounterMetricFamily(
                f"{PREFIX}_connector_reconnects", "reconnections", labels=["connector"]
            ),
            "connect_attempts": CounterMetricFamily(
                f"{PREFIX}_connector_connect_attempts",
                "connection attempts (successful or not)",
                labels=["connector"],
            ),
            "connect_failures": CounterMetricFamily(
                f"{PREFIX}_connector_connect_failures",
                "failed connection attempts",
                labels=["connector"],
            ),
            "timestamps_replaced": CounterMetricFamily(
                f"{PREFIX}_timestamps_replaced",
                "source timestamps outside the window, replaced by the receive time",
                labels=["connector"],
            ),
            "timestamps_rejected": CounterMetricFamily(
                f"{PREFIX}_timestamps_rejected",
                "samples rejected for a source timestamp outside the window",
                labels=["connector"],
            ),
            "topics_refused": CounterMetricFamily(
                f"{PREFIX}_topics_refused",
                "messages whose topic cannot make a twin path (wildcard captures)",
                labels=["connector"],
            ),
            "paths_over_limit": CounterMetricFamily(
                f"{PREFIX}_wildcard_paths_over_limit",
                "messages dropped: a new twin path beyond the wildcard path limit",
                labels=["connector"],
            ),
            "stale_tags": GaugeMetricFamily(
                f"{PREFIX}_stale_tags", "tags currently stale or bad", labels=["connector"]
            ),
            "connected": GaugeMetricFamily(
                f"{PREFIX}_connector_connected", "1 when connected", labels=["connector"]
            ),
        }
        days_left = GaugeMetricFamily(
            f"{PREFIX}_opcua_certificate_days_left",
            "days until our client certificate or the pinned server certificate expires",
            labels=["connector", "certificate"],
        )
        for status in statuses:
            for key, family in families.items():
                family.add_metric([status.name], float(getattr(status, key)))
            certificates = status.extra.get("certificate_days_left")
            if isinstance(certificates, dict):
                for role, days in certificates.items():
                    days_left.add_metric([status.name, str(role)], float(days))
        yield from families.values()
        yield days_left

    @staticmethod
    def _sync(stats: SyncStats) -> Iterator[Any]:
        yield CounterMetricFamily(f"{PREFIX}_twin_updates", "twin updates applied", stats.updates)
        yield CounterMetricFamily(
            f"{PREFIX}_twin_updates_rejected", "twin updates rejected", stats.rejected_updates
        )
        yield GaugeMetricFamily(f"{PREFIX}_stale_paths", "twin paths stale", stats.stale_paths)
        yield GaugeMetricFamily(
            f"{PREFIX}_pending_samples", "samples waiting for the next tick", stats.pending
        )
        lag = GaugeMetricFamily(
            f"{PREFIX}_connector_lag_seconds",
            "now minus the source timestamp of the latest sample",
            labels=["connector"],
        )
        for name, source in stats.sources.items():
            lag.add_metric([name], source.lag_s)
        yield lag

    @staticmethod
    def _outboxes(outboxes: Sequence[OutboxMetrics]) -> Iterator[Any]:
        depth = GaugeMetricFamily(
            f"{PREFIX}_outbox_depth_batches", "batches waiting in the outbox", labels=["outbox"]
        )
        points = GaugeMetricFamily(
            f"{PREFIX}_outbox_depth_points", "points waiting in the outbox", labels=["outbox"]
        )
        age = GaugeMetricFamily(
            f"{PREFIX}_outbox_oldest_age_seconds",
            "age of the oldest waiting batch",
            labels=["outbox"],
        )
        latency = GaugeMetricFamily(
            f"{PREFIX}_sink_write_latency_seconds", "latency of the last write", labels=["outbox"]
        )
        available = GaugeMetricFamily(
            f"{PREFIX}_sink_available", "1 when the last write succeeded", labels=["outbox"]
        )
        dropping = GaugeMetricFamily(
            f"{PREFIX}_outbox_dropping",
            "1 while an overflow episode drops the oldest data",
            labels=["outbox"],
        )
        episode = GaugeMetricFamily(
            f"{PREFIX}_outbox_episode_dropped_points",
            "points dropped in the current overflow episode (0 outside one)",
            labels=["outbox"],
        )
        outage = GaugeMetricFamily(
            f"{PREFIX}_sink_outage_seconds",
            "how long the destination has been unavailable (0 while available)",
            labels=["outbox"],
        )
        counters = {
            "delivered_points": CounterMetricFamily(
                f"{PREFIX}_outbox_delivered_points", "points delivered", labels=["outbox"]
            ),
            "retried": CounterMetricFamily(
                f"{PREFIX}_outbox_retries", "write attempts retried", labels=["outbox"]
            ),
            "quarantined_batches": CounterMetricFamily(
                f"{PREFIX}_outbox_quarantined_batches",
                "batches refused for good",
                labels=["outbox"],
            ),
            "dropped_points": CounterMetricFamily(
                f"{PREFIX}_outbox_dropped_points", "points dropped on overflow", labels=["outbox"]
            ),
        }
        for m in outboxes:
            depth.add_metric([m.name], m.depth_batches)
            points.add_metric([m.name], m.depth_points)
            age.add_metric([m.name], m.oldest_age_s or 0.0)
            latency.add_metric([m.name], m.last_write_latency_s or 0.0)
            available.add_metric([m.name], 1.0 if m.sink_available else 0.0)
            dropping.add_metric([m.name], 1.0 if m.dropping else 0.0)
            episode.add_metric([m.name], m.episode_dropped_points)
            outage.add_metric([m.name], m.outage_s or 0.0)
            for key, family in counters.items():
                family.add_metric([m.name], float(getattr(m, key)))
        yield from (depth, points, age, latency, available, dropping, episode, outage)
        yield from counters.values()


class ServiceMetrics:
    """The service's registry; the composition root plugs in what to read."""

    def __init__(
        self,
        connectors: Callable[[], Sequence[ConnectorStatus]] = lambda: (),
        sync: Callable[[], SyncStats | None] = lambda: None,
        outboxes: Callable[[], Sequence[OutboxMetrics]] = lambda: (),
        workers: Callable[[], Sequence[WorkerStatus]] = lambda: (),
        sparkplug: Callable[[], tuple[bool, EdgeNodeStats] | None] = lambda: None,
    ) -> None:
        self.connectors = connectors
        self.sync = sync
        self.outboxes = outboxes
        self.workers = workers
        self.sparkplug = sparkplug
        self.registry = CollectorRegistry()
        self.events = Counter(
            f"{PREFIX}_events",
            "events published, by category and severity",
            ["category", "severity"],
            registry=self.registry,
        )
        self.tick_duration = Histogram(
            f"{PREFIX}_tick_duration_seconds",
            "time to apply one synchronization tick to the twin",
            buckets=(0.0001, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25),
            registry=self.registry,
        )
        self.registry.register(_ComponentCollector(self))

    def on_event(self, event: Event) -> None:
        """An event-manager handler counting events."""
        self.events.labels(event.category.value, event.severity.value).inc()

    def render(self) -> bytes:
        return generate_latest(self.registry)
