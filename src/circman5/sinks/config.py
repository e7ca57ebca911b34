"""Settings models of the outputs: InfluxDB (v2 API and 1.x), the embedded store, the outbox, MQTT.

The service settings (``circman5.settings``) compose these; every model forbids unknown keys so a
typo in the TOML file fails at load with the key. :class:`OutputSettings` bundles them.
"""

from __future__ import annotations

import re
from pathlib import Path, PurePosixPath
from typing import Annotated, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PositiveFloat,
    PositiveInt,
    SecretStr,
    field_validator,
    model_validator,
)

_SEGMENT = re.compile(r"^[A-Za-z0-9_.\-]+$")
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.\-]*$")

#: One MQTT topic level / tag value: letters, digits, ``_ . -`` (no ``/ + #``, no spaces).
TopicSegment = Annotated[str, Field(min_length=1, max_length=64, pattern=_SEGMENT.pattern)]
#: A measurement name: starts with a letter or ``_`` (a leading ``#`` would be a comment).
MeasurementName = Annotated[str, Field(min_length=1, max_length=128, pattern=_NAME.pattern)]


class _Settings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _http_url(value: str) -> str:
    if not re.match(r"^https?://[^/\s]+", value):
        raise ValueError("must be an http:// or https:// URL")
    return value.rstrip("/")


class SeriesSettings(_Settings):
    """How samples and KPIs are named in the time-series database."""

    site: TopicSegment = "site1"
    line: TopicSegment = "line1"
    sample_measurement: MeasurementName = "sample"
    kpi_measurement: MeasurementName = "twin_kpi"
    #: Write Python ints as InfluxDB integers (``42i``). Off by default: InfluxDB fixes a field's
    #: type per measurement, and a device that sends ``22`` then ``22.5`` would be rejected.
    integer_fields: bool = False
    #: Add the protocol address (node id, topic, register) as tag ``address``.
    address_tag: bool = False


class InfluxDB2Settings(_Settings):
    """InfluxDB through the v2 write API (InfluxDB 2.x/3.x, 1.8+, VictoriaMetrics, ...)."""

    url: str = "http://127.0.0.1:8086"
    org: str = "circman5"
    bucket: str = "circman5"
    token: SecretStr = SecretStr("")
    timeout_s: PositiveFloat = 10.0
    gzip: bool = False
    verify_ssl: bool = True
    ssl_ca_cert: Path | None = None

    _url = field_validator("url")(_http_url)


class InfluxDB1Settings(_Settings):
    """InfluxDB 1.x through its ``/write`` endpoint."""

    url: str = "http://127.0.0.1:8086"
    database: str = "circman5"
    retention_policy: str | None = None
    username: str | None = None
    password: SecretStr | None = None
    timeout_s: PositiveFloat = 10.0
    gzip: bool = False
    verify_ssl: bool = True

    _url = field_validator("url")(_http_url)


class OutboxSettings(_Settings):
    """The disk-backed store-and-forward queue in front of each remote sink.

    When a limit is exceeded the oldest stored batches are dropped (counted and reported).
    """

    max_points: PositiveInt = 20_000_000
    max_bytes: PositiveInt = 2 * 1024**3
    max_batches: PositiveInt = 1_000_000
    #: Most points (and bytes) sent in one request; small batches are merged up to this.
    batch_max_points: PositiveInt = 10_000
    batch_max_bytes: PositiveInt = 4 * 1024**2
    #: Line protocol: while the server takes data, a request that would carry fewer than
    #: ``batch_max_points`` waits up to this long for more (fewer, fuller requests under a
    #: heavy stream; at most this much delivery delay otherwise). 0: send at once.
    linger_s: float = Field(default=0.2, ge=0.0, le=10.0, allow_inf_nan=False)
    #: Backoff between retries while the server is overloaded (429/503/5xx, timeouts).
    backoff_initial_s: PositiveFloat = 0.5
    backoff_max_s: PositiveFloat = 30.0
    #: While the server is absent (connection refused, broker not connected) it is probed
    #: every 0.5-1 x ``probe_interval_s`` (jittered), so delivery resumes within seconds.
    probe_interval_s: PositiveFloat = 1.0
    #: An overflow episode ends once the outbox is below this fraction of every limit ...
    overflow_low_water: float = Field(default=0.8, gt=0.0, lt=1.0)
    #: ... or nothing was dropped for this long.
    overflow_quiet_s: PositiveFloat = 60.0
    #: Upper bound on a server's ``Retry-After``.
    max_retry_after_s: PositiveFloat = 300.0
    #: Rejections that are about the server's configuration, not the batch (bad token, missing
    #: bucket): batches are held and retried with backoff instead of being quarantined.
    hold_statuses: frozenset[int] = frozenset({401, 403, 404, 407})
    #: SQLite ``synchronous``: ``normal`` survives a process crash, ``full`` also a power cut.
    synchronous: Literal["normal", "full"] = "normal"

    @model_validator(mode="after")
    def _backoff_order(self) -> OutboxSettings:
        if self.backoff_initial_s > self.backoff_max_s:
            raise ValueError("backoff_initial_s must not exceed backoff_max_s")
        return self


