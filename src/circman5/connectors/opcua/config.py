"""Settings of the OPC UA connector (``type = "opcua"``): the server, security, discovery rules
and the tag map (node ids to twin paths). See ``README.md`` in this folder."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    field_validator,
    model_validator,
)

from circman5.connectors.config_base import (
    Finite,
    Name,
    NonNegative,
    Positive,
    TagBase,
    check_path,
    located,
)
from circman5.connectors.mqtt.topics import validate_twin_path
from circman5.connectors.opcua.nodeid import parse_node_address
from circman5.connectors.timestamps import DEFAULT_MAX_FUTURE_S, TimestampPolicy

__all__ = ["OpcUaConnectorSettings", "OpcUaDiscovery", "OpcUaSecurity", "OpcUaTag"]


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
        return check_path(value)

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
    the ``*`` wildcards, all in snake_case (``SiliconWafer`` -> ``silicon_wafer``), then checked
    by the MQTT wildcard rules (see :mod:`circman5.connectors.opcua.discovery`). ``max_nodes``
    caps the tags a rule adds; more matching nodes are counted and reported once.
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
    """An OPC UA server: one session, one subscription for all its tags (``workers = N``: the
    tags split into N shares, each monitored by a worker process with its own session)."""

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
    #: Ingestion worker processes: the tags (configured and discovered) split into ``workers``
    #: shares by a stable hash of each node's address; each worker opens its own session and
    #: subscription, stores its samples through its own outbox and forwards the latest value
    #: per path to the twin. 1: the connector runs in the service process (docs/operations.md,
    #: "Ingestion workers"). Writes are not offered: ``writable`` tags need ``workers = 1``.
    workers: Annotated[int, Field(ge=1, le=64)] = 1
    #: ``[k, n]``: monitor only share ``k`` of ``n`` of the tags (same split as ``workers``). The
    #: service sets it for its workers; set by hand it splits one server among several services.
    share: tuple[Annotated[int, Field(ge=1)], Annotated[int, Field(ge=1, le=64)]] | None = None
    tags: list[OpcUaTag] = Field(default_factory=list)
    discover: list[OpcUaDiscovery] = Field(default_factory=list)

    @model_validator(mode="after")
    def _addresses(self) -> OpcUaConnectorSettings:
        for index, tag in enumerate(self.tags):
            try:
                parse_node_address(tag.address, self.namespace_uri)
            except ValueError as err:
                raise located(("tags", index, "address"), str(err)) from err
        for index, rule in enumerate(self.discover):
            try:
                parse_node_address(rule.root, self.namespace_uri)
            except ValueError as err:
                raise located(("discover", index, "root"), str(err)) from err
        if self.lifetime_count < 3 * self.keepalive_count:
            raise ValueError("lifetime_count must be at least 3 x keepalive_count")
        if (self.username is None) != (self.password is None):
            raise ValueError("set both 'username' and 'password', or neither")
        self._check_shares()
        return self

    def _check_shares(self) -> None:
        if self.share is not None:
            index, count = self.share
            if index > count:
                raise located(("share",), f"share {index} of {count}: k must be within 1..n")
            if self.workers > 1:
                raise located(("share",), "set 'workers' or 'share', not both")
        if self.workers == 1:
            return
        if not self.tags and not self.discover:
            raise located(
                ("workers",),
                f"{self.workers} workers split the tags: add [[connectors.tags]] and/or "
                "[[connectors.discover]]",
            )
        writable = [f"tags[{i}]" for i, tag in enumerate(self.tags) if tag.writable]
        writable += [f"discover[{i}]" for i, rule in enumerate(self.discover) if rule.writable]
        if writable:
            raise located(
                ("workers",),
                f"writes are not offered by a connector with ingestion workers, and "
                f"{', '.join(writable[:5])} {'is' if len(writable) == 1 else 'are'} writable: "
                "put the writable tags on a second connector to the same server with "
                "workers = 1",
            )
