"""What the service process hands a worker at its start, and the frames the worker sends back.

The job travels as one pickle on the worker's stdin (it carries secrets such as the broker's
password, so it never goes through the command line or the environment); the worker keeps reading
stdin and stops when it closes (the service stopped or died). Frames go back on a pipe as one JSON
line each (orjson): ``{"s": [[address, path, value, timestamp_ns, quality], ...],
"c": <ConnectorStatus>, "o": <OutboxMetrics>, "p": [[severity, type, message, details], ...]}``.
"""

from __future__ import annotations

import pickle
from dataclasses import dataclass
from typing import IO

from circman5.connectors.mqtt.config import MqttConnectorSettings
from circman5.connectors.opcua.config import OpcUaConnectorSettings
from circman5.sinks.config import OutputSettings

#: The connectors that can run as ingestion workers: MQTT (a shared subscription) and OPC UA
#: (the tags split into shares, one session per worker).
PooledSettings = MqttConnectorSettings | OpcUaConnectorSettings


@dataclass(frozen=True)
class WorkerJob:
    """Worker ``index`` (1-based) of the connector ``connector``."""

    connector: PooledSettings
    outputs: OutputSettings
    index: int
    tick_s: float = 0.05
    log_level: str = "INFO"
    log_format: str = "plain"
    shutdown_budget_s: float = 5.0

    def dumps(self) -> bytes:
        return pickle.dumps(self, protocol=pickle.HIGHEST_PROTOCOL)

    @staticmethod
    def load(stream: IO[bytes]) -> WorkerJob:
        job = pickle.load(stream)  # from our own parent process, over a private pipe
        if not isinstance(job, WorkerJob):
            raise TypeError(f"expected a WorkerJob, got {type(job).__name__}")
        return job
