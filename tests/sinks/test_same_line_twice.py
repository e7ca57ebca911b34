"""Two instances configured for the same site and line cannot be told apart by the broker's
topics; they share the MQTT client id, so each takes the other's session in turn (mosquitto
closes the older connection): the instances notice the broker closing them right after each
connect and say so in the log."""

from __future__ import annotations

import asyncio
import logging
import time

import pytest

from circman5.sinks.config import MqttOutputSettings
from circman5.sinks.mqtt_events import MqttEventPublisher
from simulators.external import Mosquitto


async def _until(condition: object, what: str, within_s: float = 30.0) -> None:
    deadline = time.monotonic() + within_s
    while not condition():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


async def test_a_second_instance_of_the_same_line_is_reported(
    mosquitto: Mosquitto, caplog: pytest.LogCaptureFixture
) -> None:
    settings = MqttOutputSettings(port=mosquitto.port, site="plant", line="line1")
    caplog.set_level(logging.ERROR, logger="circman5.sinks.mqtt_events")
    async with MqttEventPublisher(settings) as first:
        await _until(lambda: first.link.connected, "the first instance")
        async with MqttEventPublisher(settings) as second:
            await _until(
                lambda: first.link.takeover.takeovers + second.link.takeover.takeovers >= 1,
                "a takeover",
            )
    reports = [r.getMessage() for r in caplog.records if "took over the session" in r.message]
    assert reports and "circman5-plant-line1" in reports[0] and "plant/line1" in reports[0]


async def test_two_lines_never_take_over_each_other(mosquitto: Mosquitto) -> None:
    one = MqttOutputSettings(port=mosquitto.port, site="plant", line="line1")
    two = MqttOutputSettings(port=mosquitto.port, site="plant", line="line2")
    async with MqttEventPublisher(one) as first, MqttEventPublisher(two) as second:
        await _until(lambda: first.link.connected and second.link.connected, "both connected")
        # both stay connected while each publishes its own state
        first.set_state({"line": 1})
        second.set_state({"line": 2})
        await _until(
            lambda: first.metrics.states_published and second.metrics.states_published, "states"
        )
        assert (first.link.connects, second.link.connects) == (1, 1)
        assert (first.link.takeover.takeovers, second.link.takeover.takeovers) == (0, 0)
