"""Fixtures of the output tests."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from simulators.external import Mosquitto
from tests.sinks.helpers import LineReader


@pytest.fixture
def broker(mosquitto: Mosquitto) -> Mosquitto:
    """The broker of the output tests: the shared mosquitto fixture (persistence works)."""
    return mosquitto


class Subscriber:
    """A running ``mosquitto_sub -F %j``; ``messages`` are its parsed JSON lines."""

    def __init__(self, process: subprocess.Popen[str]) -> None:
        self.process = process
        self.reader = LineReader(process)

    @property
    def messages(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.reader.lines if line.startswith("{")]

    def on(self, topic: str) -> list[dict[str, Any]]:
        return [m for m in self.messages if m["topic"] == topic]

    def wait_for(
        self, condition: Callable[[list[dict[str, Any]]], bool], timeout: float, what: str
    ) -> None:
        self.reader.wait_for(lambda _: condition(self.messages), timeout, what)


@pytest.fixture
def subscribe(broker: Mosquitto) -> Iterator[Callable[..., Subscriber]]:
    """Start ``mosquitto_sub`` on topic filters; returns once it is subscribed (a probe message
    went through; without ``probe`` at once, e.g. for ``--retained-only``). Extra arguments go
    to mosquitto_sub."""
    started: list[subprocess.Popen[str]] = []

    def start(
        *topics: str, version: str = "mqttv5", args: tuple[str, ...] = (), probe: bool = True
    ) -> Subscriber:
        probe_topic = f"probe/{len(started)}"
        command = ["mosquitto_sub", "-p", str(broker.port), "-V", version, "-q", "1"]
        for topic in (*topics, probe_topic) if probe else topics:
            command += ["-t", topic]
        process = subprocess.Popen([*command, "-F", "%j", *args], stdout=subprocess.PIPE, text=True)
        started.append(process)
        sub = Subscriber(process)
        if not probe:
            return sub
        for _ in range(100):
            subprocess.run(
                ["mosquitto_pub", "-p", str(broker.port), "-t", probe_topic, "-m", "p"], check=True
            )
            try:
                sub.wait_for(
                    lambda ms: any(m["topic"] == probe_topic for m in ms), 0.1, "the probe"
                )
                return sub
            except TimeoutError:
                continue
        raise TimeoutError("mosquitto_sub did not subscribe")

    yield start
    for process in started:
        process.terminate()
        process.wait(5)
