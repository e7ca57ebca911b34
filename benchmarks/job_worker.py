"""A processing worker for ``bench_database``: ``python -m benchmarks.job_worker DSN ID``.

Runs trivial ``square`` jobs (the queue's own cost is what is measured) until SIGTERM.
"""

from __future__ import annotations

import signal
import sys
import threading
from typing import Any

from circman5.storage.jobs import JobQueue, JobWorker
from circman5.storage.postgres import PostgresDatabase


def main(dsn: str, worker_id: str) -> None:
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())

    def square(payload: dict[str, Any]) -> dict[str, Any]:
        return {"square": payload["n"] ** 2}

    with PostgresDatabase(dsn, max_connections=3) as database:
        worker = JobWorker(JobQueue(database), {"square": square}, worker_id=worker_id, poll_s=0.01)
        print("ready", flush=True)
        worker.run(stop)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
