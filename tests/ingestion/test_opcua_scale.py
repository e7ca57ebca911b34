"""The OPC UA connector with many tags: monitored items in batches, browse discovery."""

from __future__ import annotations

from typing import Any

from circman5.connectors.opcua.client import OpcUaConnector
from simulators.config import OpcUaConfig
from tests.ingestion.conftest import collecting, eventually
from tests.ingestion.test_opcua import plc_settings


async def test_monitored_items_are_created_in_batches(sim_bench_factory: Any) -> None:
    bench = await sim_bench_factory(
        opcua=OpcUaConfig(port=0, synthetic_tags=250, synthetic_rate_hz=5.0), modbus=None
    )
    settings = plc_settings(
        bench,
        tags=[],
        monitored_items_batch_size=40,
        discover=[{"root": "s=Line1.Synthetic", "pattern": "*/*", "path": "synthetic.{name}"}],
    )
    connector = OpcUaConnector(settings)
    async with collecting(connector) as collector:
        await eventually(lambda: len(collector.latest()) == 250, what="250 synthetic tags")
        assert "synthetic.tag00249" in collector.latest()
