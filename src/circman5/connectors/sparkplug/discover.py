"""Discovery: listen to the plant's Sparkplug traffic for a while and list the born metrics.

The connector does the listening (so it sees exactly what the service would): it records every
birth certificate, and an edge node that only sends DATA (it was born before we listened) is
asked for a rebirth, as the service would. No ``STATE`` is published and the MQTT client id gets
a ``-discover`` suffix, so a running service on the same broker is not disturbed.
"""

from __future__ import annotations

import asyncio
import json

from circman5.connectors.sparkplug.client import MetricInfo, SparkplugConnector
from circman5.connectors.sparkplug.config import SparkplugConnectorSettings
from circman5.reporting import ProblemReporter

__all__ = ["discover", "format_json", "format_table"]


async def discover(
    settings: SparkplugConnectorSettings,
    seconds: float,
    reporter: ProblemReporter | None = None,
) -> list[MetricInfo]:
    """The metrics born within ``seconds`` on the groups of ``settings``."""
    quiet = settings.model_copy(
        update={
            "primary_host_id": None,
            "client_id": f"{settings.effective_client_id}-discover",
            "max_buffered_samples": 10_000,
        }
    )
    connector = SparkplugConnector(quiet, reporter)
    async with connector, asyncio.TaskGroup() as group:
        drain = group.create_task(_discard(connector))
        await asyncio.sleep(seconds)
        drain.cancel()
    return connector.catalog()


async def _discard(connector: SparkplugConnector) -> None:
    async for _ in connector.batches():
        pass


def format_table(metrics: list[MetricInfo]) -> str:
    """One line per metric: the tag-map address, data type, alias and unit."""
    rows = [("ADDRESS", "TYPE", "ALIAS", "UNIT")]
    rows += [
        (m.address, m.datatype, "" if m.alias is None else str(m.alias), m.unit) for m in metrics
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    return "\n".join(
        "  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)).rstrip() for row in rows
    )


def format_json(metrics: list[MetricInfo]) -> str:
    return json.dumps(
        [
            {
                "address": m.address,
                "group": m.group,
                "edge_node": m.edge_node,
                "device": m.device,
                "metric": m.metric,
                "datatype": m.datatype,
                "alias": m.alias,
                "unit": m.unit,
                "properties": m.properties,
            }
            for m in metrics
        ],
        indent=2,
        default=str,
    )
