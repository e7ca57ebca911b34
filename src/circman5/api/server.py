"""Serving the API with uvicorn inside the service's event loop.

::

    server = ApiServer(create_app(context), settings.api)
    async with asyncio.TaskGroup() as tasks:
        tasks.create_task(server.serve())
        ...
        server.stop()          # graceful: finishes open requests, closes WebSockets

The server never installs signal handlers (the service owns them). TLS is on when
``ApiSettings.tls_certfile`` and ``tls_keyfile`` are set (both or neither).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Generator
from typing import Any

import uvicorn
from fastapi import FastAPI

from circman5.errors import ConfigError
from circman5.settings import ApiSettings

logger = logging.getLogger(__name__)

__all__ = ["ApiServer", "uvicorn_config"]

WS_MAX_MESSAGE_BYTES = 64 * 1024


def uvicorn_config(app: FastAPI, settings: ApiSettings, **overrides: Any) -> uvicorn.Config:
    """The uvicorn configuration for ``settings`` (host, port, TLS)."""
    if (settings.tls_certfile is None) != (settings.tls_keyfile is None):
        raise ConfigError(
            "settings", "api.tls_certfile", "set both tls_certfile and tls_keyfile, or neither"
        )
    for key, path in (
        ("tls_certfile", settings.tls_certfile),
        ("tls_keyfile", settings.tls_keyfile),
    ):
        if path is not None and not path.is_file():
            raise ConfigError("settings", f"api.{key}", f"file not found: {path}")
    kwargs: dict[str, Any] = {
        "host": settings.host,
        "port": settings.port,
        "log_config": None,  # the service configures logging
        "access_log": False,
        "server_header": False,
        "proxy_headers": False,
        "ws_max_size": WS_MAX_MESSAGE_BYTES,
        # One state message goes to every client: compressing it once per client costs more
        # CPU than the few kB/s per client it saves on a plant network.
        "ws_per_message_deflate": False,
        "lifespan": "on",
    }
    if settings.tls_certfile is not None and settings.tls_keyfile is not None:
        kwargs["ssl_certfile"] = str(settings.tls_certfile)
        kwargs["ssl_keyfile"] = str(settings.tls_keyfile)
    kwargs.update(overrides)
    return uvicorn.Config(app, **kwargs)


class _Server(uvicorn.Server):
    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self.started_event = asyncio.Event()

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if self.started:
            self.started_event.set()

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield  # the service owns the signal handlers


class ApiServer:
    """uvicorn serving ``app`` in the current event loop (see the module docstring)."""

    def __init__(self, app: FastAPI, settings: ApiSettings, **overrides: Any) -> None:
        self.config = uvicorn_config(app, settings, **overrides)
        self.tls = "ssl_certfile" in overrides or settings.tls_certfile is not None
        self._server = _Server(self.config)

    async def serve(self) -> None:
        """Serve until :meth:`stop` (or cancellation)."""
        scheme = "https" if self.tls else "http"
        logger.info("API and HMI on %s://%s:%s/", scheme, self.config.host, self.config.port)
        await self._server.serve()

    def stop(self) -> None:
        self._server.should_exit = True

    @property
    def started(self) -> bool:
        return bool(self._server.started)

    async def wait_started(self) -> None:
        """Wait until the socket listens (wrap it in ``asyncio.timeout``)."""
        await self._server.started_event.wait()

    @property
    def port(self) -> int:
        """The bound port (useful with port 0)."""
        for server in self._server.servers:
            for sock in server.sockets:
                return int(sock.getsockname()[1])
        return int(self.config.port)
