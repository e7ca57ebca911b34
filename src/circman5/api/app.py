"""The FastAPI application: REST under ``/api``, the live WebSocket ``/api/ws``, the HMI ``/hmi/``.

``create_app(context)`` builds the app from an :class:`~circman5.api.context.ApiContext`. The
routes and the role each needs (technical manual 12.2; a higher role may do everything a lower
one may):

=====================================================  =========
``POST /api/auth/login``                               anyone (rate-limited)
``GET /api/health``                                    anyone
``GET /api/auth/me``, ``/api/state``, ``/api/state/history``, ``/api/state/at``,
``/api/thresholds``, ``/api/alarms``, ``/api/forecast``, ``/api/events``, ``/api/events/alerts``,
``/api/scenarios``, ``/api/scenarios/{name}``, ``/api/setpoints``, ``/api/connectors``,
``/api/commands``, ``/api/optimize/report``, ``/api/lca/report``, ``/api/ws``      viewer
``POST /api/events/{id}/acknowledge``                  operator
``POST /api/simulate``, ``/api/simulate/monte-carlo``, ``/api/scenarios``,
``/api/scenarios/{name}/run``, ``/api/scenarios/compare``, ``DELETE /api/scenarios/{name}``,
``POST /api/optimize``, ``/api/predict``, ``/api/lca/analysis``, ``/api/setpoints``,
``GET /api/diagnostics``                               engineer
``GET /api/calibration``, ``/api/model/info``         viewer
``GET /api/simulations``, ``/api/simulations/{id}``,
``/api/jobs``, ``/api/jobs/{id}``                       viewer (jobs of other sites hidden)
``POST /api/jobs``                                     engineer (503 without ``[database] url``)
``GET /api/site``, ``/api/site/{site}/{line}/state``  viewer (of that site: users may be
                                                       limited to some sites)
``POST /api/calibration``, ``/api/model/train``        engineer
``POST /api/optimize/apply``                           manager
``/api/users`` (list, create, update, delete)          admin
``POST /api/commands``                                 the command's role (see GET)
=====================================================  =========

Errors are JSON ``{"detail": "..."}``: 401 without a valid token, 403 below the required role,
404 for unknown things, 409 for conflicts, 422 for bad input (with the reason), 429 for too many
failed logins, 503 when an optional part is unavailable. CPU-heavy work runs in worker threads,
at most ``heavy_slots`` at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from pathlib import Path
from typing import Any

from fastapi import APIRouter, FastAPI, Request, status
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles
from starlette.datastructures import MutableHeaders

from circman5 import __version__
from circman5.api.broadcaster import Broadcaster
from circman5.api.context import ApiContext
from circman5.api.routes import (
    analysis,
    auth,
    control,
    events,
    forecast,
    jobs,
    learning,
    live,
    simulation,
    site,
    state,
    users,
)
from circman5.errors import (
    AuthError,
    CommandRejected,
    ConnectorError,
    FeatureUnavailable,
    InvalidInputError,
    SetpointConfirmTimeout,
    SetpointRejected,
    SetpointUnavailable,
    UserFileError,
    UserStoreError,
)
from circman5.manufacturing.digital_twin.simulation.scenario_manager import (
    ScenarioLimitError,
    ScenarioNotFoundError,
    ScenarioStoreError,
)
from circman5.manufacturing.human_interface.components.alert_panel import AlertPanel
from circman5.manufacturing.human_interface.components.scenario_control import ScenarioControl

logger = logging.getLogger(__name__)

__all__ = ["STATIC_DIR", "create_app"]

STATIC_DIR = Path(__file__).parent / "static"

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self' ws: wss:; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
)


class SecurityHeaders:
    """Adds the browser security headers to every HTTP response (pure ASGI: no overhead of
    a BaseHTTPMiddleware); API responses are never cached."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope.get("path", "")
        docs = path.startswith(("/docs", "/redoc"))

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                headers.setdefault("X-Content-Type-Options", "nosniff")
                headers.setdefault("X-Frame-Options", "DENY")
                headers.setdefault("Referrer-Policy", "no-referrer")
                if not docs:
                    headers.setdefault("Content-Security-Policy", CSP)
                if path.startswith("/api"):
                    headers.setdefault("Cache-Control", "no-store")
            await send(message)

        await self.app(scope, receive, send_with_headers)


def _error(status_code: int, detail: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"detail": detail}, status_code=status_code, headers=headers)


