"""The one settings shape of a paho client: broker, identity, TLS, credentials, will, session.

Every part that speaks MQTT (the MQTT connector, the Sparkplug B host and edge node, the events
output, the site view) keeps its own pydantic settings model for its TOML section and turns it
into a :class:`LinkSettings` with :meth:`LinkSettings.of`; :func:`circman5.mqtt_link.new_client`
builds the paho client from it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Protocol

from pydantic import SecretStr

__all__ = ["BrokerOptions", "CleanStart", "LinkSettings", "TlsFiles", "TlsOptions", "Will"]

Protocol_ = Literal["3.1.1", "5"]
#: ``"first"``: a clean start on the first connection only, a resumed session on reconnects
#: (paho's MQTT 5 default); with MQTT 3.1.1 it is a clean session every time.
CleanStart = bool | Literal["first"]


class TlsFiles(Protocol):
    """What a TLS settings model provides (``key_password``/``check_hostname`` are optional)."""

    @property
    def ca_file(self) -> Path | None: ...
    @property
    def cert_file(self) -> Path | None: ...
    @property
    def key_file(self) -> Path | None: ...


class BrokerOptions(Protocol):
    """The broker options of an MQTT-speaking settings model."""

    @property
    def effective_client_id(self) -> str: ...
    @property
    def keepalive_s(self) -> int: ...
    @property
    def host(self) -> str: ...
    @property
    def port(self) -> int: ...
    @property
    def username(self) -> str | None: ...
    @property
    def password(self) -> SecretStr | None: ...
    @property
    def tls(self) -> TlsFiles | None: ...


@dataclass(frozen=True, slots=True)
class TlsOptions:
    """TLS to the broker (PEM files): ``ca_file`` to verify it, a client certificate and key."""

    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None
    key_password: SecretStr | None = None
    check_hostname: bool = True

    @classmethod
    def of(cls, tls: TlsFiles) -> TlsOptions:
        password = getattr(tls, "key_password", None)
        return cls(
            ca_file=tls.ca_file,
            cert_file=tls.cert_file,
            key_file=tls.key_file,
            key_password=password if isinstance(password, SecretStr) else None,
            check_hostname=bool(getattr(tls, "check_hostname", True)),
        )


@dataclass(frozen=True, slots=True)
class Will:
    """The last will: published by the broker when the connection dies without a DISCONNECT.

    ``content_type``: with MQTT 5 the will carries it and the UTF-8 payload format indicator.
    """

    topic: str
    payload: bytes
    qos: int = 1
    retain: bool = False
    content_type: str | None = None


@dataclass(frozen=True, slots=True)
class LinkSettings:
    """One paho client's settings (see the module docstring).

    ``clean_start``: see :data:`CleanStart`. ``section`` names the TOML section the settings
    came from, for a :class:`ConfigError` when the TLS files cannot be loaded.
    ``session_expiry_s`` is sent with MQTT 5 only. ``reconnect_min_s``/``reconnect_max_s``:
    paho's own reconnect delay (doubling from the one to the other), for the users that let paho
    reconnect.
    """

    host: str
    port: int
    client_id: str
    section: str
    protocol: Protocol_ = "3.1.1"
    keepalive_s: int = 30
    username: str | None = None
    password: SecretStr | None = None
    tls: TlsOptions | None = None
    clean_start: CleanStart = True
    session_expiry_s: int | None = None
    reconnect_min_s: float = 0.5
    reconnect_max_s: float = 30.0
    will: Will | None = None

    @classmethod
    def of(
        cls,
        options: BrokerOptions,
        *,
        section: str,
        reconnect_s: tuple[float, float],
        protocol: Protocol_ = "3.1.1",
        clean_start: CleanStart = True,
        session_expiry_s: int | None = None,
        will: Will | None = None,
    ) -> LinkSettings:
        """The link settings of a settings model: its broker, client id, keepalive, credentials
        and TLS; ``reconnect_s``: its (first, longest) reconnect delay."""
        return cls(
            host=options.host,
            port=options.port,
            client_id=options.effective_client_id,
            section=section,
            protocol=protocol,
            keepalive_s=options.keepalive_s,
            username=options.username,
            password=options.password,
            tls=TlsOptions.of(options.tls) if options.tls is not None else None,
            clean_start=clean_start,
            session_expiry_s=session_expiry_s,
            reconnect_min_s=reconnect_s[0],
            reconnect_max_s=reconnect_s[1],
            will=will,
        )
