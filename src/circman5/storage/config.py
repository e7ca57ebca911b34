"""``[database]`` in the service TOML: which backend holds the twin's tables.

Without ``url`` (the default) the twin keeps its SQLite files under the data directory, as
always. ``url = "postgresql://user@host:5432/circman5"`` puts events, scenarios and simulation
runs in PostgreSQL; the password comes from ``CIRCMAN5_DATABASE__PASSWORD`` (or ``password``
in the file, which is discouraged), never from the URL.
"""

from __future__ import annotations

from typing import Annotated
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

__all__ = ["DatabaseSettings"]

_SCHEMES = ("postgresql", "postgres")


class DatabaseSettings(BaseModel):
    """The twin's database: SQLite files (no ``url``) or a PostgreSQL DSN."""

    model_config = ConfigDict(extra="forbid")

    url: str | None = None
    password: SecretStr | None = None
    min_connections: Annotated[int, Field(ge=0, le=100)] = 1
    max_connections: Annotated[int, Field(ge=1, le=100)] = 8
    connect_timeout_s: Annotated[float, Field(gt=0, le=300)] = 10.0
    #: How long a processing worker that stopped answering keeps its job before another
    #: worker retries it (its heartbeat renews the lease every third of this).
    job_lease_s: Annotated[float, Field(gt=0, le=3600)] = 30.0

    @field_validator("url")
    @classmethod
    def _postgres_dsn(cls, url: str | None) -> str | None:
        if url is None or url.strip() in ("", "sqlite"):
            return None
        parts = urlsplit(url)
        if parts.scheme not in _SCHEMES:
            raise ValueError(
                f"'{parts.scheme or url}' is not a PostgreSQL URL: write "
                "postgresql://user@host:5432/dbname (leave url out for the SQLite files)"
            )
        if parts.password is not None:
            raise ValueError(
                "the URL holds a password: remove it and set CIRCMAN5_DATABASE__PASSWORD"
            )
        if not parts.hostname:
            raise ValueError("the URL names no host: postgresql://user@host:5432/dbname")
        try:
            parts.port  # noqa: B018 - raises for a port that is not a number in range
        except ValueError as err:
            raise ValueError(f"bad port: {err}") from None
        if not parts.path.strip("/"):
            raise ValueError("the URL names no database: postgresql://user@host:5432/dbname")
        return url

    @model_validator(mode="after")
    def _pool_bounds(self) -> DatabaseSettings:
        if self.min_connections > self.max_connections:
            raise ValueError(
                f"min_connections {self.min_connections} > max_connections {self.max_connections}"
            )
        return self

    @property
    def backend(self) -> str:
        """``sqlite`` or ``postgresql``."""
        return "sqlite" if self.url is None else "postgresql"
