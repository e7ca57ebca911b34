"""The OPC UA watchdog: a server that stops answering (SIGSTOP) is noticed and reconnected."""

from __future__ import annotations

import os
import signal
from typing import Any

from circman5.connectors.config import OpcUaConnectorSettings
from circman5.connectors.opcua.client import OpcUaConnector
from circman5.samples import Quality
from tests.ingestion.conftest import RecordingReporter, collecting, eventually


async def test_a_frozen_server_is_detected_and_reconnected(sim_process: Any) -> None:
    settings = OpcUaConnectorSettings.model_validate(
        {
            "type": "opcua",
            "name": "plc",
            "url": sim_process.opcua_url,
            "namespace_uri": "urn:circman5:sim:plc",
            "publishing_interval_ms": 100,
            "watchdog_interval_s": 0.3,
            "watchdog_timeout_s": 0.6,
            "request_timeout_s": 1.0,
            "reconnect_initial_s": 0.2,
            "reconnect_max_s": 0.5,
            "tags": [
                {"address": "s=Line1.Laminator.Temperature", "path": "production_line.temperature"}
            ],
        }
    )
    reporter = RecordingReporter()
    connector = OpcUaConnector(settings, reporter)
    pid = sim_process.process.pid
    async with collecting(connector, connect_timeout=20) as collector:
        await eventually(lambda: "production_line.temperature" in collector.latest())
        os.kill(pid, signal.SIGSTOP)  # the PLC hangs: TCP stays open, nothing answers
        try:
            await eventually(lambda: not connector.status.connected, what="the watchdog")
            # the stale mark goes through the connector's buffer: the collector takes it next
            await eventually(
                lambda: "production_line.temperature" in collector.latest(Quality.STALE),
                what="the stale mark",
            )
            error = connector.status.last_error or ""
            assert "watchdog" in error or "silent" in error or "Timeout" in error, error
        finally:
            os.kill(pid, signal.SIGCONT)
        mark = len(collector.samples)
        await eventually(lambda: connector.status.connected, within=20, what="the reconnect")
        await eventually(
            lambda: any(s.quality is Quality.GOOD for s in collector.samples[mark:]),
            what="fresh values",
        )
    assert reporter.of("ConnectionLost")
