"""What a connector reports about itself: :class:`ConnectorStatus`."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

__all__ = ["ConnectorStatus"]


@dataclass
class ConnectorStatus:
    """What a connector reports about itself (read-only for everyone but the connector).

    Counters only grow. ``stale_tags`` is the number of tags currently marked stale or bad by
    the connector itself. Times are Unix seconds. ``connect_attempts`` counts connection
    attempts (successful or not), ``connect_failures`` the failed ones; ``last_error`` is the
    latest failure reason (shown by ``/ready`` while not connected). ``timestamps_replaced`` /
    ``timestamps_rejected``: source timestamps outside the window (see
    :mod:`circman5.connectors.timestamps`). ``topics_refused``: messages whose wildcard captures
    (OPC UA: discovered nodes whose browse names) cannot make a twin path;
    ``paths_over_limit``: messages dropped because they would create a twin path beyond the
    connector's wildcard path limit (OPC UA: discovered nodes beyond a rule's ``max_nodes``).
    """

    name: str
    protocol: str
    connected: bool = False
    last_error: str | None = None
    last_error_at: float | None = None
    connected_since: float | None = None
    samples_in: int = 0
    dropped: int = 0
    malformed: int = 0
    stale_tags: int = 0
    reconnects: int = 0
    connect_attempts: int = 0
    connect_failures: int = 0
    timestamps_replaced: int = 0
    timestamps_rejected: int = 0
    topics_refused: int = 0
    paths_over_limit: int = 0
    writes: int = 0
    write_errors: int = 0
    extra: dict[str, object] = field(default_factory=dict)

    def snapshot(self) -> dict[str, object]:
        """A JSON-ready copy."""
        return asdict(self)
