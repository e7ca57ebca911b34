"""Simulated Modbus devices (pymodbus server) over the shared plant model.

One TCP listener speaks Modbus TCP (MBAP framing), a second one speaks Modbus RTU framing over
TCP (RTU frames with CRC on a TCP stream, as serial-to-Ethernet gateways do). Both serve the
same devices (unit ids):

* unit 1, energy meter: float32 values in input registers and, read-only, the same values in
  holding registers;
* unit 2, environment sensor: int16 values scaled by 10;
* unit 3, line controller: setpoints in holding registers (writes change the plant), process
  values in input registers, line status and alarms in coils and discrete inputs;
* unit 4, synthetic load device (only with ``synthetic_registers > 0``).

**Word order:** 32-bit values (float32, uint32) use big-endian bytes and big-endian words
("ABCD"): the register at the lower address holds the most significant 16 bits. With pymodbus:
``client.convert_from_registers(regs, client.DATATYPE.FLOAT32, word_order="big")``.

The register map is the table in ``simulators/README.md`` and :data:`REGISTER_MAP`. Addresses
are 0-based protocol addresses. Unmapped addresses answer ILLEGAL_ADDRESS (2); writes to
read-only addresses answer ILLEGAL_ADDRESS; setpoint writes outside their range (or NaN)
answer ILLEGAL_VALUE (3); unknown unit ids answer GATEWAY_TARGET_NO_RESPONSE (11).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import struct
import time
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from pymodbus.constants import ExcCodes
from pymodbus.framer import FramerType
from pymodbus.server import ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice

from simulators.config import ModbusConfig
from simulators.external import free_port
from simulators.faults import Faults
from simulators.lifecycle import Lifecycle
from simulators.plant import SETPOINT_LIMITS, Plant
from simulators.tags import TAGS, Value

__all__ = [
    "FUNCTION_TABLE",
    "REGISTERS",
    "REGISTER_MAP",
    "STATUS_CODES",
    "UNIT_ENERGY_METER",
    "UNIT_ENVIRONMENT",
    "UNIT_LINE",
    "UNIT_SYNTHETIC",
    "ModbusConfig",
    "ModbusDevices",
    "Register",
    "decode",
    "describe_map",
    "encode",
    "synthetic_register",
]

log = logging.getLogger(__name__)

UNIT_ENERGY_METER = 1
UNIT_ENVIRONMENT = 2
UNIT_LINE = 3
UNIT_SYNTHETIC = 4

Table = Literal["coil", "discrete", "holding", "input"]
Encoding = Literal["float32", "uint32", "int16x10", "uint16", "bool"]

FUNCTION_TABLE: dict[int, Table] = {
    1: "coil",
    5: "coil",
    15: "coil",
    2: "discrete",
    3: "holding",
    6: "holding",
    16: "holding",
    22: "holding",
    23: "holding",
    4: "input",
}


@dataclass(frozen=True, slots=True)
class Register:
    """One mapped value: table, 0-based address, encoding and the twin path it carries."""

    unit: int
    table: Table
    address: int
    encoding: Encoding
    path: str
    writable: bool = False

    @property
    def size(self) -> int:
        """Registers (or bits) it occupies."""
        return 2 if self.encoding in ("float32", "uint32") else 1


def _meter(table: Table) -> list[Register]:
    paths = (
        "energy_meter.active_power",
        "energy_meter.energy_total",
        "energy_meter.voltage",
        "energy_meter.current",
        "energy_meter.power_factor",
        "energy_meter.frequency",
    )
    return [
        Register(UNIT_ENERGY_METER, table, 2 * i, "float32", path) for i, path in enumerate(paths)
    ]


_ALARM_PATHS = (
    "alarms.temperature",
    "alarms.humidity",
    "alarms.silicon_wafer_low",
    "alarms.solar_glass_low",
    "alarms.defect_rate",
)

REGISTERS: tuple[Register, ...] = (
    # unit 1: energy meter
    *_meter("input"),
    *_meter("holding"),
    # unit 2: environment sensor (int16, value x 10)
    Register(UNIT_ENVIRONMENT, "input", 0, "int16x10", "environment.temperature"),
    Register(UNIT_ENVIRONMENT, "input", 1, "int16x10", "environment.humidity"),
    Register(UNIT_ENVIRONMENT, "holding", 0, "int16x10", "environment.temperature"),
    Register(UNIT_ENVIRONMENT, "holding", 1, "int16x10", "environment.humidity"),
    # unit 3: line controller
    Register(UNIT_LINE, "holding", 0, "float32", "production_line.target_temperature", True),
    Register(UNIT_LINE, "holding", 2, "float32", "production_line.cycle_time", True),
    Register(UNIT_LINE, "holding", 4, "uint16", "production_line.running", True),
    Register(UNIT_LINE, "input", 0, "float32", "production_line.temperature"),
    Register(UNIT_LINE, "input", 2, "float32", "production_line.production_rate"),
    Register(UNIT_LINE, "input", 4, "float32", "production_line.efficiency"),
    Register(UNIT_LINE, "input", 6, "float32", "production_line.defect_rate"),
    Register(UNIT_LINE, "input", 8, "uint32", "production_line.modules_produced"),
    Register(UNIT_LINE, "input", 10, "uint16", "production_line.status"),
    Register(UNIT_LINE, "input", 11, "uint16", "batch.modules_produced"),
    Register(UNIT_LINE, "input", 12, "float32", "materials.silicon_wafer.inventory"),
    Register(UNIT_LINE, "input", 14, "float32", "materials.solar_glass.inventory"),
    Register(UNIT_LINE, "input", 16, "float32", "materials.silicon_wafer.quality"),
    Register(UNIT_LINE, "input", 18, "float32", "materials.solar_glass.quality"),
    Register(UNIT_LINE, "input", 20, "float32", "production_line.energy_consumption"),
    Register(UNIT_LINE, "coil", 0, "bool", "production_line.running", True),
    *(Register(UNIT_LINE, "coil", i + 1, "bool", path) for i, path in enumerate(_ALARM_PATHS)),
    Register(UNIT_LINE, "discrete", 0, "bool", "production_line.running"),
    *(Register(UNIT_LINE, "discrete", i + 1, "bool", path) for i, path in enumerate(_ALARM_PATHS)),
)
"""The documented register map (without the synthetic unit)."""

REGISTER_MAP: dict[int, dict[Table, tuple[Register, ...]]] = {}
for _reg in REGISTERS:
    REGISTER_MAP.setdefault(_reg.unit, {}).setdefault(_reg.table, ())
    REGISTER_MAP[_reg.unit][_reg.table] += (_reg,)

STATUS_CODES = {"idle": 0, "running": 1}
"""``production_line.status`` as the uint16 at unit 3 input register 10."""


def encode(register: Register, value: Value) -> list[int]:
    """The 16-bit words of ``value`` in ``register``'s encoding (ABCD for 32-bit values)."""
    enc = register.encoding
    if enc == "float32":
        number = float(value)
        raw = struct.pack(">f", number)
        return [int.from_bytes(raw[0:2], "big"), int.from_bytes(raw[2:4], "big")]
    if enc == "uint32":
        number32 = min(max(int(value), 0), 0xFFFFFFFF)
        return [number32 >> 16, number32 & 0xFFFF]
    if enc == "int16x10":
        scaled = float(value) * 10.0
        scaled_int = round(scaled) if math.isfinite(scaled) else 0
        return [min(max(scaled_int, -32768), 32767) & 0xFFFF]
    if enc == "uint16":
        if isinstance(value, str):
            return [STATUS_CODES.get(value, 0xFFFF)]
        return [min(max(int(value), 0), 0xFFFF)]
    return [1 if value else 0]


