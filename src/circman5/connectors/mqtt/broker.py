"""A configured paho client for a broker: credentials, TLS and the reconnect backoff.

Shared by the connectors that speak MQTT (the plain MQTT connector and the Sparkplug B host), so
that authentication, TLS and reconnect work the same way for both.
"""

from __future__ import annotations

import math
import ssl
from typing import Literal, Protocol

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion
from pydantic import SecretStr

from circman5.connectors.mqtt.paho_properties import install as install_shared_table_properties

__all__ = ["BrokerSettings", "TlsSettings", "new_client"]


class TlsSettings(Protocol):
    """What :class:`~circman5.connectors.mqtt.config.MqttTls` provides."""

    @property
    def ca_file(self) -> object: ...
    @property
    def cert_file(self) -> object: ...
    @property
    def key_file(self) -> object: ...
    @property
    def key_password(self) -> SecretStr | None: ...
    @property
    def check_hostname(self) -> bool: ...


class BrokerSettings(Protocol):
    """The broker options every MQTT-speaking connector's settings have."""

    @property
    def username(self) -> str | None: ...
    @property
    def password(self) -> SecretStr | None: ...
    @property
    def tls(self) -> TlsSettings | None: ...
    @property
    def reconnect_initial_s(self) -> float: ...
    @property
    def reconnect_max_s(self) -> float: ...


def new_client(
    settings: BrokerSettings,
    *,
    client_id: str,
    clean_start: bool,
    protocol: Literal["3.1.1", "5"] = "3.1.1",
    client_class: type[paho.Client] = paho.Client,
    manual_ack: bool = False,
    reconnect_on_failure: bool = True,
) -> paho.Client:
    """A paho 2.x client (callback API 2) with credentials, TLS and reconnect delays set.

    ``client_class``, ``manual_ack`` and ``reconnect_on_failure`` for connectors that need more
    of paho than its defaults (the MQTT connector acknowledges after durable, reconnects itself).
    """
    v5 = protocol == "5"
    if v5:
        install_shared_table_properties()
    client = client_class(
        CallbackAPIVersion.VERSION2,
        client_id=client_id,
        clean_session=None if v5 else clean_start,
        protocol=paho.MQTTv5 if v5 else paho.MQTTv311,
        reconnect_on_failure=reconnect_on_failure,
        manual_ack=manual_ack,
    )
    if settings.username is not None:
        password = settings.password
        client.username_pw_set(
            settings.username, password.get_secret_value() if password is not None else None
        )
    tls = settings.tls
    if tls is not None:
        client.tls_set(
            ca_certs=str(tls.ca_file) if tls.ca_file else None,
            certfile=str(tls.cert_file) if tls.cert_file else None,
            keyfile=str(tls.key_file) if tls.key_file else None,
            keyfile_password=(tls.key_password.get_secret_value() if tls.key_password else None),
            cert_reqs=ssl.CERT_REQUIRED,
        )
        client.tls_insecure_set(not tls.check_hostname)
    client.reconnect_delay_set(
        max(1, math.ceil(settings.reconnect_initial_s)),
        max(1, math.ceil(settings.reconnect_max_s)),
    )
    return client
