"""What the service process knows about one ingestion worker (for health and metrics)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class WorkerStatus:
    """One worker process of a connector: alive, restarts, what it received and keeps on disk.

    ``messages`` counts the samples the worker decoded (all its incarnations);
    ``outbox_depth_points`` what waits in its outbox (last report); ``tags`` the OPC UA tags its
    session monitors (its share; None for MQTT, whose broker shares the messages).
    """

    connector: str
    index: int
    pid: int | None = None
    alive: bool = False
    connected: bool = False
    restarts: int = 0
    messages: int = 0
    outbox_depth_points: int = 0
    last_exit: str | None = None
    tags: int | None = None