def _install_error_handlers(app: FastAPI) -> None:
    async def not_found(_: Request, err: Exception) -> JSONResponse:
        return _error(status.HTTP_404_NOT_FOUND, str(err))

    async def conflict(_: Request, err: Exception) -> JSONResponse:
        return _error(status.HTTP_409_CONFLICT, str(err))

    async def unprocessable(_: Request, err: Exception) -> JSONResponse:
        return _error(status.HTTP_422_UNPROCESSABLE_CONTENT, str(err))

    async def unavailable(_: Request, err: Exception) -> JSONResponse:
        logger.warning("service part unavailable: %s", err)
        return _error(status.HTTP_503_SERVICE_UNAVAILABLE, str(err))

    async def unauthorized(_: Request, err: Exception) -> JSONResponse:
        return _error(status.HTTP_401_UNAUTHORIZED, str(err), {"WWW-Authenticate": "Bearer"})

    async def setpoint(_: Request, err: Exception) -> JSONResponse:
        code = int(getattr(err, "status", status.HTTP_409_CONFLICT))
        body: dict[str, Any] = {"detail": str(err)}
        if isinstance(err, SetpointConfirmTimeout):
            body["result"] = err.result.to_dict()
        return JSONResponse(body, status_code=code)

    async def invalid_request(_: Request, err: Exception) -> JSONResponse:
        # FastAPI's default echoes the input back (passwords included; NaN breaks the JSON):
        # answer with where and why only.
        assert isinstance(err, RequestValidationError)
        details = [
            {
                "loc": [str(part) for part in e.get("loc", ())],
                "msg": str(e.get("msg", "")),
                "type": str(e.get("type", "")),
            }
            for e in err.errors()
        ]
        return JSONResponse({"detail": details}, status_code=status.HTTP_422_UNPROCESSABLE_CONTENT)

    handlers: list[tuple[type[Exception], Callable[[Request, Exception], Awaitable[Any]]]] = [
        (RequestValidationError, invalid_request),
        (ScenarioNotFoundError, not_found),
        (ScenarioLimitError, conflict),
        (ScenarioStoreError, unavailable),
        (SetpointRejected, setpoint),
        (SetpointUnavailable, setpoint),
        (SetpointConfirmTimeout, setpoint),
        (UserStoreError, unprocessable),
        (UserFileError, unavailable),
        (InvalidInputError, unprocessable),
        (FeatureUnavailable, unavailable),
        (AuthError, unauthorized),
        (CommandRejected, conflict),
        (ConnectorError, unavailable),
    ]
    for exc_type, handler in handlers:
        app.add_exception_handler(exc_type, handler)


def _register_components(context: ApiContext) -> None:
    """The HMI components behind the API, registered with the interface manager (9.2)."""
    manager = context.interface_manager
    manager.register_component("digital_twin", context.twin_adapter)
    manager.register_component("alerts", AlertPanel(context.event_manager))
    manager.register_component("scenarios", ScenarioControl(lambda: context.scenario_manager))


class _HeavyWork:
    """At most ``slots`` CPU-heavy calls at once, per event loop (tests may run several)."""

    def __init__(self, slots: int) -> None:
        self.slots = slots
        self._semaphore: asyncio.Semaphore | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def semaphore(self) -> asyncio.Semaphore:
        loop = asyncio.get_running_loop()
        if self._semaphore is None or self._loop is not loop:
            self._semaphore = asyncio.Semaphore(self.slots)
            self._loop = loop
        return self._semaphore


def create_app(context: ApiContext, heavy_slots: int = 2) -> FastAPI:
    """The API and HMI app for ``context`` (see the module docstring)."""
    adapter = context.twin_adapter
    twin_alarms = adapter.get_active_alarms
    broadcaster = Broadcaster(
        state=adapter.get_state_snapshot,
        alarms=twin_alarms,
        subscribe=context.event_manager.subscribe,
        unsubscribe=context.event_manager.unsubscribe,
        max_rate_hz=context.broadcast_hz,
        max_clients=context.max_ws_clients,
    )

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        async with asyncio.TaskGroup() as tasks:
            ticker = tasks.create_task(broadcaster.run(), name="api-live-push")
            logger.info("API ready (live push at %.0f Hz)", context.broadcast_hz)
            try:
                yield
            finally:
                ticker.cancel()

    app = FastAPI(
        title="CIRCMAN5.0 edge twin API",
        version=__version__,
        description=(
            "REST API and live WebSocket (`/api/ws`) of the CIRCMAN5.0 digital twin. "
            "Log in with `POST /api/auth/login`, then send `Authorization: Bearer <token>`. "
            "Roles: admin > manager > engineer > operator > viewer."
        ),
        lifespan=lifespan,
    )
    app.state.context = context
    app.state.broadcaster = broadcaster
    app.state.heavy = _HeavyWork(heavy_slots)
    _register_components(context)
    _install_error_handlers(app)

    api = APIRouter(prefix="/api")

    @api.get("/health", tags=["health"], summary="Liveness (no authentication)")
    async def health() -> dict[str, str]:
        return {"status": "ok", "version": __version__}

    for module in (auth, state, events, forecast, simulation, analysis, control, users, live):
        api.include_router(module.router)
    api.include_router(learning.router)
    api.include_router(site.router)
    api.include_router(jobs.router)
    app.include_router(api)

    @app.get("/", include_in_schema=False)
    async def root() -> RedirectResponse:
        return RedirectResponse("/hmi/")

    app.mount("/hmi", StaticFiles(directory=STATIC_DIR, html=True), name="hmi")
    app.add_middleware(SecurityHeaders)
    return app
