"""An independent Sparkplug B host for the edge node's tests: MQTT.js and Eclipse Tahu's
``sparkplug-payload`` (protobufjs) in ``tests/sparkplug_node/host.js``, run as a process.

The product encodes with the ``protobuf`` package; this host decodes with protobufjs and sends
commands encoded by Tahu, so both sides cannot share a misreading of the payload definition.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import queue
import subprocess
import threading
import time
from collections.abc import Callable
from typing import Any

from tests.ingestion.sparkplug_edge import NODE_DIR, _node_binary, ensure_node_modules

Message = dict[str, Any]


class SparkplugHost:
    """``host.js`` on ``url`` for ``group``: every message it printed is in :attr:`messages`."""

    def __init__(self, url: str, group: str) -> None:
        ensure_node_modules()
        self._process = subprocess.Popen(
            [_node_binary(), str(NODE_DIR / "host.js"), url, group],
            cwd=NODE_DIR,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            bufsize=1,
        )
        self._lines: queue.Queue[Message] = queue.Queue()
        self.messages: list[Message] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self._process.stdout is not None
        for line in self._process.stdout:
            if line.strip():
                self._lines.put(json.loads(line))

    def _pump(self, timeout: float) -> None:
        with contextlib.suppress(queue.Empty):
            self.messages.append(self._lines.get(timeout=max(0.0, timeout)))
        while True:  # everything else that is already there
            try:
                self.messages.append(self._lines.get_nowait())
            except queue.Empty:
                return

    def _stderr(self) -> str:
        if self._process.poll() is None:
            return "host still running"
        assert self._process.stderr is not None
        return f"host exited {self._process.returncode}: {self._process.stderr.read()[-2000:]}"

    def wait_for(
        self,
        predicate: Callable[[Message], bool],
        within: float = 15.0,
        start: int = 0,
        what: str = "a message",
    ) -> tuple[int, Message]:
        """The index and the first message from ``start`` on that satisfies ``predicate``."""
        deadline = time.monotonic() + within
        checked = start
        while True:
            for index in range(checked, len(self.messages)):
                if predicate(self.messages[index]):
                    return index, self.messages[index]
            checked = max(checked, len(self.messages))
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                seen = [(m.get("type"), m.get("seq")) for m in self.messages if "type" in m]
                raise AssertionError(f"no {what} within {within} s; seen {seen}; {self._stderr()}")
            self._pump(min(remaining, 0.5))

    def wait_message(
        self, kind: str, start: int = 0, within: float = 15.0, **match: Any
    ) -> tuple[int, Message]:
        """The first Sparkplug message of ``kind`` (NBIRTH, NDATA, ...) from ``start`` on."""

        def fits(message: Message) -> bool:
            return message.get("type") == kind and all(
                message.get(key) == value for key, value in match.items()
            )

        return self.wait_for(fits, within, start, what=f"{kind} {match or ''}")

    def send(self, op: str, within: float = 15.0, **fields: Any) -> None:
        assert self._process.stdin is not None
        self._process.stdin.write(json.dumps({"op": op, **fields}) + "\n")
        self._process.stdin.flush()
        self.wait_for(lambda m: m.get("ok") == op or "error" in m, within, what=f"ok {op}")
        errors = [m["error"] for m in self.messages if "error" in m]
        assert not errors, errors

    async def asend(self, op: str, **fields: Any) -> None:
        await asyncio.to_thread(self.send, op, **fields)

    async def await_message(
        self, kind: str, start: int = 0, within: float = 15.0, **match: Any
    ) -> tuple[int, Message]:
        return await asyncio.to_thread(self.wait_message, kind, start, within, **match)

    async def await_for(
        self, predicate: Callable[[Message], bool], within: float = 15.0, start: int = 0
    ) -> tuple[int, Message]:
        return await asyncio.to_thread(self.wait_for, predicate, within, start)

    def close(self) -> None:
        if self._process.poll() is None:
            self._process.kill()
        self._process.wait(10)
        for stream in (self._process.stdin, self._process.stdout, self._process.stderr):
            if stream is not None:
                stream.close()


def metrics_by_name(message: Message) -> dict[str, Message]:
    return {m["name"]: m for m in message["metrics"]}


def bd_seq_of(message: Message) -> int:
    return int(metrics_by_name(message)["bdSeq"]["value"])
