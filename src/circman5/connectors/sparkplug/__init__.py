"""Sparkplug B host connector (paho-mqtt 2.x + the official payload definition compiled with
``protobuf``). ``paho`` and ``protobuf`` are imported only by :mod:`.client` and :mod:`.payload`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from circman5.connectors.sparkplug.client import SparkplugConnector

__all__ = ["SparkplugConnector"]


def __getattr__(name: str) -> object:
    if name == "SparkplugConnector":
        from circman5.connectors.sparkplug.client import SparkplugConnector

        return SparkplugConnector
    raise AttributeError(name)
