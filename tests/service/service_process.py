"""``circman5 run`` as a child process, and a QoS 1 sequence publisher, for the e2e tests."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

from simulators.external import http_status, wait_until


class ServiceProcess:
    """The service on ``config`` with its data under ``data``; log appended to ``log``;
    ``role``: ``circman5 run --role``."""

    def __init__(
        self, config: Path, data: Path, log: Path, health_port: int, role: str = "all"
    ) -> None:
        self.config = config
        self.role = role
        self.env = dict(os.environ, CIRCMAN5_DATA_DIR=str(data))
        self.log = log
        self.health_port = health_port
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log.open("a") as log:
            self.process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "circman5",
                    "run",
                    "--config",
                    str(self.config),
                    "--role",
                    self.role,
                ],
                env=self.env,
                stderr=log,
            )

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.health_port}{path}"

    def wait_ready(self, timeout: float = 60.0) -> None:
        wait_until(lambda: http_status(self.url("/ready")) == 200, timeout, "/ready to say 200")

    def ready(self) -> dict[str, Any]:
        try:
            with urllib.request.urlopen(self.url("/ready"), timeout=5) as response:
                return dict(json.loads(response.read()))
        except urllib.error.HTTPError as err:
            return dict(json.loads(err.read()))

    def metrics(self) -> str:
        with urllib.request.urlopen(self.url("/metrics"), timeout=5) as response:
            return str(response.read().decode())

    def kill(self) -> None:
        """SIGKILL: no shutdown, no last commit, no last acknowledgement."""
        if self.process is not None:
            self.process.kill()
            self.process.wait(30)
            self.process = None

    def stop(self) -> int:
        """SIGTERM and the exit code."""
        if self.process is None:
            return 0
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(60)
        finally:
            self.process = None

    def log_tail(self, chars: int = 4000) -> str:
        return self.log.read_text(errors="replace")[-chars:] if self.log.exists() else ""


MAX_MESSAGES = 60_000  # below paho's 65,535 message ids: each id names one message


class SequencePublisher:
    """Publishes ``{"seq": n, "ts": <ms>}`` with QoS 1 on a thread at about ``rate`` per second
    (at most ``MAX_MESSAGES``) and records which the broker acknowledged (PUBACK)."""

    def __init__(self, port: int, topic: str, rate: float = 1000.0) -> None:
        self.topic = topic
        self.rate = rate
        self._mids: list[int] = []  # the message id of each sequence number
        self._acked_mids: list[int] = []  # appended by paho's thread (no lock: see on_publish)
        self._stop = threading.Event()
        self.start_ms = int(time.time() * 1000)
        client = paho.Client(CallbackAPIVersion.VERSION2, client_id="seq-publisher")
        client.max_inflight_messages_set(1000)
        client.max_queued_messages_set(0)
        client.on_publish = self._on_publish
        client.connect("127.0.0.1", port)
        client.loop_start()
        self._client = client
        self._thread = threading.Thread(target=self._run, daemon=True)

    @property
    def sent(self) -> int:
        return len(self._mids)

    def _on_publish(self, client: Any, userdata: Any, mid: int, reason: Any, props: Any) -> None:
        # paho holds its message lock here: taking one of ours could deadlock with publish()
        self._acked_mids.append(mid)

    def _run(self) -> None:
        began = time.monotonic()
        seq = 0
        while not self._stop.is_set() and seq < MAX_MESSAGES:
            due = min(MAX_MESSAGES, int((time.monotonic() - began) * self.rate))
            while seq < due:
                # one millisecond per message: every point its own timestamp in the server
                payload = b'{"seq": %d, "ts": %d}' % (seq, self.start_ms + seq)
                self._mids.append(self._client.publish(self.topic, payload, qos=1).mid)
                seq += 1
            time.sleep(0.005)

    def start(self) -> None:
        self._thread.start()

    def acked(self) -> set[int]:
        """The sequence numbers the broker acknowledged."""
        done = set(self._acked_mids)
        return {seq for seq, mid in enumerate(self._mids) if mid in done}

    def stop(self) -> None:
        """Stop publishing and wait until the broker acknowledged everything sent."""
        self._stop.set()
        self._thread.join(10)
        wait_until(lambda: len(self._acked_mids) >= self.sent, 60, "every PUBACK")
        self._client.disconnect()
        self._client.loop_stop()


class RetainedState:
    """Follows the twin state the service publishes (JSON on ``topic``)."""

    def __init__(self, port: int, topic: str) -> None:
        self.latest: dict[str, Any] = {}
        client = paho.Client(CallbackAPIVersion.VERSION2, client_id="")
        client.on_connect = lambda c, *args: c.subscribe(topic, 1)
        client.on_message = self._on_message
        client.connect("127.0.0.1", port)
        client.loop_start()
        self._client = client

    def _on_message(self, client: Any, userdata: Any, message: Any) -> None:
        self.latest = json.loads(message.payload)

    def value(self, *keys: str) -> Any:
        node: Any = self.latest
        for key in keys:
            node = node.get(key) if isinstance(node, dict) else None
        return node

    def close(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()


class EventLog:
    """Every event the service publishes on ``{base}/events/#`` (a persistent QoS 1 session
    that reconnects quickly, so a broker restart loses nothing)."""

    def __init__(self, port: int, base: str) -> None:
        self.events: list[dict[str, Any]] = []
        client = paho.Client(
            CallbackAPIVersion.VERSION2, client_id="event-log", clean_session=False
        )
        client.reconnect_delay_set(1, 1)
        client.on_connect = lambda c, *args: c.subscribe(f"{base}/events/#", 1)
        client.on_message = self._on_message
        client.connect("127.0.0.1", port)
        client.loop_start()
        self._client = client

    def _on_message(self, client: Any, userdata: Any, message: Any) -> None:
        self.events.append(json.loads(message.payload))

    def of_type(self, error_type: str, outbox: str) -> list[dict[str, Any]]:
        return [
            e["details"]
            for e in list(self.events)
            if e.get("details", {}).get("error_type") == error_type
            and e["details"].get("outbox") == outbox
        ]

    def close(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()
