"""The API under load: the state endpoint, and 100 live WebSocket clients during ingestion.

The service side runs as in production: the twin, the API app and uvicorn on a free loopback
port in one process (uvicorn in its own thread with its own event loop). Load comes from child
processes (``python -m benchmarks.bench_api http|ws ...``), so the clients do not share the
service's interpreter lock.

1. ``GET /api/state``: 100 concurrent httpx async clients for a few seconds, while the twin
   ingests at the standard 10 Hz; requests/s and p99 latency. Baseline (same run, same load):
   ``GET /api/health``, a route without authentication or state.
2. Ingestion: a thread calling ``twin.update`` as fast as it can, for a few seconds, without
   live clients (the baseline) and with 100 WebSocket clients connected to ``/api/ws`` and
   receiving the coalesced state pushes (at most 10 Hz each) and the events; three rounds
   alternating the two, medians compared. Target: ingestion loses at most 10 %.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks.report import Row

CLIENTS = 100
HTTP_SECONDS = 4.0
INGEST_SECONDS = 2.0
ROUNDS = 3
ROOT = Path(__file__).resolve().parents[1]


# -- the service under test --------------------------------------------------------------------
@dataclass
class Service:
    url: str
    token: str
    twin: Any
    loop: asyncio.AbstractEventLoop
    broadcaster: Any


@contextmanager
def running_service() -> Iterator[Service]:
    from argon2 import PasswordHasher

    from circman5.api.app import create_app
    from circman5.api.context import ApiContext
    from circman5.api.server import ApiServer
    from circman5.api.users import UserStore
    from circman5.manufacturing.digital_twin.core.twin_core import DigitalTwin
    from circman5.settings import ApiSettings

    DigitalTwin._reset_instance()
    twin = DigitalTwin()
    twin.initialize()
    users = UserStore(hasher=PasswordHasher(time_cost=1, memory_cost=8 * 1024, parallelism=1))
    users.add("bench", "bench-password", "viewer")
    context = ApiContext(twin=twin, users=users, max_ws_clients=CLIENTS + 10)
    app = create_app(context)
    server = ApiServer(app, ApiSettings(host="127.0.0.1", port=0))
    token, _ = context.tokens.issue("bench", "viewer")
    started: list[asyncio.AbstractEventLoop] = []
    ready = threading.Event()

    async def serve() -> None:
        started.append(asyncio.get_running_loop())
        task = asyncio.create_task(server.serve())
        await server.wait_started()
        ready.set()
        await task

    thread = threading.Thread(target=lambda: asyncio.run(serve()), name="api", daemon=True)
    thread.start()
    if not ready.wait(30):
        raise RuntimeError("the API server did not start")
    try:
        yield Service(
            f"http://127.0.0.1:{server.port}", token, twin, started[0], app.state.broadcaster
        )
    finally:
        started[0].call_soon_threadsafe(server.stop)
        thread.join(30)
        DigitalTwin._reset_instance()


# -- load generators (child processes) ------------------------------------------------------
async def _http_load(url: str, token: str, clients: int, seconds: float) -> dict[str, Any]:
    """``clients`` users, each with its own httpx client (one keep-alive connection), requesting
    ``url`` back to back for ``seconds``."""
    import httpx

    headers = {"Authorization": f"Bearer {token}"}
    latencies: list[float] = []
    errors = 0
    sessions = [httpx.AsyncClient(timeout=30.0) for _ in range(clients)]
    try:
        await asyncio.gather(*(s.get(url, headers=headers) for s in sessions))  # connect
        deadline = time.perf_counter() + seconds

        async def user(session: httpx.AsyncClient) -> None:
            nonlocal errors
            while time.perf_counter() < deadline:
                start = time.perf_counter()
                response = await session.get(url, headers=headers)
                latencies.append(time.perf_counter() - start)
                if response.status_code != 200:
                    errors += 1

        began = time.perf_counter()
        await asyncio.gather(*(user(s) for s in sessions))
        elapsed = time.perf_counter() - began
    finally:
        await asyncio.gather(*(s.aclose() for s in sessions))
    latencies.sort()
    p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))]
    return {
        "requests": len(latencies),
        "rps": len(latencies) / elapsed,
        "p99": p99,
        "errors": errors,
        "client_cpu_s": time.process_time(),
    }


async def _ws_clients(url: str, token: str, clients: int) -> None:
    """Connect ``clients`` WebSockets, print "ready", count messages until stdin closes."""
    from websockets.asyncio.client import connect

    counts = [0] * clients
    sockets = []
    for _ in range(clients):
        ws = await connect(url, max_size=2**22)
        await ws.send(json.dumps({"type": "auth", "token": token}))
        hello = json.loads(await ws.recv())
        assert hello["type"] == "hello", hello
        sockets.append(ws)

    async def consume(i: int, ws: Any) -> None:
        async for _ in ws:
            counts[i] += 1

    tasks = [asyncio.create_task(consume(i, ws)) for i, ws in enumerate(sockets)]
    print("ready", flush=True)
    await asyncio.to_thread(sys.stdin.read)  # until the parent closes our stdin
    print(json.dumps({"counts": counts}), flush=True)
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    for ws in sockets:
        await ws.close()


def _child(args: list[str], nice: int = 0) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen(
        [sys.executable, "-m", "benchmarks.bench_api", *args],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=env,
        cwd=ROOT,
        preexec_fn=(lambda: os.nice(nice)) if nice else None,
    )


def _http_run(service: Service, path: str) -> dict[str, Any]:
    child = _child(["http", service.url + path, service.token, str(CLIENTS), str(HTTP_SECONDS)])
    out, _ = child.communicate(timeout=120)
    if child.returncode != 0:
        raise RuntimeError(f"the HTTP load generator failed ({child.returncode})")
    result: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    return result


# -- ingestion ---------------------------------------------------------------------------------
def _ingest(twin: Any, seconds: float) -> float:
    """Updates per second of a thread calling ``twin.update`` as fast as it can."""
    update = twin.update
    count = 0
    box: list[float] = []

    def run() -> None:
        nonlocal count
        value = 22.0
        deadline = time.perf_counter() + seconds
        start = time.perf_counter()
        while time.perf_counter() < deadline:
            for _ in range(200):
                value = 22.0 + (count % 50) * 0.01
                update({"production_line": {"temperature": value, "production_rate": 8.0}})
                count += 1
        box.append(time.perf_counter() - start)

    thread = threading.Thread(target=run, name="ingest")
    thread.start()
    thread.join()
    return count / box[0]


@contextmanager
def _steady_ingest(twin: Any, rate_hz: float) -> Iterator[None]:
    """The standard 10 Hz update rate in the background."""
    stop = threading.Event()

    def run() -> None:
        i = 0
        while not stop.wait(1.0 / rate_hz):
            i += 1
            twin.update({"production_line": {"temperature": 22.0 + (i % 20) * 0.05}})

    thread = threading.Thread(target=run, name="ingest-10hz")
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


@contextmanager
def _live_clients(service: Service, count: int) -> Iterator[list[int]]:
    """``count`` WebSocket clients (a child process) connected while the block runs; the list
    yielded is filled with each client's message count when the block ends."""
    ws_url = service.url.replace("http://", "ws://") + "/api/ws"
    # In production the clients are browsers on other machines; here they share the two
    # cores, so they run at the lowest priority and take only CPU the service leaves idle.
    child = _child(["ws", ws_url, service.token, str(count)], nice=19)
    assert child.stdin is not None and child.stdout is not None
    counts: list[int] = []
    try:
        line = child.stdout.readline().strip()
        if line != "ready":
            raise RuntimeError(f"the WebSocket clients did not connect: {line!r}")
        yield counts
    finally:
        child.stdin.close()
        out = child.stdout.read()
        child.wait(60)
    counts.extend(json.loads(out.strip().splitlines()[-1])["counts"])


