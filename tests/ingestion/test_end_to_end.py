"""End to end: simulated plant -> OPC UA, Modbus, MQTT -> connectors -> engine -> DigitalTwin."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

import pytest

from circman5.connectors.base import BaseConnector
from circman5.connectors.config import (
    ModbusConnectorSettings,
    MqttConnectorSettings,
    OpcUaConnectorSettings,
)
from circman5.connectors.modbus.client import ModbusConnector
from circman5.connectors.mqtt.client import MqttConnector
from circman5.connectors.opcua.client import OpcUaConnector
from circman5.manufacturing.digital_twin.core.synchronization import SynchronizationEngine
from circman5.manufacturing.digital_twin.core.twin_core import DigitalTwin
from circman5.manufacturing.digital_twin.event_notification.event_manager import event_manager
from circman5.manufacturing.digital_twin.event_notification.event_types import ErrorEvent, Event
from circman5.manufacturing.digital_twin.event_notification.reporter import EventProblemReporter
from circman5.samples import Sample
from circman5.state_paths import lookup
from simulators.external import Mosquitto
from simulators.process import SimulatorProcess
from tests.ingestion.conftest import eventually

NS = "urn:circman5:sim:plc"
EVENTS = EventProblemReporter()  # as the composition root wires it: problems become ErrorEvents


def connector_settings(
    opcua_url: str, modbus_port: int, mqtt_port: int
) -> tuple[OpcUaConnectorSettings, ModbusConnectorSettings, MqttConnectorSettings]:
    plc = OpcUaConnectorSettings.model_validate(
        {
            "type": "opcua",
            "name": "plc",
            "url": opcua_url,
            "namespace_uri": NS,
            "publishing_interval_ms": 100,
            "reconnect_initial_s": 0.2,
            "reconnect_max_s": 1.0,
            "watchdog_interval_s": 0.5,
            "tags": [
                {"address": "s=Line1.Laminator.Temperature", "path": "production_line.temperature"},
                {"address": "s=Line1.Laminator.Status", "path": "production_line.status"},
                {
                    "address": "s=Line1.Laminator.TargetTemperature",
                    "path": "production_line.target_temperature",
                    "writable": True,
                },
                {"address": "s=Line1.Environment.Humidity", "path": "environment.humidity"},
            ],
        }
    )
    meters = ModbusConnectorSettings.model_validate(
        {
            "type": "modbus",
            "name": "meters",
            "host": "127.0.0.1",
            "port": modbus_port,
            "poll_interval_s": 0.2,
            "timeout_s": 0.5,
            "reconnect_initial_s": 0.2,
            "reconnect_max_s": 1.0,
            "tags": [
                {
                    "address": "ir:0",
                    "path": "energy_meter.active_power",
                    "data_type": "float32",
                    "unit_id": 1,
                },
                {
                    "address": "ir:10",
                    "path": "energy_meter.frequency",
                    "data_type": "float32",
                    "unit_id": 1,
                },
                {
                    "address": "ir:0",
                    "path": "environment.temperature",
                    "data_type": "int16",
                    "scale": 0.1,
                    "unit_id": 2,
                },
                {
                    "address": "hr:0",
                    "path": "line_controller.target_temperature",
                    "data_type": "float32",
                    "unit_id": 3,
                },
            ],
        }
    )
    mes = MqttConnectorSettings.model_validate(
        {
            "type": "mqtt",
            "name": "mes",
            "port": mqtt_port,
            "reconnect_max_s": 1.0,
            "tags": [
                {
                    "address": "mes/line1/+/inventory",
                    "path": "materials.{1}.inventory",
                    "field": "inventory",
                    "timestamp_field": "ts",
                    "stale_timeout_s": 0,
                },
                {
                    "address": "mes/line1/+/consumption",
                    "path": "materials.{1}.consumption",
                    "field": "consumption",
                    "stale_timeout_s": 0,
                },
                {
                    "address": "mes/line1/quality/inspection",
                    "path": "quality_control.last_power_w",
                    "field": "power_w",
                    "stale_timeout_s": 0,
                },
            ],
        }
    )
    return plc, meters, mes


class Pipeline:
    def __init__(self, twin: DigitalTwin, connectors: Sequence[BaseConnector]) -> None:
        self.twin = twin
        self.connectors = {c.name: c for c in connectors}
        self.raw: list[Sample] = []
        self.engine = SynchronizationEngine(
            twin,
            connectors,
            tick_rate_hz=20.0,
            stale_timeout_s=3.0,
            sinks=[self.raw.extend],
            reporter=EventProblemReporter(),
        )

    def state(self) -> dict[str, Any]:
        return self.twin.get_current_state()

    def value(self, path: str) -> Any:
        try:
            return lookup(self.state(), path)
        except KeyError:
            return None

    def quality(self, path: str) -> str | None:
        quality = self.state().get("quality", {})
        return quality.get(path) if isinstance(quality, dict) else None


@asynccontextmanager
async def pipeline(
    twin: DigitalTwin, connectors: Sequence[BaseConnector]
) -> AsyncIterator[Pipeline]:
    async with AsyncExitStack() as stack:
        for connector in connectors:
            await stack.enter_async_context(connector)
        line = Pipeline(twin, connectors)
        async with asyncio.TaskGroup() as group:
            task = group.create_task(line.engine.run())
            try:
                yield line
            finally:
                task.cancel()


@pytest.fixture
def error_events() -> Any:
    events: list[Event] = []
    event_manager.subscribe(events.append)
    yield events
    event_manager.unsubscribe(events.append)


async def test_twin_follows_the_plant_over_all_three_protocols(
    twin: DigitalTwin, mosquitto: Mosquitto, sim_bench_factory: Any
) -> None:
    bench = await sim_bench_factory(broker=mosquitto, mqtt_options={"inventory_interval": 0.5})
    assert bench.opcua is not None and bench.modbus is not None
    plc, meters, mes = connector_settings(bench.opcua.url, bench.modbus.tcp_port, mosquitto.port)
    async with pipeline(
        twin,
        [OpcUaConnector(plc, EVENTS), ModbusConnector(meters, EVENTS), MqttConnector(mes, EVENTS)],
    ) as line:
        paths = [
            "production_line.temperature",  # OPC UA
            "production_line.status",
            "energy_meter.active_power",  # Modbus
            "environment.temperature",
            "materials.silicon_wafer.inventory",  # MQTT
            "materials.solar_glass.inventory",
        ]
        await eventually(
            lambda: all(line.quality(p) == "good" for p in paths), within=15, what="all sources"
        )
        bench.runner.paused = True  # hold the plant still, then let the twin catch up
        plant = bench.plant.snapshot()

        def caught_up() -> bool:
            return (
                line.value("production_line.temperature")
                == pytest.approx(plant["production_line.temperature"])
                and line.value("energy_meter.active_power")
                == pytest.approx(plant["energy_meter.active_power"], rel=1e-5)
                and line.value("environment.temperature")
                == pytest.approx(plant["environment.temperature"], abs=0.051)
                and line.value("materials.silicon_wafer.inventory")
                == pytest.approx(plant["materials.silicon_wafer.inventory"])
            )

        await eventually(caught_up, within=10, what="the twin to match the plant")
        assert line.value("production_line.status") == plant["production_line.status"]
        stats = line.engine.stats
        assert {"plc", "meters", "mes"} <= set(stats.sources)
        assert stats.updates >= 1 and stats.samples_in >= len(paths)
        assert all(s.samples_in > 0 for s in stats.sources.values())
        assert len(line.raw) == stats.samples_in - stats.dropped  # sinks got every sample
        # one twin update per tick, not per sample
        assert twin.update_count < stats.samples_in


async def test_setpoint_written_over_opcua_changes_the_plant(
    twin: DigitalTwin, mosquitto: Mosquitto, sim_bench_factory: Any
) -> None:
    bench = await sim_bench_factory(broker=mosquitto)
    plc, meters, mes = connector_settings(bench.opcua.url, bench.modbus.tcp_port, mosquitto.port)
    opcua = OpcUaConnector(plc, EVENTS)
    async with pipeline(
        twin, [opcua, ModbusConnector(meters, EVENTS), MqttConnector(mes, EVENTS)]
    ) as line:
        await eventually(
            lambda: line.quality("line_controller.target_temperature") == "good", within=15
        )
        await opcua.write("production_line.target_temperature", 26.5)
        assert bench.plant.setpoints.target_temperature == 26.5
        # the plant now reports the new setpoint on every protocol: OPC UA and Modbus
        await eventually(
            lambda: (
                line.value("production_line.target_temperature") == 26.5
                and line.value("line_controller.target_temperature") == 26.5
            ),
            what="the new setpoint in the twin",
        )
        # and the process follows it
        bench.runner.speed = 60.0
        await eventually(
            lambda: abs(line.value("production_line.temperature") - 26.5) < 1.0,
            within=20,
            what="the laminator temperature to approach 26.5",
        )


async def test_simulator_restart_reconnects_with_fresh_values(
    twin: DigitalTwin, mosquitto: Mosquitto, sim_process_factory: Any, error_events: list[Event]
) -> None:
    process: SimulatorProcess = sim_process_factory(
        extra_args=("--inventory-interval", "0.5"), broker=mosquitto
    )
    plc, meters, mes = connector_settings(process.opcua_url, process.modbus_port, mosquitto.port)
    connectors = [
        OpcUaConnector(plc, EVENTS),
        ModbusConnector(meters, EVENTS),
        MqttConnector(mes, EVENTS),
    ]
    async with pipeline(twin, connectors) as line:
        watched = [
            "production_line.temperature",
            "energy_meter.active_power",
            "materials.silicon_wafer.inventory",
        ]
        await eventually(lambda: all(line.quality(p) == "good" for p in watched), within=20)
        await asyncio.to_thread(process.stop)
        await eventually(
            lambda: (
                line.quality("production_line.temperature") == "stale"
                and line.quality("energy_meter.active_power") == "stale"
            ),
            what="OPC UA and Modbus tags stale",
        )
        restarted = time.time_ns()
        await asyncio.to_thread(process.start)
        await eventually(
            lambda: (
                line.connectors["plc"].status.connected
                and line.connectors["meters"].status.connected
            ),
            within=15,
            what="the reconnects",
        )
        await eventually(
            lambda: all(line.quality(p) == "good" for p in watched), within=15, what="good again"
        )
        fresh = {
            s.path for s in line.raw if s.timestamp_ns > restarted and s.quality.value == "good"
        }
        assert set(watched) <= fresh
        assert line.connectors["plc"].status.reconnects >= 1
        assert line.connectors["meters"].status.reconnects >= 1
    lost = [
        e
        for e in error_events
        if isinstance(e, ErrorEvent) and e.details.get("error_type") == "ConnectionLost"
    ]
    assert {e.source for e in lost} >= {"plc", "meters"}


async def test_malformed_payloads_raise_error_events_while_data_flows(
    twin: DigitalTwin, mosquitto: Mosquitto, sim_bench_factory: Any, error_events: list[Event]
) -> None:
    bench = await sim_bench_factory(broker=mosquitto, mqtt_options={"inventory_interval": 0.2})
    plc, meters, mes = connector_settings(bench.opcua.url, bench.modbus.tcp_port, mosquitto.port)
    mqtt = MqttConnector(mes, EVENTS)
    async with pipeline(
        twin, [OpcUaConnector(plc, EVENTS), ModbusConnector(meters, EVENTS), mqtt]
    ) as line:
        await eventually(
            lambda: line.quality("materials.silicon_wafer.inventory") == "good", within=15
        )
        assert bench.mes is not None
        for kind in ("invalid_json", "nan", "wrong_types", "oversized", "binary", "empty"):
            before = mqtt.status.malformed
            bench.faults.mqtt_malformed(kind)
            await eventually(
                lambda before=before: mqtt.status.malformed > before, what=f"{kind} counted"
            )
            mark = line.engine.stats.sources["plc"].samples_in
            await eventually(
                lambda mark=mark: line.engine.stats.sources["plc"].samples_in > mark,
                what="OPC UA data still flowing",
            )
        bench.faults.clear_mqtt_malformed()
        mark = line.engine.stats.sources["mes"].samples_in
        await eventually(
            lambda: line.engine.stats.sources["mes"].samples_in > mark, what="good MES data again"
        )
        malformed = mqtt.status.malformed
        assert malformed >= 6
    reports = [
        e
        for e in error_events
        if isinstance(e, ErrorEvent) and e.details.get("error_type") == "MalformedInput"
    ]
    assert reports, "malformed payloads must be reported as error events"
    assert len(reports) < malformed  # aggregated, not one event per message
    assert all(e.source == "mes" for e in reports)
