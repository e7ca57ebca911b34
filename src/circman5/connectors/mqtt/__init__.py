"""MQTT connector (paho-mqtt 2.x). ``paho`` is imported only by :mod:`.client`."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from circman5.connectors.mqtt.client import MqttConnector

__all__ = ["MqttConnector"]


def __getattr__(name: str) -> object:
    if name == "MqttConnector":
        from circman5.connectors.mqtt.client import MqttConnector

        return MqttConnector
    raise AttributeError(name)
