"""Sparkplug writes through to the simulated PLC: an independent host (MQTT.js + Tahu's
sparkplug-payload) sends NCMDs to the twin's edge node; the output hands them to the same
SetpointService as the API, which writes through the OPC UA connector to the simulator and
confirms by the twin. The chain is real end to end (see :mod:`tests.api.plant_stack`)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from circman5.api.setpoints import SetpointService
from circman5.connectors.sparkplug.edge_config import SparkplugEdgeSettings
from circman5.manufacturing.digital_twin.core.twin_core import DigitalTwin
from circman5.manufacturing.digital_twin.event_notification.event_manager import EventManager
from circman5.manufacturing.digital_twin.event_notification.event_types import EventCategory
from circman5.service.sparkplug_output import SparkplugOutput
from simulators.external import Mosquitto
from tests.api.plant_stack import CONNECTOR, SETPOINT_LIMITS, plant_stack
from tests.ingestion.conftest import eventually
from tests.ingestion.sparkplug_host import SparkplugHost, metrics_by_name

GROUP = "Twins"
NODE = "line1"
TARGET = "production_line.target_temperature"
CYCLE = "production_line.cycle_time"


@pytest.fixture
def host(mosquitto: Mosquitto) -> Iterator[SparkplugHost]:
    spb_host = SparkplugHost(mosquitto.url, GROUP)
    spb_host.wait_for(lambda m: m.get("event") == "subscribed", what="the host's subscription")
    yield spb_host
    spb_host.close()


def user_events(action: str) -> list[dict[str, Any]]:
    return [
        {**e.details, "source": e.source}
        for e in EventManager().get_events(category=EventCategory.USER)
        if e.details.get("action") == action
    ]


async def ncmd(host: SparkplugHost, path: str, value: float) -> None:
    await host.asend("ncmd", node=NODE, metrics=[{"name": path, "type": "Double", "value": value}])


async def test_a_host_writes_a_setpoint_and_is_refused_where_it_may_not(
    tmp_path: Path, mosquitto: Mosquitto, host: SparkplugHost
) -> None:
    events = EventManager()
    twin = DigitalTwin()
    assert twin.initialize()
    async with plant_stack(tmp_path / "sim", twin) as stack:
        await eventually(
            lambda: (
                twin.get_current_state()["production_line"].get("target_temperature") is not None
            ),
            within=20,
            what="the PLC's setpoint in the twin",
        )
        setpoints = SetpointService(
            SETPOINT_LIMITS, {CONNECTOR: stack.connector}, twin.get_current_state, events.publish
        )
        settings = SparkplugEdgeSettings(
            port=mosquitto.port,
            group_id=GROUP,
            edge_node_id=NODE,
            publish=["production_line.*"],
            writable=[TARGET],
        )
        output = SparkplugOutput(
            settings,
            twin.state_manager.snapshot,
            setpoints=setpoints,
            units={TARGET: "°C"},
            publish_event=events.publish,
        )
        async with output:
            stack.engine.add_update_listener(output.on_update)
            index, birth = await host.await_message("NBIRTH", node=NODE)
            target = metrics_by_name(birth)[TARGET]
            assert target["properties"]["engUnit"]["value"] == "°C"
            cycle_before = stack.bench.plant.setpoints.cycle_time

            await ncmd(host, TARGET, 26.5)
            await eventually(
                lambda: stack.bench.plant.setpoints.target_temperature == 26.5,
                what="the write at the PLC",
            )
            # the twin follows the PLC, and the edge node publishes the new value by alias
            await host.await_for(
                lambda m: (
                    m.get("type") == "NDATA"
                    and any(
                        x["alias"] == target["alias"] and x["value"] == 26.5 for x in m["metrics"]
                    )
                ),
                start=index,
            )
            await eventually(lambda: output.commands_written == 1, what="the write confirmed")
            (written,) = user_events("write_setpoint")
            assert written["source"] == "sparkplug"
            assert written["user_id"] == f"sparkplug:{GROUP}/{NODE}"
            details = written["action_details"]
            assert (details["path"], details["new_value"], details["confirmed"]) == (
                TARGET,
                26.5,
                True,
            )

            # a setpoint, but not writable from Sparkplug: refused, recorded, nothing written
            await ncmd(host, CYCLE, cycle_before + 5.0)
            await eventually(lambda: output.commands_refused == 1, what="the refusal")
            (refused,) = user_events("setpoint_rejected")
            assert refused["action_details"]["path"] == CYCLE
            assert "not writable from Sparkplug" in refused["action_details"]["reason"]
            assert refused["source"] == "sparkplug"

            # writable, but beyond the setpoint's limit: refused by the same checks as the API
            await ncmd(host, TARGET, 40.0)
            await eventually(lambda: output.commands_refused == 2, what="the limit refusal")
            over = [
                e for e in user_events("setpoint_rejected") if e["action_details"]["path"] == TARGET
            ]
            assert "above the maximum" in over[0]["action_details"]["reason"]

            # the output keeps serving: a valid write after the refusals goes through
            await ncmd(host, TARGET, 24.0)
            await eventually(
                lambda: stack.bench.plant.setpoints.target_temperature == 24.0,
                what="the next write",
            )
            assert stack.bench.plant.setpoints.cycle_time == cycle_before
