"""The tag map: connector settings in the service's TOML config (pydantic, ``extra="forbid"``).

Each ``[[connectors]]`` table has a ``type`` (``"opcua"``, ``"mqtt"``, ``"modbus"`` or
``"sparkplug"``) that picks its model, and a list of ``[[connectors.tags]]``: protocol address,
twin path, data type, scale, offset, unit, deadband. Everything is checked at load time; an
error names the entry, e.g. ``connectors[0].tags[3].address: 'ns=2;s=X' uses a namespace index
...``. Twin paths must be unique across all connectors. See ``docs/tag_mapping.md`` for worked
examples.

For the service settings use :data:`ConnectorList`::

    class Settings(BaseSettings):
        connectors: ConnectorList = []

(:data:`ConnectorSettings` is the discriminated union of one entry.) Standalone:
:func:`load_connectors` reads a TOML document with ``[[connectors]]`` tables.
"""

from __future__ import annotations

import itertools
import math
import re
import tomllib
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any, Literal, TypeAlias

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    ValidationInfo,
    WrapValidator,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from circman5.connectors.modbus.codec import DataType as ModbusDataType
from circman5.connectors.modbus.codec import register_count
from circman5.connectors.modbus.plan import (
    BIT_TABLES,
    MAX_BITS,
    MAX_REGISTERS,
    WRITABLE_TABLES,
    parse_address,
)
from circman5.connectors.mqtt.topics import (
    TopicPattern,
    validate_topic_filter,
    validate_twin_path,
)
from circman5.connectors.opcua.nodeid import parse_node_address
from circman5.connectors.timestamps import DEFAULT_MAX_FUTURE_S, TimestampPolicy
from circman5.errors import ConfigError

__all__ = [
    "CONNECTOR_TYPES",
    "ConnectorList",
    "ConnectorSettings",
    "ConnectorsFile",
    "ModbusConnectorSettings",
    "ModbusTag",
    "MqttConnectorSettings",
    "MqttTag",
    "MqttTls",
    "OpcUaConnectorSettings",
    "OpcUaDiscovery",
    "OpcUaSecurity",
    "OpcUaTag",
    "SparkplugConnectorSettings",
    "load_connectors",
]

CONNECTOR_TYPES: tuple[str, ...] = ("opcua", "mqtt", "modbus", "sparkplug")

Finite = Annotated[float, Field(allow_inf_nan=False)]
NonNegative = Annotated[float, Field(ge=0, allow_inf_nan=False)]
Positive = Annotated[float, Field(gt=0, allow_inf_nan=False)]
Name = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")]
Qos = Literal[0, 1, 2]


def _located(loc: tuple[str | int, ...], message: str) -> PydanticCustomError:
    """An error whose message starts with a location below the model being validated."""
    return PydanticCustomError(
        "connector_config", "{loc}: {reason}", {"loc": _key(loc), "reason": message}
    )