class EmbeddedStoreSettings(_Settings):
    """The local SQLite time-series store used when no InfluxDB is configured."""

    #: ``fallback``: only when no InfluxDB is configured; ``always``: also beside InfluxDB
    #: (local history for the HMI and the API).
    mode: Literal["fallback", "always"] = "fallback"
    #: File name under the data directory.
    file: str = "timeseries.sqlite3"
    #: Points older than this are deleted (None: no age limit).
    max_age_s: PositiveFloat | None = 7 * 24 * 3600.0
    #: At most this many points are kept; the oldest go first (None: no row limit).
    max_rows: PositiveInt | None = 5_000_000
    retention_interval_s: PositiveFloat = 60.0
    #: Commit queued points at most this often: one transaction per second instead of one per
    #: twin tick cuts CPU and flash wear (page rewrites) several-fold. 0 = commit at once.
    commit_interval_s: float = Field(default=1.0, ge=0.0, le=60.0)
    #: The same while a source waits for the commit to acknowledge its messages (MQTT QoS 1/2
    #: acknowledged after durable): short, because a broker sends only its in-flight window
    #: (mosquitto: 20 messages by default) before it hears back.
    acknowledged_commit_interval_s: float = Field(default=0.05, ge=0.0, le=60.0)
    #: Merge the staged points (one small run per series and commit) into compressed chunks
    #: (one row per series and a few thousand points) at least this often.
    compact_interval_s: float = Field(default=30.0, gt=0.0, le=3600.0)
    #: Compact sooner once this many points are staged (bounds the staging table that every
    #: query scans, and the work of one compaction).
    max_staged_points: int = Field(default=500_000, ge=1_000, le=10_000_000)
    synchronous: Literal["normal", "full"] = "normal"

    @field_validator("file")
    @classmethod
    def _relative(cls, value: str) -> str:
        path = PurePosixPath(value)
        if path.is_absolute() or ".." in path.parts or not value.strip():
            raise ValueError("must be a relative file name inside the data directory")
        return value


class MqttTlsSettings(_Settings):
    """TLS for the MQTT connection (files in PEM format)."""

    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None

    @model_validator(mode="after")
    def _pair(self) -> MqttTlsSettings:
        if (self.cert_file is None) != (self.key_file is None):
            raise ValueError("cert_file and key_file go together")
        return self


def _events_outbox() -> OutboxSettings:
    return OutboxSettings(
        max_points=200_000, max_bytes=256 * 1024**2, max_batches=200_000, batch_max_points=100
    )


class MqttOutputSettings(_Settings):
    """Events, twin state and status published to an MQTT broker."""

    host: str = "127.0.0.1"
    port: int = Field(default=1883, ge=1, le=65535)
    tls: MqttTlsSettings | None = None
    username: str | None = None
    password: SecretStr | None = None
    #: Default: ``circman5-{site}-{line}``.
    client_id: str | None = None
    protocol: Literal["5", "3.1.1"] = "5"
    keepalive_s: int = Field(default=30, ge=5, le=3600)
    #: One or more topic levels, e.g. ``circman5`` or ``plant/circman5``.
    topic_prefix: str = "circman5"
    site: TopicSegment = "site1"
    line: TopicSegment = "line1"
    #: How often the retained twin state is republished when it changed (0 disables it).
    state_interval_s: float = Field(default=1.0, ge=0.0)
    #: MQTT 5 message expiry of the retained state, so a dead twin's state fades (None: never).
    state_expiry_s: PositiveInt | None = 60
    publish_timeout_s: PositiveFloat = 10.0
    #: paho's reconnect delay doubles from the minimum to the maximum: a broker that is back
    #: is connected again within about ``reconnect_max_s``.
    reconnect_min_s: PositiveFloat = 0.5
    reconnect_max_s: PositiveFloat = 1.0
    outbox: OutboxSettings = Field(default_factory=_events_outbox)

    @field_validator("protocol", mode="before")
    @classmethod
    def _protocol_text(cls, value: object) -> object:
        if isinstance(value, int | float):
            return {5: "5", 3.1: "3.1.1", 311: "3.1.1"}.get(value, str(value))
        return value

    @field_validator("topic_prefix")
    @classmethod
    def _prefix(cls, value: str) -> str:
        levels = value.split("/")
        if not value or not all(_SEGMENT.match(level) for level in levels):
            raise ValueError(
                "topic levels of letters, digits, '_', '.', '-' separated by '/'"
                " (no wildcards, no empty level)"
            )
        return value

    @property
    def base_topic(self) -> str:
        return f"{self.topic_prefix}/{self.site}/{self.line}"

    @property
    def effective_client_id(self) -> str:
        return self.client_id or f"circman5-{self.site}-{self.line}"


class OutputSettings(_Settings):
    """All outputs. With neither ``influxdb`` nor ``influxdb1`` set, series go to ``embedded``."""

    series: SeriesSettings = Field(default_factory=SeriesSettings)
    influxdb: InfluxDB2Settings | None = None
    influxdb1: InfluxDB1Settings | None = None
    embedded: EmbeddedStoreSettings = Field(default_factory=EmbeddedStoreSettings)
    outbox: OutboxSettings = Field(default_factory=OutboxSettings)
    mqtt: MqttOutputSettings | None = None

    @model_validator(mode="after")
    def _one_influx(self) -> OutputSettings:
        if self.influxdb is not None and self.influxdb1 is not None:
            raise ValueError("configure either influxdb (v2 API) or influxdb1, not both")
        return self