def decode(register: Register, words: Sequence[int]) -> float | int:
    if register.encoding == "float32":
        return float(struct.unpack(">f", struct.pack(">HH", words[0], words[1]))[0])
    if register.encoding == "uint32":
        return (words[0] << 16) | words[1]
    if register.encoding == "int16x10":
        word = words[0] - 0x10000 if words[0] >= 0x8000 else words[0]
        return word / 10.0
    return words[0]


def synthetic_register(index: int, tick: int) -> int:
    """Value of synthetic register ``index`` at update number ``tick`` (both tables)."""
    return (index * 7 + tick) & 0xFFFF


Action = Callable[
    [int, int, int, int, list[int], list[int] | list[bool] | None],
    Coroutine[None, None, ExcCodes | None],
]


class ModbusDevices(Lifecycle):
    """The Modbus devices. ``async with ModbusDevices(plant, faults, config) as devices:``.

    Attributes: ``tcp_port`` (Modbus TCP), ``rtu_port`` (RTU framing over TCP), ``host``,
    ``units`` (name -> unit id). ``stop()``/``start()`` restart both on the same ports.
    """

    def __init__(
        self, plant: Plant, faults: Faults | None = None, config: ModbusConfig | None = None
    ) -> None:
        self.plant = plant
        self.faults = faults or Faults()
        self.config = config or ModbusConfig()
        self.host = self.config.host
        self.tcp_port = self.config.tcp_port
        self.rtu_port: int | None = self.config.rtu_port if self.config.rtu_enabled else None
        self._servers: list[ModbusTcpServer] = []
        self._t0 = time.monotonic()
        self._synthetic_tick_frozen: int | None = None
        self.writes_applied = 0

    @property
    def units(self) -> dict[str, int]:
        units = {
            "energy_meter": UNIT_ENERGY_METER,
            "environment": UNIT_ENVIRONMENT,
            "line": UNIT_LINE,
        }
        if self.config.synthetic_registers > 0:
            units["synthetic"] = UNIT_SYNTHETIC
        return units

    @property
    def running(self) -> bool:
        return bool(self._servers)

    def endpoint_info(self) -> dict[str, Any]:
        return {
            "host": self.host,
            "tcp_port": self.tcp_port,
            "rtu_over_tcp_port": self.rtu_port,
            "units": self.units,
            "word_order": "ABCD (big-endian bytes, big-endian words)",
            "synthetic_registers": self.config.synthetic_registers,
        }

    # -- lifecycle -----------------------------------------------------------------------------

    async def start(self) -> None:
        """Listen (again, on the same ports after a stop)."""
        if self._servers:
            return
        devices = self._devices()
        listeners: list[tuple[str, FramerType]] = [("tcp_port", FramerType.SOCKET)]
        if self.rtu_port is not None:
            listeners.append(("rtu_port", FramerType.RTU))
        try:
            for attr, framer in listeners:
                port = getattr(self, attr)
                auto = port == 0
                for attempt in range(5):
                    if auto:
                        port = free_port()
                    server = ModbusTcpServer(devices, framer=framer, address=(self.host, port))
                    try:
                        await server.serve_forever(background=True)
                    except RuntimeError:
                        with contextlib.suppress(Exception):
                            await server.shutdown()  # type: ignore[no-untyped-call]
                        if not auto and attempt < 4:
                            # the old listener may still be closing after a restart
                            await asyncio.sleep(0.05 * (attempt + 1))
                            continue
                        if auto and attempt < 4:
                            continue
                        raise OSError(
                            f"Modbus server cannot listen on {self.host}:{port}"
                        ) from None
                    setattr(self, attr, port)
                    self._servers.append(server)
                    break
        except BaseException:
            await self.stop()
            raise
        log.info("Modbus devices listening: TCP %s, RTU-over-TCP %s", self.tcp_port, self.rtu_port)

    async def stop(self) -> None:
        """Stop both listeners and drop client connections."""
        servers, self._servers = self._servers, []
        for server in servers:
            with contextlib.suppress(Exception):
                await server.shutdown()  # type: ignore[no-untyped-call]

    # -- device definitions ------------------------------------------------------------------

    def _devices(self) -> list[SimDevice]:
        devices = [
            SimDevice(
                0,
                simdata=(
                    [SimData(0, values=[False] * 16, datatype=DataType.BITS)],
                    [SimData(0, values=[False] * 16, datatype=DataType.BITS)],
                    [SimData(0, count=65536, datatype=DataType.REGISTERS)],
                    [SimData(0, count=65536, datatype=DataType.REGISTERS)],
                ),
                action=self._unknown_unit,
            )
        ]
        for unit, tables in REGISTER_MAP.items():
            devices.append(
                SimDevice(
                    unit,
                    simdata=(
                        _bit_block(),
                        _bit_block(),
                        _register_block(tables.get("holding", ())),
                        _register_block(tables.get("input", ())),
                    ),
                    action=self._action_for(unit),
                )
            )
        count = self.config.synthetic_registers
        if count > 0:
            count = min(count, 65536)
            block = [SimData(0, count=count, datatype=DataType.REGISTERS, readonly=True)]
            devices.append(
                SimDevice(
                    UNIT_SYNTHETIC,
                    simdata=(_bit_block(), _bit_block(), list(block), list(block)),
                    action=self._action_for(UNIT_SYNTHETIC),
                )
            )
        return devices

    async def _unknown_unit(
        self,
        function_code: int,
        start: int,
        address: int,
        count: int,
        registers: list[int],
        values: list[int] | list[bool] | None,
    ) -> ExcCodes | None:
        return ExcCodes.GATEWAY_NO_RESPONSE

    def _action_for(self, unit: int) -> Action:
        async def action(
            function_code: int,
            start: int,
            address: int,
            count: int,
            registers: list[int],
            values: list[int] | list[bool] | None,
        ) -> ExcCodes | None:
            return await self._action(unit, function_code, start, address, count, registers, values)

        return action

    # -- request handling --------------------------------------------------------------------

    async def _action(
        self,
        unit: int,
        function_code: int,
        start: int,
        address: int,
        count: int,
        registers: list[int],
        values: list[int] | list[bool] | None,
    ) -> ExcCodes | None:
        code = self.faults.modbus_exception_for(unit)
        if code is not None:
            return ExcCodes(code)
        delay = self.faults.delay("modbus")
        if delay:
            await asyncio.sleep(delay)
        table = FUNCTION_TABLE.get(function_code)
        if table is None:
            return ExcCodes.ILLEGAL_FUNCTION
        if unit == UNIT_SYNTHETIC:
            if table in ("coil", "discrete"):
                return ExcCodes.ILLEGAL_ADDRESS
            if values is not None:
                return ExcCodes.ILLEGAL_ADDRESS
            tick = self._synthetic_tick()
            for offset in range(address - start, address - start + count):
                registers[offset] = synthetic_register(start + offset, tick)
            return None
        mapped = REGISTER_MAP.get(unit, {}).get(table, ())
        if not mapped:
            return ExcCodes.ILLEGAL_ADDRESS
        if values is not None:
            result = self._write(table, mapped, address, values)
            if result is not None:
                return result
        view = self.faults.apply("modbus", self.plant.snapshot())
        if table in ("coil", "discrete"):
            word = 0
            for reg in mapped:
                if view.get(reg.path):
                    word |= 1 << reg.address
            registers[0 - start] = word
            return None
        for reg in mapped:
            words = _safe_encode(reg, view.get(reg.path, 0))
            for i, word in enumerate(words):
                registers[reg.address + i - start] = word
        return None

    def _write(
        self,
        table: Table,
        mapped: tuple[Register, ...],
        address: int,
        values: list[int] | list[bool],
    ) -> ExcCodes | None:
        if table in ("coil", "discrete"):
            if table == "discrete":
                return ExcCodes.ILLEGAL_FUNCTION
            changes: dict[str, Any] = {}
            for i, bit in enumerate(values):
                reg = next((r for r in mapped if r.address == address + i), None)
                if reg is None or not reg.writable:
                    return ExcCodes.ILLEGAL_ADDRESS
                changes[reg.path.split(".", 1)[1]] = bool(bit)
            return self._apply(changes)
        written = {address + i: int(v) for i, v in enumerate(values)}
        touched = [
            reg for reg in mapped if any(reg.address <= a < reg.address + reg.size for a in written)
        ]
        covered = {a for reg in touched for a in range(reg.address, reg.address + reg.size)}
        if set(written) - covered or any(not reg.writable for reg in touched):
            return ExcCodes.ILLEGAL_ADDRESS
        current = self.plant.snapshot()
        changes = {}
        for reg in touched:
            words = encode(reg, current[reg.path])
            words = [written.get(reg.address + i, w) for i, w in enumerate(words)]
            value = decode(reg, words)
            name = reg.path.split(".", 1)[1]
            if name == "running":
                if value not in (0, 1):
                    return ExcCodes.ILLEGAL_VALUE
                changes[name] = bool(value)
            else:
                low, high = SETPOINT_LIMITS[name]
                if not (math.isfinite(value) and low <= value <= high):
                    return ExcCodes.ILLEGAL_VALUE
                changes[name] = float(value)
        return self._apply(changes)

    def _apply(self, changes: dict[str, Any]) -> ExcCodes | None:
        try:
            self.plant.set_setpoints(**changes)
        except (TypeError, ValueError) as err:
            log.info("Modbus setpoint write %s refused: %s", changes, err)
            return ExcCodes.ILLEGAL_VALUE
        self.writes_applied += 1
        return None

    def _synthetic_tick(self) -> int:
        if self.faults.is_frozen("modbus"):
            if self._synthetic_tick_frozen is None:
                self._synthetic_tick_frozen = self._current_tick()
            return self._synthetic_tick_frozen
        self._synthetic_tick_frozen = None
        return self._current_tick()

    def _current_tick(self) -> int:
        return int((time.monotonic() - self._t0) * self.config.synthetic_rate_hz)


def _safe_encode(reg: Register, value: Value) -> list[int]:
    try:
        return encode(reg, value)
    except (TypeError, ValueError, OverflowError):
        return [0xFFFF] * reg.size


def _bit_block() -> list[SimData]:
    return [SimData(0, values=[False] * 16, datatype=DataType.BITS)]


def _register_block(mapped: tuple[Register, ...]) -> list[SimData]:
    if not mapped:
        return [SimData(0, count=1, datatype=DataType.REGISTERS, readonly=True)]
    return [
        SimData(reg.address, count=reg.size, datatype=DataType.REGISTERS, readonly=not reg.writable)
        for reg in sorted(mapped, key=lambda r: r.address)
    ]


def describe_map() -> list[dict[str, Any]]:
    """The register map as rows (unit, table, address, encoding, path, unit of measure, rw)."""
    rows = []
    for reg in REGISTERS:
        tag = TAGS[reg.path]
        rows.append(
            {
                "unit": reg.unit,
                "table": reg.table,
                "address": reg.address,
                "count": reg.size,
                "encoding": reg.encoding,
                "path": reg.path,
                "unit_of_measure": tag.unit,
                "writable": reg.writable,
            }
        )
    return rows
