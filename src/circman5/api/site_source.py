"""What the site page needs from the service: :class:`SiteSource`.

The composition root hands the API a site source built on the MQTT topics the lines publish
(:class:`circman5.sinks.site_watch.SiteWatcher`); the API never talks MQTT itself.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

__all__ = ["SiteSource"]


class SiteSource(Protocol):
    """Every line of the watched sites (from their retained status and state topics)."""

    @property
    def sites(self) -> Sequence[str]:
        """The sites watched."""
        ...

    @property
    def connected(self) -> bool:
        """Whether the source is connected to the broker (the view may be stale when not)."""
        ...

    def lines(self) -> list[dict[str, Any]]:
        """One dict per line: ``site``, ``line``, ``status``, ``online``, ``state_time``,
        ``values``, ``alarms``, ``dashboard``, ..., sorted by site and line."""
        ...

    def state_of(self, site: str, line: str) -> bytes | None:
        """The line's last retained twin state as JSON (None: none known)."""
        ...
