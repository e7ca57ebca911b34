"""Ingestion worker processes: one connector's work shared among N processes.

MQTT: the connector's subscription shared through MQTT 5 shared subscriptions. OPC UA: the
connector's tags split into N shares by a stable hash of each node's address
(:mod:`circman5.connectors.opcua.shares`), each worker with its own session and subscription on
its share (discovery: each worker browses and keeps its share). Everything else below is the
same for both: one worker process, the connector built from the job's settings by the connector
factory.

``workers = N`` (N > 1) on an MQTT connector replaces the in-process connector by an
:class:`~circman5.service.workers.pool.IngestionWorkerPool`. It starts N processes
(``python -m circman5.service.workers.process``); each one runs the ordinary
:class:`~circman5.connectors.mqtt.client.MqttConnector` on an MQTT 5 shared subscription
(``$share/<group>/<filter>``, so the broker gives each message to one of them), stores every sample
through an outbox of its own (``<data dir>/outbox/<sink>-<connector>-worker-<k>.sqlite3``,
acknowledging QoS 1/2 messages once they are on disk) and forwards only the latest sample per
twin path, every ``tick``, to the service process, where the pool hands them to the
synchronization engine as if it were the connector. The twin stays one state in one process.

The service process restarts a worker that dies (with backoff, logged and published as an error
event); the restarted worker opens the same outbox and MQTT session, so what the dead one stored
is delivered and what it had not acknowledged is sent again by the broker.
"""

from circman5.service.workers.pool import (
    IngestionWorkerPool,
    create_service_connectors,
    stored_by_workers,
    worker_outboxes,
    worker_statuses,
)
from circman5.service.workers.status import WorkerStatus

__all__ = [
    "IngestionWorkerPool",
    "WorkerStatus",
    "create_service_connectors",
    "stored_by_workers",
    "worker_outboxes",
    "worker_statuses",
]
