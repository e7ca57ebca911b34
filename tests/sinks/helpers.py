"""Test helpers of the output tests: a scriptable real HTTP server, server queries, and a reader
for the output of client processes (mosquitto_sub, the writer scripts)."""

from __future__ import annotations

import asyncio
import gzip
import json
import queue
import subprocess
import threading
import time
import urllib.parse
import urllib.request
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Request:
    at: float
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes
    status: int = 0  # the status the server answered with


Reply = tuple[int, dict[str, str], bytes]
ReplyRule = Reply | Callable[[Request], Reply]


@dataclass
class ScriptedHTTPServer:
    """A real HTTP server on a free loopback port.

    ``respond`` decides each answer; without it the answers come from ``replies`` in turn (the
    last one repeats; a callable entry is called with the request). Every request is recorded
    (monotonic arrival time, path, query, headers, body, the status answered).
    """

    respond: Callable[[Request], Reply] | None = None
    replies: list[ReplyRule] = field(default_factory=lambda: [(204, {}, b"")])
    requests: list[Request] = field(default_factory=list)

    def _answer(self, request: Request) -> Reply:
        if self.respond is not None:
            return self.respond(request)
        rule = self.replies.pop(0) if len(self.replies) > 1 else self.replies[0]
        return rule(request) if callable(rule) else rule

    def __post_init__(self) -> None:
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                body = self.rfile.read(length)
                if self.headers.get("Content-Encoding") == "gzip":
                    body = gzip.decompress(body)
                url = urllib.parse.urlsplit(self.path)
                request = Request(
                    time.monotonic(),
                    url.path,
                    urllib.parse.parse_qs(url.query),
                    dict(self.headers.items()),
                    body,
                )
                owner.requests.append(request)
                status, headers, reply = owner._answer(request)
                request.status = status
                self.send_response(status)
                for key, value in headers.items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.port = int(self._server.server_address[1])
        self.url = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)


def vm_export(url: str, selector: str) -> list[dict[str, Any]]:
    """VictoriaMetrics ``/api/v1/export`` for one series selector: one dict per series."""
    query = urllib.parse.urlencode({"match[]": selector})
    with urllib.request.urlopen(f"{url}/api/v1/export?{query}", timeout=30) as response:
        return [json.loads(line) for line in response.read().decode().splitlines() if line]


def vm_values(url: str, selector: str) -> list[float]:
    """Every value of every series matching ``selector``."""
    return [v for series in vm_export(url, selector) for v in series["values"]]


def delivery_gaps(values: list[float], expected: int, may_repeat: int = 0) -> str:
    """'' when ``values`` holds each of 0..expected-1, else a short account of what is wrong.

    Delivery is at-least-once: a request whose answer was lost (the server stopped while it
    was in flight) is sent again, and a server without deduplication then stores its points
    twice. ``may_repeat`` is how many repeated points that can explain (one request's worth);
    a missing or foreign value is always wrong. Cheap on a million points (pytest's own diff
    of two lists that size runs for minutes)."""
    counts = Counter(float(v) for v in values)
    missing = [i for i in range(expected) if counts[float(i)] == 0]
    repeated = sorted(v for v, n in counts.items() if n > 1)
    foreign = sorted(v for v in counts if not (v.is_integer() and 0 <= v < expected))
    if not (missing or foreign or len(repeated) > may_repeat):
        return ""
    return (
        f"{len(values)} values for {expected} points: {len(missing)} missing {missing[:5]}, "
        f"{len(repeated)} repeated {repeated[:5]} (at most {may_repeat} may repeat), "
        f"{len(foreign)} unexpected {foreign[:5]}"
    )


def influx1_query(url: str, db: str, q: str) -> list[dict[str, Any]]:
    """InfluxQL through ``/query`` (nanosecond epochs); the series of the first result."""
    query = urllib.parse.urlencode({"db": db, "q": q, "epoch": "ns"})
    with urllib.request.urlopen(f"{url}/query?{query}", timeout=10) as response:
        result = json.loads(response.read())["results"][0]
    assert "error" not in result, result
    return list(result.get("series", []))


def influx1_create_db(url: str, db: str) -> None:
    body = urllib.parse.urlencode({"q": f'CREATE DATABASE "{db}"'}).encode()
    urllib.request.urlopen(urllib.request.Request(f"{url}/query", data=body), timeout=10).close()


class LineReader:
    """Collects the stdout lines of a child process on a thread; wait for lines by condition."""

    def __init__(self, process: subprocess.Popen[str]) -> None:
        assert process.stdout is not None
        self.process = process
        self.lines: list[str] = []
        self.ended = False
        self._queue: queue.Queue[str | None] = queue.Queue()
        self._thread = threading.Thread(target=self._pump, daemon=True)
        self._thread.start()

    def _pump(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self._queue.put(line.rstrip("\n"))
        self._queue.put(None)

    def _take(self, timeout: float) -> None:
        """Move arrived lines to ``lines``, waiting up to ``timeout`` for the first."""
        if self.ended:
            return
        try:
            item = self._queue.get(timeout=timeout)
            while True:
                if item is None:
                    self.ended = True
                    return
                self.lines.append(item)
                item = self._queue.get_nowait()
        except queue.Empty:
            return

    def wait_for(self, condition: Callable[[list[str]], bool], timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        self._take(0)
        while not condition(self.lines):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"timed out waiting for {what}; last lines {self.lines[-5:]}")
            if self.ended:
                raise AssertionError(f"process ended before {what}; last lines {self.lines[-5:]}")
            self._take(min(remaining, 0.1))

    def until_end(self, timeout: float) -> list[str]:
        """Every line, once the process closed its output."""
        self.wait_for(lambda _: self.ended, timeout, "the end of the output")
        return self.lines


async def wait_async(condition: Callable[[], bool], within: float, what: str) -> None:
    """Poll ``condition`` on the event loop until it holds (TimeoutError after ``within`` s)."""
    deadline = time.monotonic() + within
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {within:.1f}s waiting for {what}")
        await asyncio.sleep(0.02)
