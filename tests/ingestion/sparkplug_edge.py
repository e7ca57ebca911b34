"""An independent Sparkplug B edge node for the tests: Eclipse Tahu's Node.js ``sparkplug-client``
(``tests/sparkplug_node/edge_node.js``, protobufjs), run as a process and driven over stdin.

The product decodes with the ``protobuf`` package and its own state machine; this edge node
encodes with protobufjs and Tahu's reference client, so a shared misreading of the spec cannot
make both sides agree by accident.
"""

from __future__ import annotations

import asyncio
import json
import queue
import shutil
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import pytest

NODE_DIR = Path(__file__).resolve().parents[1] / "sparkplug_node"


def _node_binary() -> str:
    node = shutil.which("node") or shutil.which("nodejs")
    if node is None:
        pytest.fail("Node.js is missing: apt-get install nodejs npm", pytrace=False)
    return node


def ensure_node_modules() -> None:
    """``npm ci`` in tests/sparkplug_node once, if its node_modules are not there yet."""
    if (NODE_DIR / "node_modules" / "sparkplug-client").is_dir():
        return
    npm = shutil.which("npm")
    if npm is None:
        pytest.fail("npm is missing: apt-get install npm", pytrace=False)
    subprocess.run(
        [npm, "ci", "--no-audit", "--no-fund", "--ignore-scripts"],
        cwd=NODE_DIR,
        check=True,
        capture_output=True,
        timeout=300,
    )


class EdgeNode:
    """One edge node process: ``send`` a command and wait for its ack; ``event`` waits for one."""

    def __init__(self, url: str, group: str, edge_node: str) -> None:
        ensure_node_modules()
        self.group = group
        self.edge_node = edge_node
        self._process = subprocess.Popen(
            [_node_binary(), str(NODE_DIR / "edge_node.js"), url, group, edge_node],
            cwd=NODE_DIR,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            bufsize=1,
        )
        self._lines: queue.Queue[dict[str, Any]] = queue.Queue()
        self.events: list[dict[str, Any]] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self._process.stdout is not None
        for line in self._process.stdout:
            line = line.strip()
            if line:
                self._lines.put(json.loads(line))

    def _next(self, deadline: float) -> dict[str, Any]:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise AssertionError(f"edge node {self.edge_node}: no reply ({self._stderr()})")
        try:
            message = self._lines.get(timeout=remaining)
        except queue.Empty:
            raise AssertionError(
                f"edge node {self.edge_node}: no reply ({self._stderr()})"
            ) from None
        self.events.append(message)
        return message

    def _stderr(self) -> str:
        if self._process.poll() is None:
            return "still running"
        assert self._process.stderr is not None
        return f"exited {self._process.returncode}: {self._process.stderr.read()[-2000:]}"

    def wait_event(self, name: str, within: float = 15.0) -> dict[str, Any]:
        """The next ``{"event": name}`` (earlier ones already seen count too)."""
        for index, seen in enumerate(self.events):
            if seen.get("event") == name:
                del self.events[index]
                return seen
        deadline = time.monotonic() + within
        while True:
            message = self._next(deadline)
            if message.get("event") == name:
                self.events.remove(message)
                return message

    def send(self, op: str, within: float = 15.0, **fields: Any) -> None:
        assert self._process.stdin is not None
        self._process.stdin.write(json.dumps({"op": op, **fields}) + "\n")
        self._process.stdin.flush()
        deadline = time.monotonic() + within
        while True:
            message = self._next(deadline)
            if message.get("ok") == op:
                self.events.remove(message)
                return
            if "error" in message:
                raise AssertionError(f"edge node: {message['error']}")

    async def asend(self, op: str, **fields: Any) -> None:
        await asyncio.to_thread(self.send, op, **fields)

    async def await_event(self, name: str, within: float = 15.0) -> dict[str, Any]:
        return await asyncio.to_thread(self.wait_event, name, within)

    def kill(self) -> None:
        """End the process abruptly: the broker publishes its will (NDEATH)."""
        self._process.kill()
        self._process.wait(10)

    def close(self) -> None:
        if self._process.poll() is None:
            self._process.kill()
        self._process.wait(10)
        for stream in (self._process.stdin, self._process.stdout, self._process.stderr):
            if stream is not None:
                stream.close()
