"""OPC UA connector (asyncua client), one module per job: :mod:`.client` (the connection loop
and the notification hot path), :mod:`.session`, :mod:`.subscription`, :mod:`.discovery`,
:mod:`.writes`, :mod:`.tags`, :mod:`.ua_nodes`, :mod:`.refusals`, :mod:`.certificates`,
:mod:`.expiry`. Importing this package does not import asyncua (``OpcUaConnector`` is loaded on
first use)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from circman5.connectors.opcua.client import OpcUaConnector

__all__ = ["OpcUaConnector"]


def __getattr__(name: str) -> object:
    if name == "OpcUaConnector":
        from circman5.connectors.opcua.client import OpcUaConnector

        return OpcUaConnector
    raise AttributeError(name)
