"""``/health``, ``/ready`` and ``/metrics`` on a small HTTP port of their own.

Kept apart from the API so probes and Prometheus keep answering when the API is busy or off.
``/health``: the process is alive. ``/ready``: every connector connected and every sink healthy,
else 503 with the reasons. ``/metrics``: Prometheus text format.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Callable

logger = logging.getLogger(__name__)

Readiness = Callable[[], list[str]]
"""Returns the reasons the service is not ready (empty: ready)."""


class HealthServer:
    """A minimal HTTP/1.1 responder (GET only, one request per connection)."""

    def __init__(
        self,
        readiness: Readiness,
        metrics: Callable[[], bytes],
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self._readiness = readiness
        self._metrics = metrics
        self.host = host
        self.port = port
        self.started = asyncio.Event()

    async def run(self) -> None:
        server = await asyncio.start_server(self._handle, self.host, self.port)
        self.port = server.sockets[0].getsockname()[1]
        logger.info("health and metrics on http://%s:%d", self.host, self.port)
        self.started.set()
        async with server:
            await server.serve_forever()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            request_line = await asyncio.wait_for(reader.readline(), timeout=5)
            while (await asyncio.wait_for(reader.readline(), timeout=5)) not in (b"\r\n", b""):
                pass
            parts = request_line.decode("latin-1").split()
            method, target = (parts[0], parts[1]) if len(parts) >= 2 else ("", "")
            status, content_type, body = self._respond(method, target.split("?", 1)[0])
            head = (
                f"HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\n"
                f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
            )
            writer.write(head.encode("latin-1") + body)
            await writer.drain()
        except (TimeoutError, ConnectionError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

    def _respond(self, method: str, path: str) -> tuple[str, str, bytes]:
        if method != "GET":
            return "405 Method Not Allowed", "text/plain", b"GET only\n"
        if path == "/health":
            return "200 OK", "application/json", b'{"status": "alive"}\n'
        if path == "/ready":
            reasons = self._readiness()
            body = json.dumps({"ready": not reasons, "reasons": reasons}).encode() + b"\n"
            status = "200 OK" if not reasons else "503 Service Unavailable"
            return status, "application/json", body
        if path == "/metrics":
            return "200 OK", "text/plain; version=0.0.4; charset=utf-8", self._metrics()
        return "404 Not Found", "text/plain", b"not found\n"
