"""Modbus connector (pymodbus 3.x). ``pymodbus`` is imported only by :mod:`.client`."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from circman5.connectors.modbus.client import ModbusConnector

__all__ = ["ModbusConnector"]


def __getattr__(name: str) -> object:
    if name == "ModbusConnector":
        from circman5.connectors.modbus.client import ModbusConnector

        return ModbusConnector
    raise AttributeError(name)
