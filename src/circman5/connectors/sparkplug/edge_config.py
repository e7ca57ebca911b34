"""Settings of the twin as a Sparkplug B edge node (``[outputs.sparkplug]`` in the service TOML).

The twin publishes its state as one edge node ``group_id/edge_node_id``: every twin path that
matches ``publish`` (and not ``exclude``) is a metric named by its path. ``devices = "sections"``
makes each top-level section (``production_line``, ``materials``, ...) a device of the node
instead, its metrics named by the rest of the path. ``writable`` lists the twin paths a
Sparkplug host may write with ``NCMD``/``DCMD``; each must be one of the service's
``[[setpoints]]`` (checked at load), and the write goes through the same checks as the API.
"""

from __future__ import annotations

import fnmatch
import re
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from circman5.connectors.config_base import NonNegative, Positive
from circman5.connectors.mqtt.config import MqttTls
from circman5.connectors.sparkplug.config import _check_id

__all__ = ["PathSelection", "SparkplugEdgeSettings"]

SparkplugId = Annotated[str, Field(min_length=1, max_length=128)]


class PathSelection:
    """Which twin paths are published: ``*`` matches any characters, dots included."""

    def __init__(self, include: list[str], exclude: list[str]) -> None:
        self._include = _compiled(include)
        self._exclude = _compiled(exclude)
        self._seen: dict[str, bool] = {}

    def __call__(self, path: str) -> bool:
        decided = self._seen.get(path)
        if decided is None:
            decided = bool(self._include.match(path)) and not self._exclude.match(path)
            if len(self._seen) < 100_000:
                self._seen[path] = decided
        return decided


def _compiled(patterns: list[str]) -> re.Pattern[str]:
    if not patterns:
        return re.compile(r"(?!)")  # matches nothing
    return re.compile("|".join(f"(?:{fnmatch.translate(p)})" for p in patterns))


class SparkplugEdgeSettings(BaseModel):
    """The twin as a Sparkplug B (3.0) edge node on an MQTT broker (see the module docstring)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = True
    host: Annotated[str, Field(min_length=1)] = "127.0.0.1"
    port: Annotated[int, Field(ge=1, le=65535)] = 1883
    #: Default: ``circman5-spb-{group_id}-{edge_node_id}``.
    client_id: Annotated[str, Field(min_length=1, max_length=128)] | None = None
    keepalive_s: Annotated[int, Field(ge=5, le=65535)] = 30
    username: str | None = None
    password: SecretStr | None = None
    tls: MqttTls | None = None
    reconnect_initial_s: Positive = 0.5
    reconnect_max_s: Positive = 10.0
    group_id: SparkplugId
    edge_node_id: SparkplugId
    #: Twin paths to publish (globs; ``*`` spans dots): ``["production_line.*"]``.
    publish: list[str] = Field(default_factory=lambda: ["*"])
    #: Twin paths not to publish (globs), applied after ``publish``.
    exclude: list[str] = Field(default_factory=lambda: ["timestamp", "quality.*"])
    #: ``none``: every path is a metric of the edge node; ``sections``: one device per
    #: top-level section of the twin (DBIRTH/DDATA/DCMD), metric names without the section.
    devices: Literal["none", "sections"] = "none"
    #: A number is republished once it differs from the last published value by more than this
    #: (absolute, in the path's unit; 0: every change). Strings and booleans: every change.
    deadband: NonNegative = 0.0
    #: Twin paths a host may write with NCMD/DCMD (each one of ``[[setpoints]]``).
    writable: list[str] = Field(default_factory=list)
    #: Sparkplug 3.0 primary host: wait for its ``STATE`` (``spBv1.0/STATE/{id}``) to say
    #: online before the birth; when it says offline, publish ``NDEATH`` and pause until it is
    #: back (then a new birth). None: publish regardless of any host.
    primary_host_id: SparkplugId | None = None
    #: Most metrics in one birth; further paths are not published (reported once).
    max_metrics: Annotated[int, Field(ge=1, le=100_000)] = 10_000

    @field_validator("group_id", "edge_node_id", "primary_host_id")
    @classmethod
    def _ids(cls, value: str | None) -> str | None:
        if value is not None:
            _check_id("id", value, wildcard=False)
        return value

    @field_validator("publish", "exclude")
    @classmethod
    def _globs(cls, value: list[str]) -> list[str]:
        for pattern in value:
            if not pattern.strip():
                raise ValueError("an empty pattern")
        return value

    @model_validator(mode="after")
    def _credentials(self) -> SparkplugEdgeSettings:
        if self.username is None and self.password is not None:
            raise ValueError("'password' needs 'username'")
        if self.devices == "sections":
            for path in self.writable:
                if "." not in path:
                    raise ValueError(
                        f"writable: '{path}' has no section (devices = 'sections' needs "
                        "'section.name')"
                    )
        return self

    @property
    def effective_client_id(self) -> str:
        return self.client_id or f"circman5-spb-{self.group_id}-{self.edge_node_id}"

    def selection(self) -> PathSelection:
        return PathSelection(self.publish, self.exclude)
