"""Fault injection on the OPC UA PLC and the Modbus devices: each fault on, its effect, off."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from datetime import timedelta

import pytest
import pytest_asyncio
from asyncua.client.client import Client
from asyncua.common.node import Node
from asyncua.ua.status_codes import StatusCodes
from pymodbus.client import AsyncModbusTcpClient
from pymodbus.exceptions import ModbusException

from simulators.bench import SimulatorBench
from simulators.modbus_devices import UNIT_ENERGY_METER, UNIT_ENVIRONMENT, UNIT_LINE
from tests.simulators.helpers import eventually

pytestmark = pytest.mark.asyncio(loop_scope="session")

TEMPERATURE = "production_line.temperature"


@pytest_asyncio.fixture(loop_scope="session")
async def bench(sim_bench_shared: SimulatorBench) -> AsyncIterator[SimulatorBench]:
    yield sim_bench_shared
    await sim_bench_shared.reset()


@pytest_asyncio.fixture(loop_scope="session")
async def opc(bench: SimulatorBench) -> AsyncIterator[Client]:
    assert bench.opcua is not None
    async with Client(bench.opcua.url, timeout=5) as client:
        yield client


@pytest_asyncio.fixture(loop_scope="session")
async def mb(bench: SimulatorBench) -> AsyncIterator[AsyncModbusTcpClient]:
    assert bench.modbus is not None
    client = AsyncModbusTcpClient("127.0.0.1", port=bench.modbus.tcp_port, timeout=3, retries=0)
    assert await client.connect()
    yield client
    client.close()


def _temperature_node(bench: SimulatorBench, client: Client) -> Node:
    assert bench.opcua is not None
    return client.get_node(f"ns={bench.opcua.namespace_index};s=Line1.Laminator.Temperature")


async def _modbus_temperature(client: AsyncModbusTcpClient) -> float:
    response = await client.read_input_registers(0, count=2, device_id=UNIT_LINE)
    assert not response.isError(), response
    value = client.convert_from_registers(response.registers, client.DATATYPE.FLOAT32)
    assert isinstance(value, float)
    return value


async def test_freeze_and_unfreeze(
    bench: SimulatorBench, opc: Client, mb: AsyncModbusTcpClient
) -> None:
    node = _temperature_node(bench, opc)
    bench.faults.freeze()
    frozen_at = bench.plant.updated_at
    await eventually(
        lambda: bench.plant.updated_at > frozen_at + timedelta(seconds=0.3),
        "a few plant updates after freezing",
    )
    first = await node.read_data_value()
    assert first.Value is not None
    first_value = first.Value.Value
    first_modbus = await _modbus_temperature(mb)
    moved_at = bench.plant.updated_at
    await eventually(
        lambda: (
            bench.plant.updated_at > moved_at + timedelta(seconds=0.5)
            and bench.plant.snapshot()[TEMPERATURE] != first_value
        ),
        "the plant to move on",
    )
    second = await node.read_data_value()
    assert second.Value == first.Value
    assert second.SourceTimestamp == first.SourceTimestamp
    assert await _modbus_temperature(mb) == first_modbus

    bench.faults.unfreeze()

    async def fresh() -> bool:
        again = await node.read_data_value()
        return bool(again.SourceTimestamp != first.SourceTimestamp)

    await eventually(fresh, "OPC UA updates after unfreezing")

    async def modbus_moves() -> bool:
        return await _modbus_temperature(mb) != first_modbus

    await eventually(modbus_moves, "Modbus updates after unfreezing")


async def test_stuck_at_for_all_or_one_server(
    bench: SimulatorBench, opc: Client, mb: AsyncModbusTcpClient
) -> None:
    node = _temperature_node(bench, opc)
    bench.faults.stuck_at(TEMPERATURE, 35.0)

    async def opc_stuck() -> bool:
        return bool(await node.read_value() == 35.0)

    await eventually(opc_stuck, "OPC UA to report the stuck value")
    assert await _modbus_temperature(mb) == 35.0
    assert bench.plant.snapshot()[TEMPERATURE] != 35.0
    status = (await node.read_data_value()).StatusCode
    assert status is not None and status.is_good()

    bench.faults.stuck_at(TEMPERATURE, 34.0, servers="modbus")
    assert await _modbus_temperature(mb) == 34.0

    async def opc_real() -> bool:
        return bool(await node.read_value() != 34.0 and await node.read_value() < 30.0)

    await eventually(opc_real, "OPC UA to report the real value again")
    bench.faults.clear_stuck(TEMPERATURE)
    assert await _modbus_temperature(mb) < 30.0


async def test_out_of_range_spike(
    bench: SimulatorBench, opc: Client, mb: AsyncModbusTcpClient
) -> None:
    node = _temperature_node(bench, opc)
    bench.faults.spike(TEMPERATURE)

    async def spiked() -> bool:
        return bool(await node.read_value() == 999.9)

    await eventually(spiked, "OPC UA to report the spike")
    assert await _modbus_temperature(mb) == pytest.approx(999.9)
    bench.faults.spike("environment.humidity", 150.0)
    raw = await mb.read_input_registers(1, count=1, device_id=UNIT_ENVIRONMENT)
    assert raw.registers == [1500]  # int16, value x 10
    bench.faults.clear_spike()

    async def normal() -> bool:
        return bool(await node.read_value() < 30.0)

    await eventually(normal, "the spike to be cleared")
    bench.faults.spike(TEMPERATURE, -50.0, duration=0.3)
    assert await _modbus_temperature(mb) == -50.0

    async def expired() -> bool:
        return await _modbus_temperature(mb) > 0.0

    await eventually(expired, "a timed spike to end by itself")
    assert bench.faults.describe()["spikes"] == {}


async def test_bad_and_uncertain_quality(bench: SimulatorBench, opc: Client) -> None:
    node = _temperature_node(bench, opc)
    for quality, code in (
        ("bad", StatusCodes.BadSensorFailure),
        ("uncertain", StatusCodes.UncertainLastUsableValue),
    ):
        bench.faults.bad_quality(TEMPERATURE, quality)

        async def flagged(expected: int = code) -> bool:
            dv = await node.read_data_value(raise_on_bad_status=False)
            return dv.StatusCode is not None and dv.StatusCode.value == expected

        await eventually(flagged, f"status {quality}")
    bench.faults.clear_quality()

    async def good() -> bool:
        dv = await node.read_data_value(raise_on_bad_status=False)
        return dv.StatusCode is not None and dv.StatusCode.is_good()

    await eventually(good, "status Good again")


async def test_slow_responses(bench: SimulatorBench) -> None:
    assert bench.modbus is not None and bench.opcua is not None
    bench.faults.set_delay(1.0, servers=("modbus", "opcua"))
    impatient = AsyncModbusTcpClient(
        "127.0.0.1", port=bench.modbus.tcp_port, timeout=0.3, retries=0
    )
    assert await impatient.connect()
    try:
        with pytest.raises(ModbusException):
            await impatient.read_input_registers(0, count=2, device_id=UNIT_LINE)
    finally:
        impatient.close()
    client = Client(bench.opcua.url, timeout=0.3)
    await client.connect()
    try:
        with pytest.raises(TimeoutError):
            await _temperature_node(bench, client).read_value()
    finally:
        with contextlib.suppress(Exception):
            await client.disconnect()

    bench.faults.clear_delay()
    patient = AsyncModbusTcpClient("127.0.0.1", port=bench.modbus.tcp_port, timeout=0.3, retries=0)
    assert await patient.connect()
    try:
        assert 10.0 < await _modbus_temperature(patient) < 40.0
    finally:
        patient.close()
    async with Client(bench.opcua.url, timeout=0.3) as client:
        assert isinstance(await _temperature_node(bench, client).read_value(), float)


async def test_modbus_exception_responses_per_unit(
    bench: SimulatorBench, mb: AsyncModbusTcpClient
) -> None:
    bench.faults.modbus_exception(UNIT_ENERGY_METER, "SLAVE_DEVICE_BUSY")
    busy = await mb.read_input_registers(0, count=2, device_id=UNIT_ENERGY_METER)
    assert busy.isError() and busy.exception_code == 6
    assert not (await mb.read_input_registers(0, count=1, device_id=UNIT_ENVIRONMENT)).isError()
    bench.faults.modbus_exception(UNIT_ENVIRONMENT, 2)
    illegal = await mb.read_input_registers(0, count=1, device_id=UNIT_ENVIRONMENT)
    assert illegal.isError() and illegal.exception_code == 2
    bench.faults.clear_modbus_exception()
    assert not (await mb.read_input_registers(0, count=2, device_id=UNIT_ENERGY_METER)).isError()
    assert not (await mb.read_input_registers(0, count=1, device_id=UNIT_ENVIRONMENT)).isError()


async def test_stop_and_restart_on_the_same_port(bench: SimulatorBench) -> None:
    assert bench.opcua is not None and bench.modbus is not None
    url, port = bench.opcua.url, bench.modbus.tcp_port
    certificate = bench.opcua.certificate
    assert certificate is not None
    cert_bytes = certificate.cert_der.read_bytes()

    await bench.stop_server("opcua")
    await bench.stop_server("modbus")
    with pytest.raises(OSError):
        await Client(url, timeout=2).connect()
    refused = AsyncModbusTcpClient("127.0.0.1", port=port, timeout=1, retries=0)
    assert not await refused.connect()
    refused.close()

    await bench.start_server("opcua")
    await bench.outage("modbus", 0.1)  # stop (already stopped), wait, start
    assert bench.opcua.url == url and bench.modbus.tcp_port == port
    assert certificate.cert_der.read_bytes() == cert_bytes
    async with Client(url, timeout=5) as client:
        assert isinstance(await _temperature_node(bench, client).read_value(), float)
    again = AsyncModbusTcpClient("127.0.0.1", port=port, timeout=3, retries=0)
    assert await again.connect()
    try:
        assert 10.0 < await _modbus_temperature(again) < 40.0
    finally:
        again.close()
