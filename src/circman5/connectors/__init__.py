"""Protocol connectors (OPC UA, MQTT, Modbus) and the shared Sample/Connector contract.

Importing this package loads no protocol library: ``asyncua``, ``paho`` and ``pymodbus`` are
imported by the connector modules (``circman5.connectors.opcua.client``, ...) only, and
:func:`create_connector` imports the one it needs.
"""

from circman5.connectors.base import BaseConnector, Connector
from circman5.connectors.config import ConnectorList, ConnectorSettings, load_connectors
from circman5.connectors.factory import create_connector, create_connectors
from circman5.connectors.status import ConnectorStatus
from circman5.reporting import LoggingProblemReporter, ProblemReporter
from circman5.samples import Quality, Sample, SampleValue, make_sample

__all__ = [
    "BaseConnector",
    "Connector",
    "ConnectorList",
    "ConnectorSettings",
    "ConnectorStatus",
    "LoggingProblemReporter",
    "ProblemReporter",
    "Quality",
    "Sample",
    "SampleValue",
    "create_connector",
    "create_connectors",
    "load_connectors",
    "make_sample",
]
