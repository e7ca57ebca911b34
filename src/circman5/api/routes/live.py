"""``/api/ws``: the live push of twin state changes and events over a WebSocket.

Authenticate with the access token either in the first message,
``{"type": "auth", "token": "<token>"}`` (preferred: query strings end up in access logs), or as
``/api/ws?token=<token>``. The server then sends ``{"type": "hello", "user": ..., "role": ...}``,
followed by

* ``{"type": "state", "state": {...}, "alarms": {path: "high"|"low"}}`` whenever the state
  changed, at most ``broadcast_hz`` times a second (latest wins: a slow client skips states);
* ``{"type": "event", "event": {...}}`` for every event (a client that falls far behind loses
  the oldest ones).

A client may send ``{"type": "ping"}`` (answered with ``{"type": "pong"}``). The socket is closed
with code 1008 when the token is missing, invalid or expires, and 1013 when the server has too
many clients.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from typing import Any

from fastapi import APIRouter, WebSocket, WebSocketDisconnect
from starlette.websockets import WebSocketState

from circman5.api.auth import Principal
from circman5.api.broadcaster import Broadcaster, ClientFeed, encode
from circman5.api.context import ApiContext
from circman5.api.deps import authenticate
from circman5.errors import AuthError, UserFileError

logger = logging.getLogger(__name__)

router = APIRouter()

AUTH_TIMEOUT_S = 10.0
RECHECK_INTERVAL_S = 5.0
POLICY_VIOLATION = 1008
TRY_AGAIN_LATER = 1013
INTERNAL_ERROR = 1011


async def _first_message_token(websocket: WebSocket) -> str | None:
    try:
        async with asyncio.timeout(AUTH_TIMEOUT_S):
            raw = await websocket.receive_text()
    except (TimeoutError, WebSocketDisconnect, KeyError, RuntimeError):
        return None
    try:
        message = json.loads(raw)
    except ValueError:
        return None
    if isinstance(message, dict) and message.get("type") == "auth":
        token = message.get("token")
        return token if isinstance(token, str) else None
    return None


async def _close(websocket: WebSocket, code: int, reason: str) -> None:
    if websocket.application_state != WebSocketState.DISCONNECTED:
        with contextlib.suppress(RuntimeError, WebSocketDisconnect):
            await websocket.close(code=code, reason=reason)


@router.websocket("/ws")
async def live(websocket: WebSocket, token: str | None = None) -> None:
    context: ApiContext = websocket.app.state.context
    broadcaster: Broadcaster = websocket.app.state.broadcaster
    await websocket.accept()
    if token is None:
        token = await _first_message_token(websocket)
    if token is None:
        await _close(websocket, POLICY_VIOLATION, "authentication required")
        return
    try:
        principal = authenticate(context, token)
    except AuthError as err:
        await _close(websocket, POLICY_VIOLATION, str(err))
        return
    except UserFileError as err:
        logger.error("live client refused: %s", err)
        await _close(websocket, INTERNAL_ERROR, "the user store is unavailable")
        return
    feed = broadcaster.add_client(principal.username)
    if feed is None:
        await _close(websocket, TRY_AGAIN_LATER, "too many live clients")
        return
    try:
        await websocket.send_text(
            encode({"type": "hello", "user": principal.username, "role": principal.role})
        )
        closing = await _serve(websocket, context, broadcaster, feed, principal)
    except (WebSocketDisconnect, RuntimeError, OSError):
        closing = None
    finally:
        broadcaster.remove_client(feed)
    if closing is not None:
        await _close(websocket, *closing)


async def _serve(
    websocket: WebSocket,
    context: ApiContext,
    broadcaster: Broadcaster,
    feed: ClientFeed,
    principal: Principal,
) -> tuple[int, str] | None:
    """Send until the client leaves (None), its token stops being valid or it is too slow to
    take what is sent (the close code and reason)."""
    outcome: list[tuple[int, str]] = []

    async def send_loop() -> None:
        checked = time.monotonic()
        while True:
            batch = await feed.next_batch()
            if not batch:
                return
            try:
                async with asyncio.timeout(broadcaster.send_timeout_s):
                    for message in batch:
                        await websocket.send_text(message)
            except TimeoutError:
                logger.info("live client %s too slow; dropped", principal.username)
                outcome.append((TRY_AGAIN_LATER, "too slow to receive the live data"))
                return
            now = time.monotonic()
            if now - checked >= RECHECK_INTERVAL_S:
                checked = now
                problem = _still_valid(context, principal)
                if problem is not None:
                    outcome.append((POLICY_VIOLATION, problem))
                    return

    async def receive_loop() -> None:
        while True:
            message = await websocket.receive()
            if message["type"] == "websocket.disconnect":
                return
            with contextlib.suppress(ValueError, TypeError):
                data: Any = json.loads(message.get("text") or message.get("bytes") or b"")
                if isinstance(data, dict) and data.get("type") == "ping":
                    feed.put_event(encode({"type": "pong"}))

    tasks = {asyncio.create_task(send_loop()), asyncio.create_task(receive_loop())}
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
        # asyncio.wait (unlike gather) never raises for the tasks, and a cancellation of this
        # handler still propagates.
        await asyncio.wait(tasks)
    for task in tasks:
        error = None if task.cancelled() else task.exception()
        if error is not None and not isinstance(error, WebSocketDisconnect | OSError):
            logger.debug("live client %s ended: %r", principal.username, error)
    return outcome[0] if outcome else None


def _still_valid(context: ApiContext, principal: Principal) -> str | None:
    if time.time() > principal.expires_at:
        return "the token has expired; log in again"
    user = context.users.get(principal.username)
    if user is None or user.role != principal.role:
        return "the token is no longer valid; log in again"
    return None
