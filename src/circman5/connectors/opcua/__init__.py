"""OPC UA connector (asyncua client). ``asyncua`` is imported only by :mod:`.client`."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from circman5.connectors.opcua.client import OpcUaConnector

__all__ = ["OpcUaConnector"]


def __getattr__(name: str) -> Any:
    if name == "OpcUaConnector":
        from circman5.connectors.opcua.client import OpcUaConnector

        return OpcUaConnector
    raise AttributeError(name)
