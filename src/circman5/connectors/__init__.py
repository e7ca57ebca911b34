"""Protocol connectors (OPC UA, MQTT, Modbus) and the shared Sample/Connector contract."""

from circman5.connectors.sample import Quality, Sample, SampleValue

__all__ = ["Quality", "Sample", "SampleValue"]
