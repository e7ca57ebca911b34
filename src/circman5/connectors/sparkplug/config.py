"""Settings of the Sparkplug B host connector (``type = "sparkplug"``) and its tag map.

A tag's ``address`` is ``group/edge_node/device/metric name``: the Sparkplug group id, the edge
node id, the device id (empty for a metric of the edge node itself: ``Plant/Gateway1//Uptime``)
and the metric name, which may itself contain ``/`` (``Line1/Oven/Temperature``). The edge node
and the device may be ``+``; what they matched is ``{1}``, ``{2}``, ... in the twin ``path``, as
for MQTT topic wildcards (:mod:`circman5.connectors.mqtt.topics`).

Built on :mod:`circman5.connectors.config_base` like the other protocols' settings; joined into
the ``[[connectors]]`` union by :mod:`circman5.connectors.config`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from circman5.connectors.config_base import Name, NonNegative, Positive, Qos, TagBase, located
from circman5.connectors.mqtt.config import MqttTls
from circman5.connectors.mqtt.topics import TopicPattern

__all__ = ["SparkplugAddress", "SparkplugConnectorSettings", "SparkplugTag", "parse_address"]

NAMESPACE = "spBv1.0"
_FORBIDDEN_IN_IDS = frozenset("/+#")


@dataclass(frozen=True, slots=True)
class SparkplugAddress:
    """A parsed tag address; ``device`` is ``""`` for a metric of the edge node itself."""

    group: str
    edge_node: str
    device: str
    metric: str

    @property
    def scope(self) -> str:
        """``group/edge_node/device``: what :class:`TopicPattern` matches for the wildcards."""
        return f"{self.group}/{self.edge_node}/{self.device}"


def _check_id(kind: str, value: str, wildcard: bool) -> None:
    if wildcard and value == "+":
        return
    if any(char in _FORBIDDEN_IN_IDS for char in value):
        raise ValueError(f"the {kind} '{value}' contains '/', '+' or '#'")


def parse_address(address: str) -> SparkplugAddress:
    """``group/edge_node/device/metric name`` -> its parts; ``ValueError`` saying why not."""
    parts = address.split("/", 3)
    if len(parts) != 4:
        raise ValueError(
            f"'{address}' is not 'group/edge_node/device/metric name' (device empty for a node "
            "metric: 'group/edge_node//metric')"
        )
    group, edge_node, device, metric = parts
    if not group or group == "+":
        raise ValueError("the group id must be given (no wildcard)")
    _check_id("group id", group, wildcard=False)
    if not edge_node:
        raise ValueError("the edge node id is empty (use '+' for any edge node)")
    _check_id("edge node id", edge_node, wildcard=True)
    _check_id("device id", device, wildcard=True)
    if not metric:
        raise ValueError("the metric name is empty")
    return SparkplugAddress(group, edge_node, device, metric)


class SparkplugTag(TagBase):
    """A Sparkplug metric mapped to a twin path (with ``{1}``... for the ``+`` wildcards' matches).

    ``data_type``: ``auto`` keeps the metric's own type (integers as int, Float/Double as float,
    Boolean, String/Text/UUID as str, DateTime as an ISO 8601 UTC string); otherwise the value is
    converted. ``scale``/``offset``/``deadband`` apply to numbers only.
    """

    data_type: Literal["auto", "float", "int", "bool", "str"] = "auto"

    @model_validator(mode="after")
    def _address(self) -> SparkplugTag:
        try:
            address = parse_address(self.address)
        except ValueError as err:
            raise located(("address",), str(err)) from err
        try:
            TopicPattern(address.scope, self.path)
        except ValueError as err:
            raise located(("path",), str(err).replace("topic filter", "address")) from err
        if self.data_type in ("str", "bool") and (
            self.scale != 1.0 or self.offset != 0.0 or self.deadband
        ):
            raise ValueError(f"scale, offset and deadband do not apply to {self.data_type} tags")
        return self

    @property
    def parsed(self) -> SparkplugAddress:
        return parse_address(self.address)


class SparkplugConnectorSettings(BaseModel):
    """A Sparkplug B host application on the plant's MQTT broker (Sparkplug 3.0).

    It subscribes to ``spBv1.0/{group}/#`` for every group of ``groups`` and of the tags, keeps
    the birth certificates, decodes data by alias and asks an edge node for a rebirth (``NCMD``
    ``Node Control/Rebirth``) instead of guessing, at most once per ``rebirth_interval_s`` per
    node. ``primary_host_id``: also publish the primary host ``STATE`` (retained, will
    ``online: false``) so that edge nodes configured for this host buffer while it is away.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    type: Literal["sparkplug"]
    name: Name
    enabled: bool = True
    host: Annotated[str, Field(min_length=1)] = "127.0.0.1"
    port: Annotated[int, Field(ge=1, le=65535)] = 1883
    client_id: Annotated[str, Field(min_length=1, max_length=128)] | None = None
    keepalive_s: Annotated[int, Field(ge=1, le=65535)] = 30
    qos: Qos = 1
    username: str | None = None
    password: SecretStr | None = None
    tls: MqttTls | None = None
    reconnect_initial_s: Positive = 0.5
    reconnect_max_s: Positive = 30.0
    groups: list[str] = Field(default_factory=list)
    primary_host_id: Annotated[str, Field(min_length=1, max_length=128)] | None = None
    rebirth_interval_s: NonNegative = 5.0
    max_payload_bytes: Annotated[int, Field(ge=1, le=256 * 1024 * 1024)] = 1024 * 1024
    drain_delay_ms: Annotated[float, Field(ge=0, le=1000, allow_inf_nan=False)] = 5.0
    max_buffered_samples: Annotated[int, Field(ge=1)] = 1_000_000
    tags: list[SparkplugTag] = Field(default_factory=list)

    @field_validator("groups")
    @classmethod
    def _groups(cls, value: list[str]) -> list[str]:
        for group in value:
            if not group:
                raise ValueError("a group id is empty")
            _check_id("group id", group, wildcard=False)
        return value

    @field_validator("primary_host_id")
    @classmethod
    def _host_id(cls, value: str | None) -> str | None:
        if value is not None:
            _check_id("primary host id", value, wildcard=False)
        return value

    @model_validator(mode="after")
    def _subscribed(self) -> SparkplugConnectorSettings:
        if not self.all_groups:
            raise ValueError("set 'groups' or map at least one tag: there is nothing to subscribe")
        if (self.username is None) and (self.password is not None):
            raise ValueError("'password' needs 'username'")
        return self

    @property
    def all_groups(self) -> list[str]:
        """``groups`` and the tags' groups, in order, without repeats."""
        seen = dict.fromkeys(self.groups)
        for tag in self.tags:
            seen.setdefault(tag.parsed.group)
        return list(seen)

    @property
    def effective_client_id(self) -> str:
        return self.client_id or f"circman5-{self.name}"
