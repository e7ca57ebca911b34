"""The alert on lost data names a metric the service really exports, with the dropped count.

A real outbox overflows (its destination is absent), the service's metrics registry renders it,
and the metric of ``Circman5OutboxDroppingData`` is there with the points that were dropped.
"""

from __future__ import annotations

import re
from pathlib import Path

import yaml
from prometheus_client.parser import text_string_to_metric_families

from circman5.service.metrics import ServiceMetrics
from circman5.sinks.config import InfluxDB1Settings, OutboxSettings
from circman5.sinks.influxdb import InfluxDB1Sink
from circman5.sinks.outbox import Outbox
from simulators.external import free_port

ALERTS = Path(__file__).resolve().parents[2] / "deploy" / "prometheus" / "alerts.yml"


def _rule(name: str) -> dict[str, object]:
    groups = yaml.safe_load(ALERTS.read_text(encoding="utf-8"))["groups"]
    return next(r for g in groups for r in g["rules"] if r["alert"] == name)


def _lines(tag: str, count: int) -> bytes:
    return "".join(f"m,b={tag} value={i} {1_700_000_000 + i}\n" for i in range(count)).encode()


async def test_the_dropping_alert_names_the_exported_dropped_points_counter() -> None:
    rule = _rule("Circman5OutboxDroppingData")
    assert rule["labels"] == {"severity": "critical"}
    [metric] = re.findall(r"\bcircman5_[a-z_]+", str(rule["expr"]))

    # nothing listens on this port: every write fails, the outbox keeps and then drops
    sink = InfluxDB1Sink(InfluxDB1Settings(url=f"http://127.0.0.1:{free_port()}"))
    settings = OutboxSettings(max_points=100, batch_max_points=10, backoff_initial_s=0.02)
    outbox = Outbox(sink, name="influxdb", settings=settings)
    for n in range(15):
        outbox.submit(_lines(f"b{n}", 10), 10)
    async with sink, outbox:
        await outbox.flush()
        assert outbox.metrics.dropped_points == 50
        rendered = ServiceMetrics(outboxes=lambda: [outbox.metrics]).render().decode()

    samples = {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(rendered)
        for sample in family.samples
    }
    assert samples[(metric, (("outbox", "influxdb"),))] == 50.0
    # the label the summary names is on the series
    assert "$labels.outbox" in str(rule["annotations"])