def _key(loc: Sequence[str | int]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + part
    return out


def _check_path(path: str) -> str:
    validate_twin_path(path)
    return path


class TagBase(BaseModel):
    """What every tag has: where it is read, where it goes in the twin, how it is scaled.

    ``value = raw * scale + offset``; ``deadband``: the change a new value needs to be passed on
    (absolute, engineering units; 0 = every value); ``stale_timeout_s``: seconds of silence
    after which the twin marks the path stale (default: the connector's rule; 0 = never by
    silence); ``writable``: allow :meth:`Connector.write` to this tag.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    address: str
    path: str
    scale: Finite = 1.0
    offset: Finite = 0.0
    unit: str = ""
    deadband: NonNegative = 0.0
    stale_timeout_s: NonNegative | None = None
    writable: bool = False

    @field_validator("scale")
    @classmethod
    def _scale(cls, value: float) -> float:
        if value == 0:
            raise ValueError("scale must not be 0")
        return value


# -- OPC UA ---------------------------------------------------------------------------------------


class OpcUaTag(TagBase):
    """A node to monitor. ``address``: ``nsu=<namespace uri>;s=<id>`` (or ``i=``, ``g=``, ``b=``).

    ``data_type``: ``auto`` keeps the server's type; otherwise the value is converted on read.
    ``deadband`` is a server-side data-change filter: ``absolute`` (engineering units, before
    scaling: the server compares raw values) or ``percent`` (of the node's EURange).
    """

    data_type: Literal["auto", "float", "int", "bool", "str"] = "auto"
    deadband_type: Literal["absolute", "percent"] = "absolute"
    sampling_interval_ms: NonNegative | None = None
    queue_size: Annotated[int, Field(ge=0, le=100_000)] | None = None
    #: A source timestamp outside the connector's window: ``replace`` it by the receive time
    #: (the value is kept) or ``reject`` the sample; both are counted and reported.
    timestamp_outside_window: TimestampPolicy = "replace"

    @field_validator("path")
    @classmethod
    def _path(cls, value: str) -> str:
        return _check_path(value)

    @model_validator(mode="after")
    def _percent(self) -> OpcUaTag:
        if self.deadband_type == "percent" and self.deadband > 100:
            raise ValueError("a percent deadband must be within 0..100")
        return self


class OpcUaDiscovery(BaseModel):
    """Browse-based discovery: every Variable under ``root`` whose browse path matches ``pattern``.

    ``pattern`` is ``/``-separated browse names below ``root`` with ``*`` (any characters in one
    name) and ``**`` (any number of levels), e.g. ``Line1/Synthetic/*/Tag*``. ``path`` is the twin
    path template: ``{name}`` is the node's browse name, ``{1}``, ``{2}``, ... the parts matched by
    the ``*`` wildcards, all in snake_case (``SiliconWafer`` -> ``silicon_wafer``).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    root: str = "i=85"
    pattern: Annotated[str, Field(min_length=1)]
    path: str
    data_type: Literal["auto", "float", "int", "bool", "str"] = "auto"
    scale: Finite = 1.0
    offset: Finite = 0.0
    unit: str = ""
    deadband: NonNegative = 0.0
    deadband_type: Literal["absolute", "percent"] = "absolute"
    sampling_interval_ms: NonNegative | None = None
    queue_size: Annotated[int, Field(ge=0, le=100_000)] | None = None
    stale_timeout_s: NonNegative | None = None
    writable: bool = False
    timestamp_outside_window: TimestampPolicy = "replace"
    max_depth: Annotated[int, Field(ge=1, le=32)] = 8
    max_nodes: Annotated[int, Field(ge=1, le=1_000_000)] = 100_000

    @field_validator("path")
    @classmethod
    def _template(cls, value: str) -> str:
        placeholders = re.findall(r"\{([^}]*)\}", value)
        for placeholder in placeholders:
            if placeholder != "name" and not placeholder.isdigit():
                raise ValueError(f"unknown placeholder {{{placeholder}}} (use {{name}} or {{1}})")
        validate_twin_path(re.sub(r"\{[^}]*\}", "x", value))
        return value

    @model_validator(mode="after")
    def _wildcards(self) -> OpcUaDiscovery:
        stars = sum(part.count("*") for part in self.pattern.split("/") if part != "**")
        for number in re.findall(r"\{(\d+)\}", self.path):
            if not 1 <= int(number) <= stars:
                raise ValueError(
                    f"path placeholder {{{number}}} but the pattern has {stars} '*' wildcard(s)"
                )
        return self


class OpcUaSecurity(BaseModel):
    """Secure channel and server trust.

    ``policy`` other than ``None`` needs the client ``certificate`` and ``private_key`` and a way
    to trust the server: ``server_certificate`` (pinning: exactly this certificate) or
    ``trust_dir`` (a directory of trusted server/CA certificates, DER or PEM). Accepting any
    server certificate needs ``accept_any_server_certificate = true`` (lab use only).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    policy: Literal["None", "Basic256Sha256", "Aes128_Sha256_RsaOaep", "Aes256_Sha256_RsaPss"] = (
        "None"
    )
    mode: Literal["None", "Sign", "SignAndEncrypt"] = "None"
    certificate: Path | None = None
    private_key: Path | None = None
    private_key_password: SecretStr | None = None
    server_certificate: Path | None = None
    trust_dir: Path | None = None
    accept_any_server_certificate: bool = False
    application_uri: str = "urn:circman5:edge:client"

    @model_validator(mode="after")
    def _consistent(self) -> OpcUaSecurity:
        if self.policy == "None":
            if self.mode != "None":
                raise ValueError(f"mode '{self.mode}' needs a security policy other than None")
            return self
        if self.mode == "None":
            raise ValueError(f"policy '{self.policy}' needs mode 'Sign' or 'SignAndEncrypt'")
        if self.certificate is None or self.private_key is None:
            raise ValueError(f"policy '{self.policy}' needs 'certificate' and 'private_key'")
        if (
            self.server_certificate is None
            and self.trust_dir is None
            and not self.accept_any_server_certificate
        ):
            raise ValueError(
                "the server certificate must be trusted: set 'server_certificate' (pinning) or "
                "'trust_dir' (trust list); 'accept_any_server_certificate = true' is for labs only"
            )
        return self


class OpcUaConnectorSettings(BaseModel):
    """An OPC UA server: one session, one subscription for all its tags."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    type: Literal["opcua"]
    name: Name
    enabled: bool = True
    url: Annotated[str, Field(pattern=r"^opc\.tcp://[^/\s]+(/.*)?$")]
    namespace_uri: str | None = None
    publishing_interval_ms: Positive = 100.0
    sampling_interval_ms: NonNegative = 100.0
    queue_size: Annotated[int, Field(ge=0, le=100_000)] = 1
    keepalive_count: Annotated[int, Field(ge=1, le=1000)] = 10
    lifetime_count: Annotated[int, Field(ge=3, le=100_000)] = 300
    max_notifications_per_publish: Annotated[int, Field(ge=0)] = 0
    monitored_items_batch_size: Annotated[int, Field(ge=1, le=100_000)] = 1000
    request_timeout_s: Positive = 4.0
    session_timeout_s: Positive = 60.0
    watchdog_interval_s: Positive = 1.0
    watchdog_timeout_s: Positive = 3.0
    reconnect_initial_s: Positive = 0.5
    reconnect_max_s: Positive = 30.0
    #: Retry interval while the server is absent (connection refused, no route); ``None``:
    #: back off as for a server that refuses (see docs/tag_mapping.md, "Reconnecting").
    reconnect_absent_s: Annotated[float, Field(gt=0, le=60, allow_inf_nan=False)] | None = 0.5
    #: Source timestamps older than this (seconds before the receive time) are outside the
    #: window (None: the embedded store's retention when it is the output, else 7 days).
    timestamp_max_age_s: Positive | None = None
    #: Source timestamps more than this ahead of the receive time are outside the window.
    timestamp_max_future_s: NonNegative = DEFAULT_MAX_FUTURE_S
    max_buffered_samples: Annotated[int, Field(ge=1)] = 1_000_000
    security: OpcUaSecurity = Field(default_factory=OpcUaSecurity)
    username: str | None = None
    password: SecretStr | None = None
    tags: list[OpcUaTag] = Field(default_factory=list)
    discover: list[OpcUaDiscovery] = Field(default_factory=list)

    @model_validator(mode="after")
    def _addresses(self) -> OpcUaConnectorSettings:
        for index, tag in enumerate(self.tags):
            try:
                parse_node_address(tag.address, self.namespace_uri)
            except ValueError as err:
                raise _located(("tags", index, "address"), str(err)) from err
        for index, rule in enumerate(self.discover):
            try:
                parse_node_address(rule.root, self.namespace_uri)
            except ValueError as err:
                raise _located(("discover", index, "root"), str(err)) from err
        if self.lifetime_count < 3 * self.keepalive_count:
            raise ValueError("lifetime_count must be at least 3 x keepalive_count")
        if (self.username is None) != (self.password is None):
            raise ValueError("set both 'username' and 'password', or neither")
        return self


# -- MQTT -----------------------------------------------------------------------------------------


class MqttTag(TagBase):
    """A topic filter mapped to a twin path (with ``{1}``... for the wildcards' matches).

    ``field``: dotted path into a JSON payload (``value``, ``data.temperature``, ``items.0.v``);
    without it the payload is a plain number (``23.5``) or a JSON scalar. ``timestamp_field``:
    source time in the payload (Unix seconds, milliseconds if > 1e11, or an ISO 8601 string).
    """

    field: str | None = None
    timestamp_field: str | None = None
    #: A ``timestamp_field`` outside the connector's window: ``replace`` it by the receive time
    #: (the value is kept) or ``reject`` the message; both are counted and reported.
    timestamp_outside_window: TimestampPolicy = "replace"
    data_type: Literal["float", "int", "bool", "str"] = "float"
    qos: Qos | None = None

    @model_validator(mode="after")
    def _topic(self) -> MqttTag:
        try:
            validate_topic_filter(self.address)
        except ValueError as err:
            raise _located(("address",), str(err)) from err
        try:
            TopicPattern(self.address, self.path)
        except ValueError as err:
            raise _located(("path",), str(err)) from err
        for name in ("field", "timestamp_field"):
            value = getattr(self, name)
            if value is not None and (not value or any(not p for p in value.split("."))):
                raise _located((name,), f"'{value}' is not a dotted field path")
        if self.data_type in ("str", "bool") and (
            self.scale != 1.0 or self.offset != 0.0 or self.deadband
        ):
            raise ValueError(f"scale, offset and deadband do not apply to {self.data_type} tags")
        return self


class MqttTls(BaseModel):
    """TLS to the broker: ``ca_file`` to verify it; ``cert_file``/``key_file`` for client auth."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None
    key_password: SecretStr | None = None
    check_hostname: bool = True

    @model_validator(mode="after")
    def _pair(self) -> MqttTls:
        if (self.cert_file is None) != (self.key_file is None):
            raise ValueError("set both 'cert_file' and 'key_file', or neither")
        return self


class MqttConnectorSettings(BaseModel):
    """An MQTT broker. The session is persistent by default (fixed ``client_id``,
    ``clean_start = false``), so QoS 1/2 messages sent while the edge box was away are delivered.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    type: Literal["mqtt"]
    name: Name
    enabled: bool = True
    host: Annotated[str, Field(min_length=1)] = "127.0.0.1"
    port: Annotated[int, Field(ge=1, le=65535)] = 1883
    #: 3.1.1 by default: the common denominator of MES gateways, and half the CPU per message
    #: of MQTT 5 in paho; "5" adds session expiry (``session_expiry_s``).
    protocol: Literal["3.1.1", "5"] = "3.1.1"
    client_id: Annotated[str, Field(min_length=1, max_length=128)] | None = None
    clean_start: bool = False
    session_expiry_s: Annotated[int, Field(ge=0, le=2**32 - 1)] = 3600  # MQTT 5 only
    keepalive_s: Annotated[int, Field(ge=1, le=65535)] = 30
    qos: Qos = 1
    username: str | None = None
    password: SecretStr | None = None
    tls: MqttTls | None = None
    reconnect_initial_s: Positive = 0.5
    reconnect_max_s: Positive = 30.0
    #: Retry interval while the server is absent (connection refused, no route); ``None``:
    #: back off as for a server that refuses (see docs/tag_mapping.md, "Reconnecting").
    reconnect_absent_s: Annotated[float, Field(gt=0, le=60, allow_inf_nan=False)] | None = 0.5
    max_payload_bytes: Annotated[int, Field(ge=1, le=256 * 1024 * 1024)] = 65536
    drain_delay_ms: Annotated[float, Field(ge=0, le=1000, allow_inf_nan=False)] = 5.0
    #: Source timestamps older than this (seconds before the receive time) are outside the
    #: window (None: the embedded store's retention when it is the output, else 7 days).
    timestamp_max_age_s: Positive | None = None
    #: Source timestamps more than this ahead of the receive time are outside the window.
    timestamp_max_future_s: NonNegative = DEFAULT_MAX_FUTURE_S
    max_buffered_samples: Annotated[int, Field(ge=1)] = 1_000_000
    #: Most twin paths the wildcard tags may create; messages for further new paths are
    #: counted and dropped (one ``WildcardPathLimit`` event), known paths keep flowing.
    max_wildcard_paths: Annotated[int, Field(ge=1)] = 10_000
    #: When QoS 1/2 messages are acknowledged to the broker: ``durable`` once every sample they
    #: produced is committed to the outbox (or the embedded store), so a crash loses nothing the
    #: broker counted as delivered; ``receipt`` as soon as paho received them (the old way).
    acknowledge: Literal["durable", "receipt"] = "durable"
    #: Ingestion worker processes sharing this connector's subscription (MQTT 5 shared
    #: subscriptions): each decodes and stores its share of the messages and forwards the latest
    #: value per path to the twin. 1: the connector runs in the service process (see
    #: docs/operations.md, "Ingestion workers").
    workers: Annotated[int, Field(ge=1, le=64)] = 1
    #: Subscribe through the shared subscription ``$share/<share_group>/<filter>`` (the broker
    #: gives each message to one member of the group). Workers use ``circman5-<name>`` unless set.
    share_group: Annotated[str, Field(pattern=r"^[^/+#$]+$", max_length=64)] | None = None
    tags: list[MqttTag] = Field(default_factory=list)

    @model_validator(mode="after")
    def _shared(self) -> MqttConnectorSettings:
        if self.workers > 1 and self.protocol != "5":
            raise _located(
                ("workers",),
                f"{self.workers} workers share one subscription through MQTT 5 shared "
                'subscriptions: set protocol = "5" (or workers = 1)',
            )
        return self

    @property
    def effective_client_id(self) -> str:
        return self.client_id or f"circman5-{self.name}"

    @property
    def effective_share_group(self) -> str:
        """The shared-subscription group of the workers."""
        return self.share_group or f"circman5-{self.name}"

    def subscription(self, topic_filter: str) -> str:
        """What to subscribe to for ``topic_filter`` (shared when ``share_group`` is set)."""
        if self.share_group is None:
            return topic_filter
        return f"$share/{self.share_group}/{topic_filter}"


# -- Modbus ---------------------------------------------------------------------------------------


class ModbusTag(TagBase):
    """A coil, discrete input, input register or holding register (``hr:100``).

    ``data_type``: int16, uint16, int32, uint32, int64, uint64, float32, float64, string (with
    ``length`` in registers) or bit (coils and discrete inputs always; in a register with
    ``bit`` = 0..15). ``byte_order``/``word_order``/``unit_id`` default to the connector's.
    """

    data_type: ModbusDataType | None = None
    unit_id: Annotated[int, Field(ge=0, le=255)] | None = None
    byte_order: Literal["big", "little"] | None = None
    word_order: Literal["big", "little"] | None = None
    length: Annotated[int, Field(ge=1, le=MAX_REGISTERS)] | None = None
    bit: Annotated[int, Field(ge=0, le=15)] | None = None

    @field_validator("path")
    @classmethod
    def _path(cls, value: str) -> str:
        return _check_path(value)

    @model_validator(mode="after")
    def _layout(self) -> ModbusTag:
        try:
            address = parse_address(self.address)
        except ValueError as err:
            raise _located(("address",), str(err)) from err
        data_type = self.effective_type
        if address.table in BIT_TABLES:
            if data_type != "bit":
                raise _located(
                    ("data_type",),
                    f"{address.table} holds bits; data_type must be 'bit', not '{data_type}'",
                )
            if self.bit is not None:
                raise _located(
                    ("bit",), f"'bit' selects a bit of a register, not of a {address.table}"
                )
        elif data_type == "bit" and self.bit is None:
            raise _located(("bit",), "a 'bit' tag in a register needs bit = 0..15")
        if data_type == "string" and self.length is None:
            raise _located(("length",), "a string tag needs 'length' (registers)")
        if data_type != "string" and self.length is not None:
            raise _located(("length",), "'length' applies to string tags only")
        if data_type != "bit" and self.bit is not None:
            raise _located(("bit",), "'bit' applies to data_type 'bit' only")
        if data_type in ("string", "bit") and (
            self.scale != 1.0 or self.offset != 0.0 or self.deadband
        ):
            raise ValueError(f"scale, offset and deadband do not apply to {data_type} tags")
        count = register_count(data_type, self.length)
        if address.offset + count > 0x10000:
            raise _located(("address",), f"{count} registers from {address.offset} pass 65535")
        if self.writable and (
            address.table not in WRITABLE_TABLES or (data_type == "bit" and not address.is_bit)
        ):
            raise _located(
                ("writable",),
                "only coils and holding registers (not single bits of a register) are writable",
            )
        return self

    @property
    def effective_type(self) -> str:
        if self.data_type is not None:
            return self.data_type
        return "bit" if parse_address(self.address).is_bit else "uint16"


class ModbusConnectorSettings(BaseModel):
    """A Modbus TCP server, an RTU serial line, or RTU framing over TCP (gateways, tests).

    Tags are polled every ``poll_interval_s``; tags of one unit and table are merged into as few
    requests as possible (``max_registers_per_request``, ``max_bits_per_request``, reading over
    gaps of up to ``max_gap``). A unit that keeps failing is polled less often, doubling up to
    ``backoff_max_s``, until it answers again.

    ``report``: ``"change"`` passes a polled value on when it changed (by more than the tag's
    ``deadband``, if it has one), after a failure, and at least every ``heartbeat_s`` (0: never
    just for being old), like an OPC UA subscription; ``"poll"`` passes every polled value.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    type: Literal["modbus"]
    name: Name
    enabled: bool = True
    transport: Literal["tcp", "rtu", "rtu_over_tcp"] = "tcp"
    host: str | None = None
    port: Annotated[int, Field(ge=1, le=65535)] = 502
    serial_port: str | None = None
    baudrate: Annotated[int, Field(ge=50, le=4_000_000)] = 19200
    parity: Literal["N", "E", "O"] = "N"
    stopbits: Literal[1, 2] = 1
    bytesize: Literal[7, 8] = 8
    unit_id: Annotated[int, Field(ge=0, le=255)] = 1
    byte_order: Literal["big", "little"] = "big"
    word_order: Literal["big", "little"] = "big"
    poll_interval_s: Annotated[float, Field(ge=0, allow_inf_nan=False)] = 1.0
    timeout_s: Positive = 1.0
    retries: Annotated[int, Field(ge=0, le=10)] = 0
    max_registers_per_request: Annotated[int, Field(ge=1, le=MAX_REGISTERS)] = MAX_REGISTERS
    max_bits_per_request: Annotated[int, Field(ge=1, le=MAX_BITS)] = MAX_BITS
    max_gap: Annotated[int, Field(ge=0, le=MAX_REGISTERS)] = 0
    backoff_max_s: Positive = 60.0
    report: Literal["change", "poll"] = "change"
    heartbeat_s: NonNegative = 60.0
    reconnect_initial_s: Positive = 0.5
    reconnect_max_s: Positive = 30.0
    #: Retry interval while the server is absent (connection refused, no route); ``None``:
    #: back off as for a server that refuses (see docs/tag_mapping.md, "Reconnecting").
    reconnect_absent_s: Annotated[float, Field(gt=0, le=60, allow_inf_nan=False)] | None = 0.5
    max_buffered_samples: Annotated[int, Field(ge=1)] = 1_000_000
    tags: list[ModbusTag] = Field(default_factory=list)

    @model_validator(mode="after")
    def _endpoint(self) -> ModbusConnectorSettings:
        if self.transport == "rtu":
            if not self.serial_port:
                raise ValueError("transport 'rtu' needs 'serial_port' (e.g. '/dev/ttyUSB0')")
        elif not self.host:
            raise ValueError(f"transport '{self.transport}' needs 'host'")
        for index, tag in enumerate(self.tags):
            count = register_count(tag.effective_type, tag.length)
            if not parse_address(tag.address).is_bit and count > self.max_registers_per_request:
                raise _located(
                    ("tags", index, "length"),
                    f"{count} registers exceed max_registers_per_request "
                    f"({self.max_registers_per_request})",
                )
        return self


# -- Sparkplug B (its own folder; it builds on the models above) --------------------------------

from circman5.connectors.sparkplug.config import SparkplugConnectorSettings  # noqa: E402

# -- the union and the list -----------------------------------------------------------------------

ConnectorSettings = Annotated[
    OpcUaConnectorSettings
    | MqttConnectorSettings
    | ModbusConnectorSettings
    | SparkplugConnectorSettings,
    Field(discriminator="type"),
]
"""One ``[[connectors]]`` entry; ``type`` picks the model."""

AnyConnectorSettings: TypeAlias = (
    OpcUaConnectorSettings
    | MqttConnectorSettings
    | ModbusConnectorSettings
    | SparkplugConnectorSettings
)


def _problem_key(prefix: str, loc: Sequence[str | int], ctx: dict[str, Any] | None) -> str:
    parts = list(loc)
    # The discriminated union adds the connector type after the list index: drop it.
    if len(parts) >= 2 and isinstance(parts[0], int) and parts[1] in CONNECTOR_TYPES:
        del parts[1]
    key = prefix + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in parts)
    if ctx and "loc" in ctx:
        inner = str(ctx["loc"])
        key += inner if inner.startswith("[") else "." + inner
    return key


def _describe(prefix: str, err: ValidationError) -> list[tuple[str, str]]:
    problems: list[tuple[str, str]] = []
    for problem in err.errors():
        ctx = problem.get("ctx")
        key = _problem_key(prefix, problem["loc"], ctx)
        if problem["type"] == "connector_config" and ctx:
            message = str(ctx["reason"])
        elif problem["type"] == "extra_forbidden":
            message = "unknown key"
        elif problem["type"] == "union_tag_invalid":
            message = (
                f"unknown connector type {problem['input'].get('type')!r}; "
                f"expected one of {', '.join(CONNECTOR_TYPES)}"
                if isinstance(problem["input"], dict)
                else problem["msg"]
            )
        elif problem["type"] == "union_tag_not_found":
            message = f"missing 'type' (one of {', '.join(CONNECTOR_TYPES)})"
        else:
            message = problem["msg"]
            if message.startswith("Value error, "):
                message = message[len("Value error, ") :]
        problems.append((key, message))
    return problems


def _path_pattern(path: str) -> str:
    return re.sub(r"\{\d+\}", "*", path)


def check_unique(connectors: Sequence[AnyConnectorSettings], prefix: str = "connectors") -> None:
    """Raise ``ValueError`` naming the entry when a twin path or connector name repeats."""
    names: dict[str, int] = {}
    seen: dict[str, str] = {}
    templates: list[tuple[re.Pattern[str], str, str]] = []
    for index, connector in enumerate(connectors):
        if connector.name in names:
            raise ValueError(
                f"{prefix}[{index}].name: duplicate connector name '{connector.name}' "
                f"(also {prefix}[{names[connector.name]}].name)"
            )
        names[connector.name] = index
        for tag_index, tag in enumerate(connector.tags):
            key = f"{prefix}[{index}].tags[{tag_index}].path"
            normal = _path_pattern(tag.path)
            if normal in seen:
                raise ValueError(f"{key}: duplicate twin path '{tag.path}' (also {seen[normal]})")
            seen[normal] = key
            if "*" in normal:
                regex = re.compile("^" + re.escape(normal).replace(r"\*", r"[A-Za-z0-9_.]+") + "$")
                templates.append((regex, tag.path, key))
    concrete = sorted((path, key) for path, key in seen.items() if "*" not in path)
    for (path, key), (other, other_key) in itertools.pairwise(concrete):
        if other.startswith(path + "."):
            raise ValueError(
                f"{other_key}: twin path '{other}' is inside '{path}' ({key}); a path cannot be "
                "both a value and a section"
            )
    for regex, template, key in templates:
        for path, other in seen.items():
            if other != key and "*" not in path and regex.match(path):
                raise ValueError(
                    f"{other}: twin path '{path}' is also produced by '{template}' ({key})"
                )


def _validate_list(value: Any, handler: Any, info: ValidationInfo) -> list[AnyConnectorSettings]:
    try:
        result: list[AnyConnectorSettings] = handler(value)
    except ValidationError as err:
        problems = _describe("connectors", err)
        raise ValueError("; ".join(f"{key}: {message}" for key, message in problems)) from None
    check_unique(result)
    return result


ConnectorList = Annotated[list[ConnectorSettings], WrapValidator(_validate_list)]
"""``connectors: ConnectorList = []`` in the service settings: the whole tag map, validated."""


class ConnectorsFile(BaseModel):
    """A TOML document holding only ``[[connectors]]`` tables (for tests, tools and docs)."""

    model_config = ConfigDict(extra="forbid")

    connectors: ConnectorList = Field(default_factory=list)


def load_connectors(
    source: str | Path, file_label: str | None = None
) -> list[AnyConnectorSettings]:
    """Validate the ``[[connectors]]`` of a TOML file (``Path``) or TOML text (``str``).

    Raises :class:`ConfigError` with the file, the entry (``connectors[0].tags[3].address``)
    and the reason.
    """
    if isinstance(source, Path):
        label = file_label or str(source)
        try:
            text = source.read_text(encoding="utf-8")
        except OSError as err:
            raise ConfigError(label, "(file)", f"cannot read: {err}") from err
    else:
        label = file_label or "<toml>"
        text = source
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(label, "(syntax)", f"invalid TOML: {err}") from err
    raw = data.get("connectors", [])
    try:
        adapter_result = ConnectorsFile.model_validate({"connectors": raw})
    except ValidationError as err:
        first = err.errors()[0]
        message = str(first["msg"])
        if message.startswith("Value error, "):
            message = message[len("Value error, ") :]
        key, _, reason = message.partition(": ")
        if not key.startswith("connectors"):
            key, reason = "connectors", message
        raise ConfigError(label, key, reason) from err
    return list(adapter_result.connectors)


def stale_timeout(tag: TagBase) -> float | None:
    """A tag's silence timeout: None = connector default, ``inf`` for 0 (never)."""
    if tag.stale_timeout_s is None:
        return None
    return math.inf if tag.stale_timeout_s == 0 else tag.stale_timeout_s
