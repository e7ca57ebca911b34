"""The Modbus connector against the simulated devices (pymodbus server, TCP and RTU over TCP)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio

from circman5.connectors.config import ModbusConnectorSettings
from circman5.connectors.modbus.client import ModbusConnector
from circman5.errors import TagWriteError
from circman5.samples import Quality
from simulators.bench import SimulatorBench
from simulators.modbus_devices import STATUS_CODES
from tests.ingestion.conftest import (
    RecordingReporter,
    collecting,
    eventually,
    outage_and_recovery,
)

pytestmark = pytest.mark.asyncio(loop_scope="session")

METER = 1
ENVIRONMENT = 2
LINE = 3

TAGS: list[dict[str, Any]] = [
    # unit 1: float32 ABCD in input registers; the same in holding registers
    {
        "address": "ir:0",
        "path": "energy_meter.active_power",
        "data_type": "float32",
        "unit_id": METER,
    },
    {
        "address": "ir:2",
        "path": "energy_meter.energy_total",
        "data_type": "float32",
        "unit_id": METER,
    },
    {"address": "ir:4", "path": "energy_meter.voltage", "data_type": "float32", "unit_id": METER},
    {
        "address": "ir:10",
        "path": "energy_meter.frequency",
        "data_type": "float32",
        "unit_id": METER,
    },
    {"address": "hr:6", "path": "energy_meter.current", "data_type": "float32", "unit_id": METER},
    # unit 2: int16 x 10
    {
        "address": "ir:0",
        "path": "environment.temperature",
        "data_type": "int16",
        "scale": 0.1,
        "unit_id": ENVIRONMENT,
    },
    {
        "address": "ir:1",
        "path": "environment.humidity",
        "data_type": "int16",
        "scale": 0.1,
        "unit_id": ENVIRONMENT,
    },
    # unit 3: the line controller
    {
        "address": "hr:0",
        "path": "production_line.target_temperature",
        "data_type": "float32",
        "writable": True,
    },
    {
        "address": "hr:2",
        "path": "production_line.cycle_time",
        "data_type": "float32",
        "writable": True,
    },
    {"address": "ir:8", "path": "production_line.modules_produced", "data_type": "uint32"},
    {"address": "ir:10", "path": "production_line.status_code", "data_type": "uint16"},
    {"address": "ir:10", "path": "production_line.running_bit", "data_type": "bit", "bit": 0},
    {"address": "coil:0", "path": "production_line.running", "writable": True},
    {"address": "di:1", "path": "alarms.temperature"},
]


@pytest_asyncio.fixture(autouse=True, loop_scope="session")
async def _reset(sim_bench_shared: SimulatorBench) -> AsyncIterator[None]:
    yield
    await sim_bench_shared.reset()


def modbus_settings(
    bench: SimulatorBench, tags: list[dict[str, Any]] | None = None, **extra: Any
) -> ModbusConnectorSettings:
    assert bench.modbus is not None
    return ModbusConnectorSettings.model_validate(
        {
            "type": "modbus",
            "name": "devices",
            "host": "127.0.0.1",
            "port": bench.modbus.tcp_port,
            "unit_id": LINE,
            "poll_interval_s": 0.1,
            "timeout_s": 0.5,
            "backoff_max_s": 2.0,
            "reconnect_initial_s": 0.2,
            "reconnect_max_s": 1.0,
            "tags": TAGS if tags is None else tags,
            **extra,
        }
    )


async def test_reads_every_table_and_type(sim_bench_shared: SimulatorBench) -> None:
    sim_bench_shared.runner.paused = True  # hold the plant still to compare exactly
    plant = sim_bench_shared.plant.snapshot()
    connector = ModbusConnector(modbus_settings(sim_bench_shared))
    async with collecting(connector) as collector:
        await eventually(lambda: len(collector.latest()) == len(TAGS), what="every tag")
        got = {path: s.value for path, s in collector.latest().items()}
    for path in (
        "energy_meter.active_power",
        "energy_meter.voltage",
        "energy_meter.current",
        "production_line.target_temperature",
        "production_line.cycle_time",
    ):
        assert got[path] == pytest.approx(plant[path], rel=1e-6), path
    assert got["environment.temperature"] == pytest.approx(
        plant["environment.temperature"], abs=0.051
    )
    assert got["environment.humidity"] == pytest.approx(plant["environment.humidity"], abs=0.051)
    assert got["production_line.modules_produced"] == plant["production_line.modules_produced"]
    assert got["production_line.status_code"] == STATUS_CODES[plant["production_line.status"]]
    assert got["production_line.running_bit"] is (plant["production_line.status"] == "running")
    assert got["production_line.running"] is plant["production_line.running"]
    assert got["alarms.temperature"] is plant["alarms.temperature"]
    sample = collector.latest()["energy_meter.active_power"]
    assert sample.address == "1/ir:0" and sample.source == "devices"


async def test_tags_are_merged_into_few_requests(sim_bench_shared: SimulatorBench) -> None:
    connector = ModbusConnector(modbus_settings(sim_bench_shared))
    shape = [(r.unit_id, r.table, r.address, r.count) for r in connector.requests]
    assert shape == [
        (METER, "holding_register", 6, 2),
        (METER, "input_register", 0, 6),
        (METER, "input_register", 10, 2),
        (ENVIRONMENT, "input_register", 0, 2),
        (LINE, "coil", 0, 1),
        (LINE, "discrete_input", 1, 1),
        (LINE, "holding_register", 0, 4),
        (LINE, "input_register", 8, 3),
    ]
    wide = ModbusConnector(modbus_settings(sim_bench_shared, max_gap=4))
    assert len(wide.requests) == 7  # ir:0..6 and ir:10..12 of the meter merge over the gap


async def test_rtu_framing_over_tcp(sim_bench_shared: SimulatorBench) -> None:
    assert sim_bench_shared.modbus is not None
    settings = modbus_settings(
        sim_bench_shared, transport="rtu_over_tcp", port=sim_bench_shared.modbus.rtu_port
    )
    async with collecting(ModbusConnector(settings)) as collector:
        await eventually(lambda: len(collector.latest()) == len(TAGS), what="every tag over RTU")
        assert collector.latest()["energy_meter.frequency"].value == pytest.approx(50.0, abs=1.0)


async def test_writes_change_the_plant(sim_bench_shared: SimulatorBench) -> None:
    connector = ModbusConnector(modbus_settings(sim_bench_shared))
    async with collecting(connector) as collector:
        await eventually(lambda: len(collector.latest()) == len(TAGS))
        await connector.write("production_line.target_temperature", 25.5)
        assert sim_bench_shared.plant.setpoints.target_temperature == 25.5
        await eventually(
            lambda: collector.latest()["production_line.target_temperature"].value == 25.5,
            what="the written value read back",
        )
        await connector.write("3/coil:0", False)  # by address
        assert sim_bench_shared.plant.setpoints.running is False
        await eventually(lambda: collector.latest()["production_line.running"].value is False)
        with pytest.raises(TagWriteError, match="ILLEGAL_VALUE"):
            await connector.write("production_line.cycle_time", 1000.0)  # outside 20..60 s
        with pytest.raises(TagWriteError, match="not writable"):
            await connector.write("energy_meter.active_power", 1.0)
        with pytest.raises(TagWriteError, match="not a boolean"):
            await connector.write("production_line.running", "perhaps")
        assert connector.status.writes == 2 and connector.status.write_errors == 2


async def test_exception_responses_mark_stale_and_back_off(
    sim_bench_shared: SimulatorBench,
) -> None:
    reporter = RecordingReporter()
    connector = ModbusConnector(modbus_settings(sim_bench_shared), reporter)
    async with collecting(connector) as collector:
        await eventually(lambda: len(collector.latest()) == len(TAGS))
        sim_bench_shared.faults.modbus_exception(ENVIRONMENT, 6)
        await eventually(
            lambda: (
                {"environment.temperature", "environment.humidity"}
                <= set(collector.latest(Quality.STALE))
            ),
            what="the environment tags stale",
        )
        await eventually(
            lambda: connector.unit_status()[ENVIRONMENT]["failures"] >= 3, what="repeated failures"
        )
        units = connector.unit_status()
        assert units[ENVIRONMENT]["interval_s"] > 0.5  # polled less often
        assert units[LINE]["failures"] == 0 and units[LINE]["interval_s"] == 0.1
        assert "DEVICE_BUSY" in (connector.status.last_error or "")
        assert reporter.of("ModbusReadFailed")
        # the other units keep being polled at their own rate
        polls = connector.polls
        await eventually(lambda: connector.polls >= polls + 5, what="other units still polled")
        assert connector.unit_status()[METER]["failures"] == 0
        sim_bench_shared.faults.clear_modbus_exception()
        mark = len(collector.samples)
        await eventually(
            lambda: any(
                s.path == "environment.humidity" and s.quality is Quality.GOOD
                for s in collector.samples[mark:]
            ),
            within=10,
            what="the unit back",
        )
        assert connector.unit_status()[ENVIRONMENT]["failures"] == 0


async def test_timeouts_mark_stale(sim_bench_shared: SimulatorBench) -> None:
    connector = ModbusConnector(modbus_settings(sim_bench_shared, timeout_s=0.2))
    async with collecting(connector) as collector:
        await eventually(lambda: len(collector.latest()) == len(TAGS))
        # answers 2 s late: the first poll after this (8 requests x 0.2 s) times out entirely
        sim_bench_shared.faults.set_delay(2.0, servers=["modbus"])
        await eventually(
            lambda: len(collector.latest(Quality.STALE)) == len(TAGS), what="every tag stale"
        )
        assert "no response" in (connector.status.last_error or "")
        sim_bench_shared.faults.clear_delay()
        mark = len(collector.samples)
        await eventually(
            lambda: (
                {s.path for s in collector.samples[mark:] if s.quality is Quality.GOOD}
                == {t["path"] for t in TAGS}
            ),
            within=15,
            what="every tag good again",
        )


async def test_unknown_unit_fails_alone(sim_bench_shared: SimulatorBench) -> None:
    tags = [
        {
            "address": "ir:0",
            "path": "energy_meter.active_power",
            "data_type": "float32",
            "unit_id": 1,
        },
        {"address": "ir:0", "path": "ghost.value", "data_type": "float32", "unit_id": 9},
    ]
    connector = ModbusConnector(modbus_settings(sim_bench_shared, tags=tags))
    async with collecting(connector) as collector:
        await eventually(lambda: connector.unit_status()[9]["failures"] >= 1)
        await eventually(lambda: "energy_meter.active_power" in collector.latest())
        assert "GATEWAY_TARGET_NO_RESPONSE" in (connector.status.last_error or "")
        assert connector.status.stale_tags == 1


async def test_device_restart_reconnects(sim_bench_shared: SimulatorBench) -> None:
    connector = ModbusConnector(modbus_settings(sim_bench_shared))
    async with collecting(connector) as collector:
        paths = {t["path"] for t in TAGS}
        await outage_and_recovery(sim_bench_shared, "modbus", connector, collector, paths)


async def test_report_on_change_with_heartbeat(sim_bench_shared: SimulatorBench) -> None:
    sim_bench_shared.runner.paused = True  # nothing changes
    tags = TAGS[:4]
    settings = modbus_settings(sim_bench_shared, tags=tags, heartbeat_s=1.0)
    assert settings.report == "change"
    connector = ModbusConnector(settings)
    async with collecting(connector) as collector:
        await eventually(lambda: len(collector.latest()) == len(tags), what="the first report")
        first = len(collector.samples)
        polls = connector.polls
        await eventually(lambda: connector.polls >= polls + 3, what="more polls")
        assert len(collector.samples) == first  # unchanged values are not passed on again
        await eventually(
            lambda: len(collector.samples) >= first + len(tags), within=5, what="the heartbeat"
        )
    every = ModbusConnector(modbus_settings(sim_bench_shared, tags=tags, report="poll"))
    async with collecting(every) as collector:
        await eventually(lambda: every.polls >= 4, what="four polls")
        await eventually(lambda: len(collector.samples) >= 3 * len(tags), what="every poll")
