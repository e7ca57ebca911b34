"""What the jobs routes need from the service: :class:`JobQueueSource`.

The composition root hands the API the PostgreSQL job queue
(:class:`circman5.storage.jobs.JobQueue`) when ``[database] url`` is set; the processing
workers (``circman5 run --role processing``) take the jobs from it. The API never opens the
database itself.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol

__all__ = ["JobQueueSource", "JobRecord"]


class JobRecord(Protocol):
    """A job as stored."""

    @property
    def id(self) -> int: ...

    @property
    def kind(self) -> str: ...

    @property
    def payload(self) -> dict[str, Any]: ...

    def to_dict(self) -> dict[str, Any]:
        """``id``, ``kind``, ``payload``, ``status``, ``attempts``, ``worker``, ``result``,
        ``error``, ``created_at``, ``finished_at``."""
        ...


class JobQueueSource(Protocol):
    """The shared job queue (blocking calls: the routes run them in a worker thread)."""

    def submit(self, kind: str, payload: Mapping[str, Any], max_attempts: int = 3) -> int: ...

    def get(self, job_id: int) -> JobRecord | None: ...

    def recent(self, limit: int = 50, kind: str | None = None) -> Sequence[JobRecord]: ...
