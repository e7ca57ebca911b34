"""The Modbus devices, read and written with a real pymodbus client over TCP and RTU-over-TCP."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
from pymodbus.client import AsyncModbusTcpClient
from pymodbus.framer import FramerType

from simulators.bench import SimulatorBench
from simulators.modbus_devices import (
    REGISTERS,
    STATUS_CODES,
    UNIT_ENERGY_METER,
    UNIT_ENVIRONMENT,
    UNIT_LINE,
    UNIT_SYNTHETIC,
    ModbusConfig,
    Register,
    synthetic_register,
)
from simulators.tags import Value
from tests.fixtures.simulators import BenchFactory
from tests.simulators.helpers import eventually

FRAMERS = [
    pytest.param(FramerType.SOCKET, id="tcp"),
    pytest.param(FramerType.RTU, id="rtu-over-tcp"),
]


@pytest_asyncio.fixture
async def modbus_bench(sim_bench_factory: BenchFactory) -> SimulatorBench:
    return await sim_bench_factory(opcua=None)


@pytest_asyncio.fixture(params=FRAMERS)
async def client(
    modbus_bench: SimulatorBench, request: pytest.FixtureRequest
) -> AsyncIterator[AsyncModbusTcpClient]:
    assert modbus_bench.modbus is not None
    framer: FramerType = request.param
    port = (
        modbus_bench.modbus.tcp_port
        if framer == FramerType.SOCKET
        else modbus_bench.modbus.rtu_port
    )
    assert port is not None
    client = AsyncModbusTcpClient("127.0.0.1", port=port, framer=framer, timeout=3, retries=1)
    assert await client.connect()
    yield client
    client.close()


async def _read(client: AsyncModbusTcpClient, reg: Register) -> Value:
    """Read and decode one documented register the way the README says."""
    if reg.table == "coil":
        bits = await client.read_coils(reg.address, count=1, device_id=reg.unit)
        assert not bits.isError(), (reg, bits)
        return bool(bits.bits[0])
    if reg.table == "discrete":
        bits = await client.read_discrete_inputs(reg.address, count=1, device_id=reg.unit)
        assert not bits.isError(), (reg, bits)
        return bool(bits.bits[0])
    reader = (
        client.read_holding_registers if reg.table == "holding" else client.read_input_registers
    )
    response = await reader(reg.address, count=reg.size, device_id=reg.unit)
    assert not response.isError(), (reg, response)
    words = response.registers
    if reg.encoding == "float32":
        number = client.convert_from_registers(words, client.DATATYPE.FLOAT32, word_order="big")
    elif reg.encoding == "uint32":
        number = client.convert_from_registers(words, client.DATATYPE.UINT32, word_order="big")
    elif reg.encoding == "int16x10":
        raw = client.convert_from_registers(words, client.DATATYPE.INT16)
        assert isinstance(raw, int)
        return raw / 10.0
    else:
        return int(words[0])
    assert isinstance(number, int | float)
    return number


async def test_documented_map_reads_with_abcd_word_order(
    modbus_bench: SimulatorBench, client: AsyncModbusTcpClient
) -> None:
    modbus_bench.runner.paused = True  # hold the plant still for exact comparisons
    plant = modbus_bench.plant.snapshot()
    for reg in REGISTERS:
        value = await _read(client, reg)
        expected = plant[reg.path]
        if reg.encoding == "float32":
            assert value == pytest.approx(float(expected), rel=1e-6), reg
        elif reg.encoding == "int16x10":
            assert value == pytest.approx(float(expected), abs=0.051), reg
        elif reg.path == "production_line.status":
            assert value == STATUS_CODES[str(expected)]
        elif reg.encoding == "bool":
            assert value is bool(expected), reg
        else:
            assert value == int(expected), reg
    # word order spelled out: the high word comes first (22.5 = 0x41B4 0x0000)
    target = await client.read_holding_registers(0, count=2, device_id=UNIT_LINE)
    assert target.registers == [0x41B4, 0x0000]


async def test_setpoint_writes_change_the_plant(
    modbus_bench: SimulatorBench, client: AsyncModbusTcpClient
) -> None:
    plant = modbus_bench.plant
    words = client.convert_to_registers(26.5, client.DATATYPE.FLOAT32, word_order="big")
    assert not (await client.write_registers(0, words, device_id=UNIT_LINE)).isError()
    assert plant.setpoints.target_temperature == 26.5
    # a single-register write replaces one word of the float: 0x41C8 0x0000 is 25.0
    assert not (await client.write_register(0, 0x41C8, device_id=UNIT_LINE)).isError()
    assert plant.setpoints.target_temperature == 25.0
    words = client.convert_to_registers(45.0, client.DATATYPE.FLOAT32, word_order="big")
    assert not (await client.write_registers(2, words, device_id=UNIT_LINE)).isError()
    assert plant.setpoints.cycle_time == 45.0
    assert not (await client.write_coil(0, False, device_id=UNIT_LINE)).isError()
    assert plant.setpoints.running is False
    assert (await client.read_discrete_inputs(0, count=1, device_id=UNIT_LINE)).bits[0] is False
    assert not (await client.write_register(4, 1, device_id=UNIT_LINE)).isError()
    assert plant.setpoints.running is True
    await eventually(lambda: plant.snapshot()["production_line.status"] == "running", "running")
    status = await client.read_input_registers(10, count=1, device_id=UNIT_LINE)
    assert status.registers == [STATUS_CODES["running"]]


async def test_errors_follow_the_documented_exception_codes(
    modbus_bench: SimulatorBench, client: AsyncModbusTcpClient
) -> None:
    # unmapped address
    response = await client.read_holding_registers(50, count=2, device_id=UNIT_ENERGY_METER)
    assert response.isError() and response.exception_code == 2
    # the meter's holding registers are read-only
    response = await client.write_register(0, 1, device_id=UNIT_ENERGY_METER)
    assert response.isError() and response.exception_code == 2
    # an alarm coil is read-only
    response = await client.write_coil(1, True, device_id=UNIT_LINE)
    assert response.isError() and response.exception_code == 2
    # setpoint out of range (and NaN)
    for bad in (99.0, float("nan")):
        words = client.convert_to_registers(bad, client.DATATYPE.FLOAT32, word_order="big")
        response = await client.write_registers(0, words, device_id=UNIT_LINE)
        assert response.isError() and response.exception_code == 3
    response = await client.write_register(4, 7, device_id=UNIT_LINE)
    assert response.isError() and response.exception_code == 3
    assert modbus_bench.plant.setpoints.target_temperature == 22.5
    # the environment sensor has no coils; unit 9 does not exist
    response = await client.read_coils(0, count=1, device_id=UNIT_ENVIRONMENT)
    assert response.isError() and response.exception_code == 2
    response = await client.read_input_registers(0, count=1, device_id=9)
    assert response.isError() and response.exception_code == 11
    # coils 6..15 of the line read as 0, beyond them nothing is mapped
    spare = await client.read_coils(6, count=10, device_id=UNIT_LINE)
    assert not spare.isError() and spare.bits[:10] == [False] * 10
    response = await client.read_coils(16, count=1, device_id=UNIT_LINE)
    assert response.isError() and response.exception_code == 2
    response = await client.write_coil(0, True, device_id=UNIT_ENERGY_METER)
    assert response.isError() and response.exception_code == 2


async def test_synthetic_registers(sim_bench_factory: BenchFactory) -> None:
    bench = await sim_bench_factory(
        opcua=None,
        modbus=ModbusConfig(
            tcp_port=0, rtu_port=0, synthetic_registers=10_000, synthetic_rate_hz=50.0
        ),
    )
    assert bench.modbus is not None and bench.modbus.units["synthetic"] == UNIT_SYNTHETIC
    client = AsyncModbusTcpClient("127.0.0.1", port=bench.modbus.tcp_port, timeout=3)
    assert await client.connect()
    try:
        first = await client.read_input_registers(9_990, count=10, device_id=UNIT_SYNTHETIC)
        assert not first.isError()
        tick = (first.registers[0] - 9_990 * 7) & 0xFFFF
        assert first.registers == [synthetic_register(i, tick) for i in range(9_990, 10_000)]
        held = await client.read_holding_registers(0, count=100, device_id=UNIT_SYNTHETIC)
        assert not held.isError() and len(held.registers) == 100

        async def moved() -> bool:
            again = await client.read_input_registers(9_990, count=10, device_id=UNIT_SYNTHETIC)
            return bool(again.registers != first.registers)

        await eventually(moved, "synthetic registers to count up")
        beyond = await client.read_input_registers(10_000, count=1, device_id=UNIT_SYNTHETIC)
        assert beyond.isError() and beyond.exception_code == 2
    finally:
        client.close()
