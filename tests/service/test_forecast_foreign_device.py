"""`circman5 run` against a device the plant model does not describe: forecasts warn first.

The device is a small OPC UA server written here with asyncua (another vendor's stack, not the
simulators' plant), updating its value once a second like a PLC cycle: its line temperature
holds at 22 °C for ``HOLD_S``, then ramps from 22 past the 27 °C limit to 28 at about 1 °C/s and
back, over and over. The process model predicts that the temperature
settles at its target, so only the statistical forecaster, learning from the samples, can warn.
Every threshold breach must be preceded by a forecast warning for the path, from the
statistical forecaster, with a positive time to the breach in the event.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
from asyncua import Server, ua

from simulators.external import Mosquitto, free_port, http_status
from tests.service.test_service_run import TopicLog

PATH = "production_line.temperature"
NAMESPACE = "urn:othervendor:line"
RATE = 1.0  # °C per second
LOW, HIGH = 22.0, 28.0
HOLD_S = 10.0
BREACHES = 3


class RampingDevice:
    """An OPC UA server whose temperature holds at 22, ramps 22 -> 28 -> 22, on repeat."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.url = f"opc.tcp://127.0.0.1:{port}/othervendor/line"
        self.ramping = asyncio.Event()
        self.server = Server()

    async def run(self) -> None:
        await self.server.init()
        self.server.set_endpoint(self.url)
        index = await self.server.register_namespace(NAMESPACE)
        line = await self.server.nodes.objects.add_object(ua.NodeId("Line", index), "Line")
        node = await line.add_variable(
            ua.NodeId("Line.Temperature", index), "Temperature", LOW, ua.VariantType.Double
        )
        loop = asyncio.get_running_loop()
        async with self.server:
            value, direction, hold_until = LOW, 1.0, 0.0
            previous = loop.time()
            while True:
                await asyncio.sleep(1.0)
                now = loop.time()
                if self.ramping.is_set() and now >= hold_until:
                    value += direction * RATE * (now - previous)
                    if value >= HIGH:
                        value, direction = HIGH, -1.0
                    elif value <= LOW:
                        value, direction, hold_until = LOW, 1.0, now + HOLD_S
                previous = now
                await node.write_value(ua.Variant(value, ua.VariantType.Double))


@pytest.fixture
async def device() -> AsyncIterator[RampingDevice]:
    device = RampingDevice(free_port())
    task = asyncio.create_task(device.run())
    try:
        yield device
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


async def until(condition: Callable[[], bool], within_s: float, what: str) -> None:
    """Poll ``condition`` without blocking the loop (the device runs on it)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within_s
    while not condition():
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.1)


def status(url: str) -> int:
    try:
        return http_status(url, timeout=0.5)
    except OSError:  # not listening yet
        return 0


def settings(device: RampingDevice, mosquitto: Mosquitto, health_port: int) -> str:
    return f"""
site = "other"
line = "line1"

[health]
port = {health_port}

[api]
port = {free_port()}

[outputs.mqtt]
host = "127.0.0.1"
port = {mosquitto.port}
topic_prefix = "circman5"

[[connectors]]
type = "opcua"
name = "foreign-plc"
url = "{device.url}"
namespace_uri = "{NAMESPACE}"
publishing_interval_ms = 100

[[connectors.tags]]
address = "s=Line.Temperature"
path = "{PATH}"
unit = "°C"
"""


async def test_every_breach_is_forecast_with_a_lead_time(
    tmp_path: Path, mosquitto: Mosquitto, device: RampingDevice
) -> None:
    log = TopicLog(mosquitto.port, "circman5/other/line1/events/threshold")
    config = tmp_path / "edge.toml"
    health_port = free_port()
    config.write_text(settings(device, mosquitto, health_port))
    env = dict(os.environ, CIRCMAN5_DATA_DIR=str(tmp_path / "data"))
    service_log = tmp_path / "service.log"
    with service_log.open("w") as stderr:
        service = await asyncio.to_thread(
            subprocess.Popen,
            [sys.executable, "-m", "circman5", "run", "--config", str(config)],
            env=env,
            stderr=stderr,
        )

    def events() -> list[dict[str, object]]:
        return [json.loads(payload) for _, payload in list(log.messages)]

    def breaches() -> list[dict[str, object]]:
        return [e for e in events() if e["event_type"] == "ThresholdEvent"]

    ready = f"http://127.0.0.1:{health_port}/ready"
    try:
        await until(lambda: status(ready) == 200, 60, "/ready")
        # the line runs steady for a few seconds, then the excursions start
        await asyncio.sleep(3)
        device.ramping.set()
        await until(lambda: len(breaches()) >= BREACHES, 150, f"{BREACHES} breaches")
    finally:
        service.send_signal(signal.SIGTERM)
        exit_code = await asyncio.to_thread(service.wait, 30)
        log.close()
    assert exit_code == 0, service_log.read_text()[-3000:]

    # walk the events in order: each breach needs a warning since the previous one cleared
    warned: dict[str, object] | None = None
    checked = 0
    for event in events():
        details = event["details"]
        assert isinstance(details, dict)
        if details.get("parameter") != PATH:
            continue
        kind = event["event_type"]
        if kind == "ForecastEvent" and details["direction"] == "exceed" and warned is None:
            warned = event
        elif kind == "ThresholdEvent":
            assert warned is not None, f"breach {checked + 1} came without a forecast warning"
            forecast = warned["details"]
            assert isinstance(forecast, dict)
            assert forecast["forecaster"] == "statistical:damped_holt"
            assert forecast["threshold"] == 27.0
            assert forecast["seconds_ahead"] > 0
            assert str(warned["timestamp"]) < str(event["timestamp"])
            checked += 1
        elif kind == "ThresholdClearedEvent":
            warned = None
    assert checked >= BREACHES
