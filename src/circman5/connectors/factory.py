"""Build a connector from its settings: the one place that maps ``type`` to a class.

Adding a protocol means one folder ``connectors/<type>/`` (the connector, its settings model in
``config.py`` built on :mod:`circman5.connectors.config_base`, a ``README.md`` listing every
option and a ``sample.toml``: ``tests/ingestion/test_connector_folders.py`` checks all four), the
model added to the ``ConnectorSettings`` union in :mod:`circman5.connectors.config`, and one line
here.
The protocol library is imported only when a connector of that type is built.
"""

from __future__ import annotations

import importlib
from typing import Any

from circman5.connectors.base import BaseConnector
from circman5.connectors.config import AnyConnectorSettings
from circman5.errors import ConfigError
from circman5.reporting import ProblemReporter

CONNECTOR_CLASSES: dict[str, str] = {
    "opcua": "circman5.connectors.opcua.client:OpcUaConnector",
    "mqtt": "circman5.connectors.mqtt.client:MqttConnector",
    "modbus": "circman5.connectors.modbus.client:ModbusConnector",
    "sparkplug": "circman5.connectors.sparkplug.client:SparkplugConnector",
}


def create_connector(
    settings: AnyConnectorSettings, reporter: ProblemReporter | None = None
) -> BaseConnector:
    """A connector for ``settings`` (not yet entered: use ``async with``)."""
    target = CONNECTOR_CLASSES.get(settings.type)
    if target is None:
        raise ConfigError("connectors", settings.name, f"no connector for type {settings.type!r}")
    module_name, _, class_name = target.partition(":")
    cls: Any = getattr(importlib.import_module(module_name), class_name)
    connector: BaseConnector = cls(settings, reporter)
    return connector


def create_connectors(
    settings: list[AnyConnectorSettings], reporter: ProblemReporter | None = None
) -> list[BaseConnector]:
    """Connectors for every enabled entry of the tag map."""
    return [create_connector(entry, reporter) for entry in settings if entry.enabled]
