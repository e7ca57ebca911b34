"""Settings of the MQTT connector (``type = "mqtt"``): the broker, TLS, session and the tag map
(topic filters with wildcards to twin paths). See ``README.md`` in this folder."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    model_validator,
)

from circman5.connectors.config_base import (
    Name,
    NonNegative,
    Positive,
    Qos,
    TagBase,
    located,
)
from circman5.connectors.mqtt.topics import (
    TopicPattern,
    validate_topic_filter,
)
from circman5.connectors.timestamps import DEFAULT_MAX_FUTURE_S, TimestampPolicy

__all__ = ["MqttConnectorSettings", "MqttTag", "MqttTls"]


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
            raise located(("address",), str(err)) from err
        try:
            TopicPattern(self.address, self.path)
        except ValueError as err:
            raise located(("path",), str(err)) from err
        for name in ("field", "timestamp_field"):
            value = getattr(self, name)
            if value is not None and (not value or any(not p for p in value.split("."))):
                raise located((name,), f"'{value}' is not a dotted field path")
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
    #: Shared subscriptions are MQTT 5; mosquitto (1.6+), EMQX, HiveMQ and VerneMQ also give
    #: them to MQTT 3.1.1 clients, whose messages paho decodes at half the CPU. Set true only for
    #: such a broker: another one takes ``$share/...`` as a plain filter and delivers nothing.
    shared_subscriptions_on_3_1_1: bool = False
    tags: list[MqttTag] = Field(default_factory=list)

    @model_validator(mode="after")
    def _shared(self) -> MqttConnectorSettings:
        if self.workers > 1 and self.protocol != "5" and not self.shared_subscriptions_on_3_1_1:
            raise located(
                ("workers",),
                f"{self.workers} workers share one subscription through MQTT 5 shared "
                'subscriptions: set protocol = "5" (or workers = 1, or '
                "shared_subscriptions_on_3_1_1 = true for a broker that offers them to MQTT "
                "3.1.1 clients, such as mosquitto)",
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
