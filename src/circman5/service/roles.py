"""``circman5 run --role``: which parts of the service each role starts, in one table.

=============  =========  =====  =========  ======  ====  ==============
role           ingestion  API    site view  health  jobs  needs database
=============  =========  =====  =========  ======  ====  ==============
``all``        yes        yes    if enabled yes     no    no (default)
``edge``       yes        no     no         yes     no    no
``api``        no         yes    always     yes     no    yes
``processing`` no         no     no         no      yes   yes
=============  =========  =====  =========  ======  ====  ==============

*ingestion* is one line's edge chain: connectors, synchronization, the twin's checks, the time
series, the MQTT events/state outputs, Sparkplug, batches and KPIs; its events go to the
configured database. The ``edge`` role keeps the health port (``/health``, ``/ready``,
``/metrics``): an edge box runs unattended, and the supervisor (systemd, compose, Kubernetes)
and Prometheus need liveness, readiness and counts without the HMI. The ``api`` role serves the
HMI and REST/WebSocket API with no connectors: events, scenarios, simulation runs, users and jobs
from PostgreSQL, every line's live values, status and alarms from the MQTT topics through the
site view (``[site_view]``'s broker, started whether or not ``enabled`` is set). ``processing``
runs jobs from the PostgreSQL queue (:mod:`circman5.service.processing`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Final, Literal, get_args

from circman5.errors import ConfigError

if TYPE_CHECKING:
    from circman5.settings import Settings

__all__ = ["ROLES", "ROLE_PARTS", "Role", "RoleParts", "role_parts"]

Role = Literal["all", "edge", "api", "processing"]
ROLES: Final[tuple[Role, ...]] = get_args(Role)


@dataclass(frozen=True)
class RoleParts:
    """What one role starts (see the module docstring)."""

    ingestion: bool
    api: bool
    #: ``configured``: as ``[site_view] enabled`` says; ``always``; ``never``.
    site_view: Literal["configured", "always", "never"]
    health: bool
    jobs: bool
    #: Why the role cannot run without ``[database] url`` (None: it can).
    database_needed: str | None = None

    def wants_site_view(self, enabled: bool) -> bool:
        return self.site_view == "always" or (self.site_view == "configured" and enabled)


ROLE_PARTS: Final[dict[Role, RoleParts]] = {
    "all": RoleParts(ingestion=True, api=True, site_view="configured", health=True, jobs=False),
    "edge": RoleParts(ingestion=True, api=False, site_view="never", health=True, jobs=False),
    "api": RoleParts(
        ingestion=False,
        api=True,
        site_view="always",
        health=True,
        jobs=False,
        database_needed="the api role reads events, scenarios, users and jobs from PostgreSQL: "
        "set [database] url",
    ),
    "processing": RoleParts(
        ingestion=False,
        api=False,
        site_view="never",
        health=False,
        jobs=True,
        database_needed="the processing role takes jobs from PostgreSQL: set [database] url",
    ),
}


def role_parts(role: str, settings: Settings, settings_file: str = "settings") -> RoleParts:
    """The parts of ``role``; :class:`ConfigError` naming the file and key when the role
    needs what the settings lack (an unknown role, no ``[database] url``)."""
    if role not in ROLE_PARTS:
        raise ConfigError(settings_file, "--role", f"'{role}' is not one of {', '.join(ROLES)}")
    parts = ROLE_PARTS[role]
    if parts.database_needed is not None and settings.database.url is None:
        raise ConfigError(settings_file, "database.url", parts.database_needed)
    return parts
