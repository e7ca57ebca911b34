"""The tag catalog: every value the plant model exposes, keyed by its twin path.

All three device servers publish these values under the same twin path, so a reading of
``production_line.temperature`` over OPC UA, Modbus and MQTT agrees. Each tag carries its
engineering unit (display text and UNECE code, as OPC UA ``EUInformation`` wants it), its
physical range (OPC UA ``EURange``) and the out-of-range value that the ``spike`` fault uses.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Value = float | int | bool | str
"""A tag value: numbers, booleans (alarms, run command) and strings (status, batch id)."""

TagKind = Literal["float", "int", "bool", "str"]


@dataclass(frozen=True, slots=True)
class Tag:
    """One plant value: twin path, type, unit and physical range."""

    path: str
    kind: TagKind
    description: str
    unit: str = ""
    """Display unit (``°C``, ``kW``, ...); empty for dimensionless text/boolean tags."""
    unece: str = ""
    """UNECE Recommendation 20 common code of the unit (``CEL``, ``KWT``, ...)."""
    low: float | None = None
    high: float | None = None
    spike: Value | None = None
    """Default out-of-range value for the ``spike`` fault."""
    setpoint: bool = False
    """Writable over OPC UA and Modbus; a write changes the plant."""


def _f(
    path: str,
    description: str,
    unit: str,
    unece: str,
    low: float,
    high: float,
    spike: float,
    setpoint: bool = False,
) -> Tag:
    return Tag(path, "float", description, unit, unece, low, high, spike, setpoint)


def _i(path: str, description: str, unit: str, unece: str, high: float) -> Tag:
    return Tag(path, "int", description, unit, unece, 0.0, high, int(high))


def _b(path: str, description: str, setpoint: bool = False) -> Tag:
    return Tag(path, "bool", description, setpoint=setpoint)


def _s(path: str, description: str) -> Tag:
    return Tag(path, "str", description)


TAGS: dict[str, Tag] = {
    tag.path: tag
    for tag in (
        # production line (spec 3.1) ---------------------------------------------------------
        _s("production_line.status", "Line status: 'running' or 'idle'"),
        _f(
            "production_line.temperature",
            "Process temperature at the laminator",
            "°C",
            "CEL",
            -20.0,
            80.0,
            999.9,
        ),
        _f(
            "production_line.energy_consumption",
            "Electrical power drawn by the line (active power)",
            "kW",
            "KWT",
            0.0,
            400.0,
            9999.0,
        ),
        _f(
            "production_line.production_rate",
            "Modules produced per minute",
            "1/min",
            "C94",
            0.0,
            30.0,
            -5.0,
        ),
        _f("production_line.efficiency", "Process efficiency", "1", "C62", 0.0, 1.0, 1.5),
        _f(
            "production_line.defect_rate",
            "Fraction of defective modules",
            "1",
            "C62",
            0.0,
            1.0,
            -0.5,
        ),
        _i(
            "production_line.modules_produced",
            "Modules produced since start",
            "pcs",
            "C62",
            2**32 - 1,
        ),
        # setpoints -------------------------------------------------------------------------
        _f(
            "production_line.target_temperature",
            "Setpoint: target process temperature",
            "°C",
            "CEL",
            15.0,
            35.0,
            999.9,
            setpoint=True,
        ),
        _f(
            "production_line.cycle_time",
            "Setpoint: laminator cycle time (4 modules per cycle)",
            "s",
            "SEC",
            20.0,
            60.0,
            -1.0,
            setpoint=True,
        ),
        _b("production_line.running", "Setpoint: run command (true = run, false = stop)", True),
        # materials ---------------------------------------------------------------------------
        _f(
            "materials.silicon_wafer.inventory",
            "Silicon wafer stock",
            "kg",
            "KGM",
            0.0,
            5000.0,
            -100.0,
        ),
        _f(
            "materials.silicon_wafer.quality",
            "Silicon wafer lot quality",
            "1",
            "C62",
            0.0,
            1.0,
            2.0,
        ),
        _f(
            "materials.solar_glass.inventory",
            "Solar glass stock",
            "kg",
            "KGM",
            0.0,
            5000.0,
            -100.0,
        ),
        _f("materials.solar_glass.quality", "Solar glass lot quality", "1", "C62", 0.0, 1.0, 2.0),
        # environment -------------------------------------------------------------------------
        _f("environment.temperature", "Hall air temperature", "°C", "CEL", -20.0, 60.0, 999.9),
        _f("environment.humidity", "Hall relative humidity", "%", "P1", 0.0, 100.0, 150.0),
        # energy meter ------------------------------------------------------------------------
        _f(
            "energy_meter.active_power",
            "Meter: active power (same as production_line.energy_consumption)",
            "kW",
            "KWT",
            0.0,
            400.0,
            9999.0,
        ),
        _f(
            "energy_meter.energy_total",
            "Meter: active energy imported since start",
            "kWh",
            "KWH",
            0.0,
            1.0e9,
            -1.0,
        ),
        _f("energy_meter.voltage", "Meter: line-to-line voltage", "V", "VLT", 0.0, 500.0, 9999.0),
        _f("energy_meter.current", "Meter: phase current (average)", "A", "AMP", 0.0, 1000.0, -1.0),
        _f("energy_meter.power_factor", "Meter: power factor", "1", "C62", 0.0, 1.0, 1.7),
        _f("energy_meter.frequency", "Meter: grid frequency", "Hz", "HTZ", 45.0, 65.0, 0.0),
        # batch -------------------------------------------------------------------------------
        _s("batch.id", "Current batch id ('' between batches)"),
        _i("batch.modules_produced", "Modules produced in the current batch", "pcs", "C62", 65535),
        _i("batch.size", "Planned modules per batch", "pcs", "C62", 65535),
        # alarms ------------------------------------------------------------------------------
        _b("alarms.temperature", "production_line.temperature outside 18..27 °C"),
        _b("alarms.humidity", "environment.humidity outside 30..70 %"),
        _b("alarms.silicon_wafer_low", "silicon wafer stock below its reorder level"),
        _b("alarms.solar_glass_low", "solar glass stock below its reorder level"),
        _b("alarms.defect_rate", "production_line.defect_rate above 0.1"),
    )
}

SETPOINTS: tuple[str, ...] = tuple(path for path, tag in TAGS.items() if tag.setpoint)


def unece_unit_id(code: str) -> int:
    """The OPC UA ``EUInformation.UnitId`` of a UNECE common code (OPC 10000-8, 5.6.3)."""
    unit_id = 0
    for char in code.upper():
        unit_id = (unit_id << 8) | ord(char)
    return unit_id


def coerce(path: str, value: object) -> Value:
    """Convert ``value`` to the tag's type (for fault values given on a command line)."""
    tag = TAGS.get(path)
    kind = tag.kind if tag is not None else "float"
    if kind == "bool":
        if isinstance(value, str):
            return value.strip().lower() in ("1", "true", "on", "yes")
        return bool(value)
    if kind == "str":
        return str(value)
    if isinstance(value, bool | int | float):
        return int(value) if kind == "int" else float(value)
    if kind == "int":
        return int(float(str(value)))
    return float(str(value))
