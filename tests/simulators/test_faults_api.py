"""The Faults object on its own: switching, scoping and the command form."""

from __future__ import annotations

import pytest

from simulators.faults import Faults, modbus_exception_code

VALUES = {"production_line.temperature": 22.5, "environment.humidity": 45.0}


def test_overrides_are_scoped_and_switch_off() -> None:
    faults = Faults()
    faults.stuck_at("production_line.temperature", "30.5", servers="modbus,opcua")
    assert faults.apply("modbus", VALUES)["production_line.temperature"] == 30.5
    assert faults.apply("mqtt", VALUES)["production_line.temperature"] == 22.5
    faults.spike("environment.humidity")
    assert faults.apply("mqtt", VALUES)["environment.humidity"] == 150.0
    faults.clear_all()
    assert faults.apply("opcua", VALUES) == VALUES
    assert faults.describe()["stuck"] == {} and faults.describe()["spikes"] == {}


def test_freeze_keeps_the_last_values_per_server() -> None:
    faults = Faults()
    faults.apply("opcua", VALUES)
    faults.freeze(["opcua"])
    moved = {**VALUES, "production_line.temperature": 25.0}
    assert faults.apply("opcua", moved) == VALUES
    assert faults.apply("modbus", moved) == moved
    faults.unfreeze()
    assert faults.apply("opcua", moved) == moved


def test_validation_and_commands() -> None:
    faults = Faults()
    assert modbus_exception_code("SLAVE_DEVICE_BUSY") == 6
    assert modbus_exception_code("2") == 2
    for bad in ("NOPE", 9, 300):
        with pytest.raises(ValueError):
            modbus_exception_code(bad)
    with pytest.raises(ValueError, match="unknown server"):
        faults.freeze("plc")
    with pytest.raises(ValueError, match="no default spike"):
        faults.spike("production_line.status")
    with pytest.raises(ValueError):
        faults.mqtt_malformed("xml")
    with pytest.raises(ValueError):
        faults.set_delay(-1.0)
    faults.command({"cmd": "delay", "seconds": 0.5, "servers": ["modbus"]})
    faults.command({"cmd": "modbus_exception", "unit": 3, "code": "ILLEGAL_ADDRESS"})
    faults.command({"cmd": "mqtt_malformed", "kind": "nan"})
    faults.command({"cmd": "quality", "path": "production_line.temperature"})
    assert faults.delay("modbus") == 0.5 and faults.delay("opcua") == 0.0
    assert faults.modbus_exception_for(3) == 2
    assert faults.malformed == "nan"
    assert faults.quality("production_line.temperature") == "bad"
    with pytest.raises(ValueError, match="unknown fault command"):
        faults.command({"cmd": "explode"})
    faults.command({"cmd": "clear_all"})
    assert faults.describe() == {
        "frozen": [],
        "stuck": {},
        "spikes": {},
        "quality": {},
        "delay": {},
        "modbus_exceptions": {},
        "mqtt_malformed": None,
    }