def main() -> list[Row]:
    with tempfile.TemporaryDirectory() as data:
        os.environ["CIRCMAN5_DATA_DIR"] = data
        with running_service() as service:
            with _steady_ingest(service.twin, 10.0):
                health = _http_run(service, "/api/health")
                state = _http_run(service, "/api/state")
            # Alternate without / with clients: the machine's other load drifts.
            without: list[float] = []
            with_clients: list[float] = []
            per_client: list[float] = []
            connected = 0
            ticks = 0.0
            for _ in range(ROUNDS):
                without.append(_ingest(service.twin, INGEST_SECONDS))
                with _live_clients(service, CLIENTS) as counts:
                    connected = service.broadcaster.client_count
                    sent = service.broadcaster.states_sent
                    with_clients.append(_ingest(service.twin, INGEST_SECONDS))
                    ticks = (service.broadcaster.states_sent - sent) / INGEST_SECONDS
                per_client.append(statistics.mean(counts) / INGEST_SECONDS)
            without.append(_ingest(service.twin, INGEST_SECONDS))
    baseline = statistics.median(without)
    loaded = statistics.median(with_clients)
    return [
        Row(
            f"GET /api/state, {CLIENTS} concurrent clients",
            state["rps"],
            "requests/s",
            None,
            baseline=health["rps"],
            baseline_label="GET /api/health",
        ),
        Row(
            f"GET /api/state p99 latency, {CLIENTS} concurrent clients",
            state["p99"] * 1000,
            "ms",
            250.0,
            higher_is_better=False,
            baseline=health["p99"] * 1000,
            baseline_label="GET /api/health",
        ),
        Row(
            f"twin ingestion with {connected} live WebSocket clients (median of {ROUNDS})",
            loaded,
            "updates/s",
            0.9 * baseline,
            baseline=baseline,
            baseline_label="no clients",
        ),
        Row(
            "state pushes received per client (coalesced, max 10 Hz)",
            statistics.median(per_client),
            "messages/s",
            None,
            baseline=ticks,
            baseline_label="broadcaster ticks/s",
        ),
    ]


def _cli(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench_api")
    sub = parser.add_subparsers(dest="mode", required=True)
    http = sub.add_parser("http")
    http.add_argument("url")
    http.add_argument("token")
    http.add_argument("clients", type=int)
    http.add_argument("seconds", type=float)
    ws = sub.add_parser("ws")
    ws.add_argument("url")
    ws.add_argument("token")
    ws.add_argument("clients", type=int)
    args = parser.parse_args(argv)
    if args.mode == "http":
        result = asyncio.run(_http_load(args.url, args.token, args.clients, args.seconds))
        print(json.dumps(result), flush=True)
        return 0
    asyncio.run(_ws_clients(args.url, args.token, args.clients))
    return 0


if __name__ == "__main__":
    raise SystemExit(_cli(sys.argv[1:]))
