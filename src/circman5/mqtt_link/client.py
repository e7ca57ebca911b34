"""The paho client factory: one place that turns :class:`LinkSettings` into a paho 2.x client."""

from __future__ import annotations

import ssl

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from circman5.errors import ConfigError
from circman5.mqtt_link.settings import LinkSettings, TlsOptions, Will

__all__ = ["connect_async", "new_client", "publish_properties", "set_will"]


def publish_properties(
    content_type: str, expiry_s: int | None = None, packet: int = PacketTypes.PUBLISH
) -> Properties:
    """MQTT 5 properties of a UTF-8 message: content type, payload format 1, optional expiry."""
    props = Properties(packet)  # type: ignore[no-untyped-call]
    props.ContentType = content_type
    props.PayloadFormatIndicator = 1
    if expiry_s is not None:
        props.MessageExpiryInterval = expiry_s
    return props


def new_client(
    settings: LinkSettings,
    *,
    client_class: type[paho.Client] = paho.Client,
    manual_ack: bool = False,
    reconnect_on_failure: bool = True,
) -> paho.Client:
    """A paho 2.x client (callback API 2) with identity, credentials, TLS, will and delays set.

    ``client_class``, ``manual_ack`` and ``reconnect_on_failure`` for users that need more of
    paho than its defaults (the MQTT connector acknowledges after durable, reconnects itself).
    TLS files that cannot be loaded raise :class:`ConfigError` naming ``settings.section``.
    """
    v5 = settings.protocol == "5"
    client = client_class(
        CallbackAPIVersion.VERSION2,
        client_id=settings.client_id,
        clean_session=None if v5 else settings.clean_start is not False,
        protocol=paho.MQTTv5 if v5 else paho.MQTTv311,
        reconnect_on_failure=reconnect_on_failure,
        manual_ack=manual_ack,
    )
    if settings.username is not None:
        password = settings.password
        client.username_pw_set(
            settings.username, password.get_secret_value() if password is not None else None
        )
    if settings.tls is not None:
        _set_tls(client, settings.tls, settings.section)
    if settings.will is not None:
        set_will(client, settings.will)
    # paho works with fractions of a second here although its hints say int
    client.reconnect_delay_set(
        settings.reconnect_min_s,  # type: ignore[arg-type]
        settings.reconnect_max_s,  # type: ignore[arg-type]
    )
    return client


def _set_tls(client: paho.Client, tls: TlsOptions, section: str) -> None:
    try:
        client.tls_set(
            ca_certs=str(tls.ca_file) if tls.ca_file else None,
            certfile=str(tls.cert_file) if tls.cert_file else None,
            keyfile=str(tls.key_file) if tls.key_file else None,
            keyfile_password=(tls.key_password.get_secret_value() if tls.key_password else None),
            cert_reqs=ssl.CERT_REQUIRED,
        )
    except (OSError, ssl.SSLError) as err:
        raise ConfigError(section, "tls", str(err)) from err
    client.tls_insecure_set(not tls.check_hostname)


def set_will(client: paho.Client, will: Will) -> None:
    """Set (or replace, for the next connection) the client's last will."""
    properties = None
    if will.content_type is not None and client.protocol == paho.MQTTv5:
        properties = publish_properties(will.content_type, packet=PacketTypes.WILLMESSAGE)
    client.will_set(
        will.topic, will.payload, qos=will.qos, retain=will.retain, properties=properties
    )


def connect_async(client: paho.Client, settings: LinkSettings) -> None:
    """Set the broker to connect to (paho's thread or ``reconnect()`` does the connecting);
    MQTT 5 sends ``clean_start`` and the session expiry with the CONNECT."""
    if settings.protocol == "5":
        properties = None
        if settings.session_expiry_s is not None:
            properties = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
            properties.SessionExpiryInterval = settings.session_expiry_s
        clean_start = settings.clean_start
        client.connect_async(
            settings.host,
            settings.port,
            settings.keepalive_s,
            clean_start=paho.MQTT_CLEAN_START_FIRST_ONLY if clean_start == "first" else clean_start,
            properties=properties,
        )
    else:
        client.connect_async(settings.host, settings.port, settings.keepalive_s)
