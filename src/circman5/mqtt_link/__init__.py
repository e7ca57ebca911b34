"""The one paho link every MQTT-speaking part builds on (see docs/architecture.md).

:class:`LinkSettings` (one settings shape), :func:`new_client` (the client factory),
:class:`BrokerLink` (the thread-to-loop hand-off, the connection state with an event to wait on,
paho's reconnect, logging and problem reporting). The MQTT connector, the Sparkplug B host and
edge node, the events output and the site view keep their own job on top of it. Imports paho and
the shared contracts only, so connectors and sinks may both use it.
"""

from circman5.mqtt_link.client import connect_async, new_client, publish_properties, set_will
from circman5.mqtt_link.link import BrokerLink, LinkDown, describe_error, drain_soon
from circman5.mqtt_link.settings import BrokerOptions, LinkSettings, TlsFiles, TlsOptions, Will

__all__ = [
    "BrokerLink",
    "BrokerOptions",
    "LinkDown",
    "LinkSettings",
    "TlsFiles",
    "TlsOptions",
    "Will",
    "connect_async",
    "describe_error",
    "drain_soon",
    "new_client",
    "publish_properties",
    "set_will",
]
