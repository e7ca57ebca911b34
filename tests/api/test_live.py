"""The live push: /api/ws streams state changes and events; the broadcaster never blocks."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient
from starlette.testclient import WebSocketTestSession
from starlette.websockets import WebSocketDisconnect

from circman5.api.broadcaster import Broadcaster
from circman5.manufacturing.digital_twin.core.twin_core import DigitalTwin
from circman5.manufacturing.digital_twin.event_notification.event_manager import EventManager
from circman5.manufacturing.digital_twin.event_notification.event_types import Event

TokenOf = Callable[[str], str]


def receive_until(
    ws: WebSocketTestSession, predicate: Callable[[dict[str, Any]], bool], limit: int = 50
) -> dict[str, Any]:
    """The first message matching ``predicate`` (each receive waits for the next message)."""
    for _ in range(limit):
        message: dict[str, Any] = ws.receive_json()
        if predicate(message):
            return message
    raise AssertionError(f"no matching message in {limit} messages")


def test_ws_streams_state_changes_and_events(
    client: TestClient, token_of: TokenOf, twin: DigitalTwin
) -> None:
    with client.websocket_connect("/api/ws") as ws:
        ws.send_json({"type": "auth", "token": token_of("viewer")})
        assert ws.receive_json() == {"type": "hello", "user": "viewer", "role": "viewer"}
        first = receive_until(ws, lambda m: m["type"] == "state")
        assert first["state"]["system_status"] == "running"

        twin.update({"production_line": {"temperature": 24.5}})
        changed = receive_until(
            ws,
            lambda m: m["type"] == "state" and m["state"]["production_line"]["temperature"] == 24.5,
        )
        assert changed["alarms"] == {}

        high = twin.thresholds["production_line.temperature"].high
        assert high is not None
        twin.update({"production_line": {"temperature": high + 4.0}})
        event = receive_until(
            ws, lambda m: m["type"] == "event" and m["event"]["category"] == "threshold"
        )
        assert event["event"]["details"]["parameter"] == "production_line.temperature"
        alarmed = receive_until(ws, lambda m: m["type"] == "state" and m["alarms"] != {})
        assert alarmed["alarms"] == {"production_line.temperature": "high"}

        ws.send_json({"type": "ping"})
        assert receive_until(ws, lambda m: m["type"] == "pong") == {"type": "pong"}


def test_ws_token_in_the_query_string(client: TestClient, token_of: TokenOf) -> None:
    with client.websocket_connect(f"/api/ws?token={token_of('operator')}") as ws:
        assert ws.receive_json()["role"] == "operator"


@pytest.mark.parametrize("first_message", [{"type": "auth", "token": "forged"}, {"type": "hi"}])
def test_ws_without_a_valid_token_is_closed_1008(
    client: TestClient, first_message: dict[str, str]
) -> None:
    with client.websocket_connect("/api/ws") as ws:
        ws.send_text(json.dumps(first_message))
        with pytest.raises(WebSocketDisconnect) as closed:
            ws.receive_json()
    assert closed.value.code == 1008


def test_ws_refuses_clients_beyond_the_limit(
    make_context: Callable[..., Any], token_of: TokenOf
) -> None:
    from circman5.api.app import create_app

    app = create_app(make_context(max_ws_clients=1))
    token = token_of("viewer")
    with TestClient(app) as client, client.websocket_connect(f"/api/ws?token={token}") as first:
        assert first.receive_json()["type"] == "hello"
        second = client.websocket_connect(f"/api/ws?token={token}")
        with second as refused, pytest.raises(WebSocketDisconnect) as closed:
            refused.receive_json()
        assert closed.value.code == 1013


async def eventually(condition: Callable[[], bool], within_s: float = 5.0) -> None:
    """Wait (polling) until ``condition()`` holds; fail after ``within_s`` seconds."""
    for _ in range(int(within_s / 0.01)):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("condition not met in time")


# -- the broadcaster ----------------------------------------------------------------------------
class Snapshots:
    """A state source whose snapshot object changes on each ``set`` (like the StateManager)."""

    def __init__(self) -> None:
        self.state: dict[str, Any] = {"timestamp": "t0", "production_line": {"temperature": 0.0}}

    def set(self, value: float) -> None:
        self.state = {"timestamp": f"t{value}", "production_line": {"temperature": value}}

    def __call__(self) -> dict[str, Any]:
        return self.state


async def test_a_slow_client_gets_the_latest_state_only() -> None:
    source = Snapshots()
    broadcaster = Broadcaster(source, max_events_per_client=3)
    slow = broadcaster.add_client("slow")
    assert slow is not None
    for value in range(1, 101):
        source.set(float(value))
        assert broadcaster.tick()
    assert not broadcaster.tick()  # unchanged snapshot: nothing to send
    batch = await slow.next_batch()
    assert len(batch) == 1
    assert json.loads(batch[0])["state"]["production_line"]["temperature"] == 100.0
    assert slow.skipped_states == 100  # the primed state and 99 others were replaced


async def test_events_are_bounded_per_client_and_handed_over_from_any_thread() -> None:
    source = Snapshots()
    broadcaster = Broadcaster(source, max_events_per_client=3)
    runner = asyncio.create_task(broadcaster.run())
    try:
        await asyncio.sleep(0)  # let run() record the loop
        feed = broadcaster.add_client("viewer")
        assert feed is not None
        await feed.next_batch()  # the primed state

        def publish_many() -> None:
            for i in range(10):
                broadcaster.on_event(Event(message=f"e{i}"))

        await asyncio.to_thread(publish_many)
        await eventually(lambda: broadcaster.events_sent >= 10)
        batch = await feed.next_batch()
        messages = [json.loads(m)["event"]["message"] for m in batch if '"event"' in m]
        assert messages == ["e7", "e8", "e9"]
        assert feed.dropped_events == 7
    finally:
        runner.cancel()
        with pytest.raises(asyncio.CancelledError):
            await runner


async def test_broadcaster_subscribes_to_the_event_manager_while_running(
    events: EventManager,
) -> None:
    broadcaster = Broadcaster(
        Snapshots(), subscribe=events.subscribe, unsubscribe=events.unsubscribe
    )
    runner = asyncio.create_task(broadcaster.run())
    await asyncio.sleep(0)
    feed = broadcaster.add_client("viewer")
    assert feed is not None
    events.publish(Event(message="from the event manager"))
    await eventually(lambda: broadcaster.events_sent >= 1)
    runner.cancel()
    with pytest.raises(asyncio.CancelledError):
        await runner
    events.publish(Event(message="after stopping"))
    assert broadcaster.events_sent == 1
    assert feed.closed
