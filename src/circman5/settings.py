"""Service settings: one TOML file plus ``CIRCMAN5_*`` environment variables.

Precedence (highest first): keyword arguments, environment (``CIRCMAN5_SITE``,
``CIRCMAN5_API__PORT`` with ``__`` between nested keys), the TOML file, the defaults.
Credentials are ``SecretStr`` and never printed. Errors name the file, the key and the reason.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from circman5.adapters.base.config_adapter import describe_validation_error
from circman5.errors import ConfigError

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
        if settings_cls.model_config.get("toml_file"):
            sources.append(TomlConfigSettingsSource(settings_cls))
        return tuple(sources)


def load_settings(path: str | Path | None = None, **overrides: Any) -> Settings:
    """Load and validate the service settings from ``path`` (TOML) and the environment."""
    file_label = str(path) if path is not None else "environment (CIRCMAN5_*)"
    settings_cls: type[Settings] = Settings
    if path is not None:
        toml_path = Path(path)
        try:
            tomllib.loads(toml_path.read_text(encoding="utf-8"))
        except FileNotFoundError as err:
            raise ConfigError(file_label, "(file)", "file not found") from err
        except tomllib.TOMLDecodeError as err:
            raise ConfigError(file_label, "(syntax)", f"invalid TOML: {err}") from err

        class FileSettings(Settings):
            model_config = SettingsConfigDict(toml_file=toml_path)

        settings_cls = FileSettings
    try:
        return settings_cls(**overrides)
    except ValidationError as err:
        raise describe_validation_error(file_label, err) from err


def masked(settings: Settings) -> dict[str, Any]:
    """The resolved settings as JSON-ready data, secrets shown as ``**********``."""
    return settings.model_dump(mode="json")
