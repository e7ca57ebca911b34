"""Settings of the site view: which broker and site(s) the API watches (``[site_view]``).

Every edge instance publishes ``{topic_prefix}/{site}/{line}/status`` (retained ``online`` /
``offline``, the broker sends ``offline`` as its last will), ``.../state`` (retained twin state)
and ``.../events/{category}``. The site view subscribes to those topics of its sites, so the API
can show every line of a site without talking to the lines' own APIs.
"""

from __future__ import annotations

import re

from pydantic import Field, SecretStr, field_validator

from circman5.sinks.config import MqttTlsSettings, TopicSegment, _Settings

_URL = re.compile(r"^(https?://[^/\s]+|/)\S*$")


class SiteViewSettings(_Settings):
    """The site page's MQTT subscription (the broker the lines publish to)."""

    enabled: bool = False
    host: str = "127.0.0.1"
    port: int = Field(default=1883, ge=1, le=65535)
    tls: MqttTlsSettings | None = None
    username: str | None = None
    password: SecretStr | None = None
    protocol: str = "5"
    #: Default ``circman5-site-view-{site}-{line}`` of the instance serving the API.
    client_id: str | None = None
    #: The lines' ``outputs.mqtt.topic_prefix``.
    topic_prefix: str = "circman5"
    #: The sites shown (empty: the service's own ``site``).
    sites: list[TopicSegment] = Field(default_factory=list)
    #: Twin paths shown for every line (dotted, e.g. ``production_line.temperature``).
    key_values: list[str] = Field(default_factory=list)
    #: Each line's own HMI, keyed ``"site/line"``: ``{"plant/line2" = "http://edge2:8080/hmi/"}``.
    #: A line without one links to the live view built from its state topic.
    dashboards: dict[str, str] = Field(default_factory=dict)

    @field_validator("protocol", mode="before")
    @classmethod
    def _protocol_text(cls, value: object) -> object:
        if isinstance(value, int | float):
            return {5: "5", 3.1: "3.1.1", 311: "3.1.1"}.get(value, str(value))
        if value not in ("5", "3.1.1"):
            raise ValueError("'5' or '3.1.1'")
        return value

    @field_validator("topic_prefix")
    @classmethod
    def _prefix(cls, value: str) -> str:
        if not value or not all(re.fullmatch(r"[A-Za-z0-9_.\-]+", p) for p in value.split("/")):
            raise ValueError(
                "topic levels of letters, digits, '_', '.', '-' separated by '/'"
                " (no wildcards, no empty level)"
            )
        return value

    @field_validator("key_values")
    @classmethod
    def _paths(cls, value: list[str]) -> list[str]:
        for path in value:
            if not re.fullmatch(r"[A-Za-z0-9_\-]+(\.[A-Za-z0-9_\-]+)*", path):
                raise ValueError(f"'{path}' is not a dotted twin path")
        return value

    @field_validator("dashboards")
    @classmethod
    def _dashboards(cls, value: dict[str, str]) -> dict[str, str]:
        for key, url in value.items():
            site, _, line = key.partition("/")
            segment = r"[A-Za-z0-9_.\-]+"
            if not (re.fullmatch(segment, site) and re.fullmatch(segment, line)):
                raise ValueError(f"key '{key}' must be 'site/line'")
            if not _URL.match(url):
                raise ValueError(f"'{url}' (for {key}) must be an http(s):// URL or a path")
        return value
