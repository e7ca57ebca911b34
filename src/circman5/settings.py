"""Service settings: one TOML file plus ``CIRCMAN5_*`` environment variables.

Precedence (highest first): keyword arguments, environment (``CIRCMAN5_SITE``,
``CIRCMAN5_API__PORT`` with ``__`` between nested keys), the TOML file, the defaults.
Credentials are ``SecretStr`` and never printed. Errors name the file, the key and the reason.
"""

from __future__ import annotations

import tomllib
from contextvars import ContextVar
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, model_validator
from pydantic_settings import (
    BaseSettings,
    InitSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from circman5.adapters.base.config_adapter import describe_validation_error
from circman5.connectors.config import ConnectorList
from circman5.connectors.sparkplug.edge_config import SparkplugEdgeSettings
from circman5.errors import ConfigError
from circman5.sinks.config import OutputSettings
from circman5.sinks.site_config import SiteViewSettings
from circman5.storage.config import DatabaseSettings

Port = Annotated[int, Field(ge=0, le=65535)]


class LogSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = "INFO"
    format: Literal["plain", "json"] = "plain"


class HealthSettings(BaseModel):
    """``/health``, ``/ready`` and Prometheus ``/metrics``."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = True
    host: str = "127.0.0.1"
    port: Port = 9108


class ApiSettings(BaseModel):
    """The REST/WebSocket API and the web HMI."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = True
    host: str = "127.0.0.1"
    port: Port = 8080
    jwt_secret: SecretStr | None = None
    token_ttl_s: Annotated[int, Field(ge=60)] = 8 * 3600
    tls_certfile: Path | None = None
    tls_keyfile: Path | None = None


class SetpointSettings(BaseModel):
    """A setpoint operators may write from the HMI/API: its twin path and its limits.

    The path must be a ``writable`` tag of one connector; that connector performs the write.
    """

    model_config = ConfigDict(extra="forbid")

    path: str
    min: float = Field(allow_inf_nan=False)
    max: float = Field(allow_inf_nan=False)
    unit: str = ""
    description: str = ""

    @model_validator(mode="after")
    def _ordered(self) -> SetpointSettings:
        if self.min > self.max:
            raise ValueError(f"min {self.min} > max {self.max}")
        return self


class BatchTrackingSettings(BaseModel):
    """Where the twin holds the MES's batch-end data (``[batches]`` in the service TOML)."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = True
    completed_section: str = "batch.completed"
    materials_section: str = "materials"
    settle_s: float = Field(default=2.0, ge=0, le=600)


class ServiceOutputSettings(OutputSettings):
    """The outputs of :mod:`circman5.sinks.config` plus the twin as a Sparkplug B edge node
    (``[outputs.sparkplug]``; its model lives beside the Sparkplug connector it shares code with).
    """

    sparkplug: SparkplugEdgeSettings | None = None


class Settings(BaseSettings):
    """Everything the edge service needs beyond the twin's JSON constants."""

    model_config = SettingsConfigDict(
        env_prefix="CIRCMAN5_",
        env_nested_delimiter="__",
        extra="forbid",
        validate_default=True,
    )

    data_dir: Path | None = None
    config_dir: Path | None = None
    site: Annotated[str, Field(min_length=1, pattern=r"^[A-Za-z0-9_.-]+$")] = "site1"
    line: Annotated[str, Field(min_length=1, pattern=r"^[A-Za-z0-9_.-]+$")] = "line1"
    log: LogSettings = Field(default_factory=LogSettings)
    health: HealthSettings = Field(default_factory=HealthSettings)
    api: ApiSettings = Field(default_factory=ApiSettings)
    connectors: ConnectorList = Field(default_factory=list)
    outputs: ServiceOutputSettings = Field(default_factory=ServiceOutputSettings)
    setpoints: list[SetpointSettings] = Field(default_factory=list)
    batches: BatchTrackingSettings = Field(default_factory=BatchTrackingSettings)
    site_view: SiteViewSettings = Field(default_factory=SiteViewSettings)
    database: DatabaseSettings = Field(default_factory=DatabaseSettings)
    shutdown_timeout_s: Annotated[float, Field(gt=0, le=300)] = 15.0

    @model_validator(mode="after")
    def _wire(self) -> Settings:
        """One site/line for every output unless set there; setpoints need a writable tag."""
        outputs: dict[str, Any] = {}
        for name in ("series", "mqtt"):
            section = getattr(self.outputs, name)
            if section is None:
                continue
            fill = {
                k: getattr(self, k) for k in ("site", "line") if k not in section.model_fields_set
            }
            if fill:
                outputs[name] = section.model_copy(update=fill)
        if outputs:
            self.outputs = self.outputs.model_copy(update=outputs)
        remote = self.outputs.influxdb is not None or self.outputs.influxdb1 is not None
        for index, connector in enumerate(self.connectors):
            if getattr(connector, "workers", 1) > 1 and not remote:
                raise ValueError(
                    f"connectors[{index}].workers: ingestion workers store their samples "
                    "through outboxes of their own: configure [outputs.influxdb] or "
                    "[outputs.influxdb1] (or workers = 1)"
                )
        self.connectors = line_client_ids(self.connectors, self.site, self.line)
        for problem in namespace_problems(self):
            raise ValueError(problem)
        writable = {
            tag.path: connector.name
            for connector in self.connectors
            for tag in connector.tags
            if tag.writable
        }
        for index, setpoint in enumerate(self.setpoints):
            if setpoint.path not in writable:
                raise ValueError(
                    f"setpoints[{index}].path: '{setpoint.path}' is not a writable tag of any "
                    "connector (add writable = true to its tag)"
                )
        sparkplug = self.outputs.sparkplug
        if sparkplug is not None:
            setpoints = {setpoint.path for setpoint in self.setpoints}
            for index, path in enumerate(sparkplug.writable):
                if path not in setpoints:
                    raise ValueError(
                        f"outputs.sparkplug.writable[{index}]: '{path}' is not one of the "
                        "[[setpoints]] (a Sparkplug write goes through the setpoint checks)"
                    )
        return self

    def setpoint_owner(self, path: str) -> str:
        """The name of the connector that writes ``path``."""
        for connector in self.connectors:
            for tag in connector.tags:
                if tag.writable and tag.path == path:
                    return connector.name
        raise KeyError(path)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        file_values = _file_values.get()
        if file_values is not None:
            sources.append(InitSettingsSource(settings_cls, init_kwargs=file_values))
        elif settings_cls.model_config.get("toml_file"):
            sources.append(TomlConfigSettingsSource(settings_cls))
        return tuple(sources)


def line_client_ids(connectors: list[Any], site: str, line: str) -> list[Any]:
    """MQTT and Sparkplug connectors without a ``client_id`` get ``circman5-{site}-{line}-{name}``:
    two lines' instances on one broker never share a session (a shared client id makes the
    broker hand one line's session, subscriptions and queued messages to the other)."""
    named = []
    for connector in connectors:
        if "client_id" in type(connector).model_fields and connector.client_id is None:
            connector = connector.model_copy(
                update={"client_id": f"circman5-{site}-{line}-{connector.name}"}
            )
        named.append(connector)
    return named


def namespace_problems(settings: Settings) -> list[str]:
    """Ways this instance would publish into a namespace it does not own (empty: none)."""
    problems: list[str] = []
    sessions: dict[tuple[str, int, str], int] = {}
    for index, configured in enumerate(settings.connectors):
        session: Any = configured
        if getattr(session, "type", None) in ("mqtt", "sparkplug"):
            key = (session.host, session.port, session.client_id)
            if key in sessions:
                problems.append(
                    f"connectors[{index}].client_id: '{session.client_id}' is also the client id "
                    f"of connectors[{sessions[key]}] on the same broker (one session for both)"
                )
            sessions.setdefault(key, index)
    series, out = settings.outputs.series, settings.outputs.mqtt
    if out is not None and (series.site, series.line) != (out.site, out.line):
        problems.append(
            f"outputs.series names {series.site}/{series.line} but outputs.mqtt names "
            f"{out.site}/{out.line}: one instance publishes for one line"
        )
    if out is None:
        return problems
    for index, configured in enumerate(settings.connectors):
        connector: Any = configured  # an MQTT or Sparkplug connector: host, port, client_id
        if getattr(connector, "type", None) not in ("mqtt", "sparkplug"):
            continue
        same_broker = (connector.host, connector.port) == (out.host, out.port)
        if same_broker and connector.client_id == out.effective_client_id:
            problems.append(
                f"connectors[{index}].client_id: '{connector.client_id}' is also the MQTT "
                "output's client id on the same broker (they would take over each other's "
                "session)"
            )
        for tag in connector.tags if connector.type == "mqtt" else []:
            address = str(getattr(tag, "address", ""))
            if same_broker and _topic_overlaps(address, out.base_topic):
                problems.append(
                    f"connectors[{index}] ({connector.name}): topic '{address}' reads this "
                    f"line's own outputs ({out.base_topic}/...)"
                )
                break
    return problems


def _topic_overlaps(topic_filter: str, base: str) -> bool:
    """Whether ``topic_filter`` matches a topic under ``base`` (MQTT wildcards ``+``, ``#``)."""
    levels = topic_filter.split("/")
    for index, level in enumerate(base.split("/")):
        if index >= len(levels):
            return False
        if levels[index] == "#":
            return True
        if levels[index] not in ("+", level):
            return False
    return len(levels) > len(base.split("/"))


#: The settings file's content while :func:`load_settings` validates it (parsed once; below
#: the keyword overrides and the environment in priority).
_file_values: ContextVar[dict[str, Any] | None] = ContextVar("settings_file_values", default=None)


def load_settings(path: str | Path | None = None, **overrides: Any) -> Settings:
    """Load and validate the service settings from ``path`` (TOML) and the environment."""
    file_label = str(path) if path is not None else "environment (CIRCMAN5_*)"
    values: dict[str, Any] | None = None
    if path is not None:
        try:
            values = tomllib.loads(Path(path).read_text(encoding="utf-8"))
        except FileNotFoundError as err:
            raise ConfigError(file_label, "(file)", "file not found") from err
        except tomllib.TOMLDecodeError as err:
            raise ConfigError(file_label, "(syntax)", f"invalid TOML: {err}") from err
    token = _file_values.set(values)
    try:
        return Settings(**overrides)
    except ValidationError as err:
        raise describe_validation_error(file_label, err) from err
    finally:
        _file_values.reset(token)


def masked(settings: Settings) -> dict[str, Any]:
    """The resolved settings as JSON-ready data, secrets shown as ``**********``."""
    return settings.model_dump(mode="json")
