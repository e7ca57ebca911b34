"""The supervisor restarts failing components; the health port answers probes and scrapes."""

from __future__ import annotations

import asyncio
import contextlib

import httpx

from circman5.service.health import HealthServer
from circman5.service.supervisor import Supervisor


async def test_failing_component_is_restarted_and_reported_while_others_run() -> None:
    reports: list[tuple[str, str, int]] = []
    healthy_ticks = 0
    attempts = 0
    recovered = asyncio.Event()

    async def flaky() -> None:
        nonlocal attempts
        attempts += 1
        if attempts <= 3:
            raise ConnectionError(f"device gone #{attempts}")
        recovered.set()
        await asyncio.Event().wait()

    async def healthy() -> None:
        nonlocal healthy_ticks
        while True:
            healthy_ticks += 1
            await asyncio.sleep(0.001)

    supervisor = Supervisor(
        report=lambda name, err, n: reports.append((name, str(err), n)),
        initial_backoff=0.01,
        max_backoff=0.04,
    )
    supervisor.add("flaky", flaky)
    supervisor.add("healthy", healthy)
    task = asyncio.create_task(supervisor.run())
    await asyncio.wait_for(recovered.wait(), timeout=5)
    assert [r[1] for r in reports] == ["device gone #1", "device gone #2", "device gone #3"]
    assert [r[2] for r in reports] == [1, 2, 3]
    flaky_status = supervisor.statuses[0]
    assert flaky_status.running and flaky_status.restarts == 3
    assert "device gone #3" in (flaky_status.last_error or "")
    assert healthy_ticks > 0 and supervisor.statuses[1].restarts == 0
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    assert not any(s.running for s in supervisor.statuses)


async def test_component_that_returns_is_restarted() -> None:
    runs = 0
    done = asyncio.Event()

    async def returns_early() -> None:
        nonlocal runs
        runs += 1
        if runs == 2:
            done.set()

    supervisor = Supervisor(report=lambda *a: None, initial_backoff=0.01)
    supervisor.add("short", returns_early)
    task = asyncio.create_task(supervisor.run())
    await asyncio.wait_for(done.wait(), timeout=5)
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    assert "returned unexpectedly" in (supervisor.statuses[0].last_error or "")


async def test_health_ready_and_metrics_endpoints() -> None:
    reasons: list[str] = ["connector plc: not connected"]
    server = HealthServer(lambda: list(reasons), lambda: b"circman5_up 1\n")
    task = asyncio.create_task(server.run())
    await asyncio.wait_for(server.started.wait(), timeout=5)
    base = f"http://127.0.0.1:{server.port}"
    async with httpx.AsyncClient() as client:
        health = await client.get(f"{base}/health")
        assert health.status_code == 200 and health.json() == {"status": "alive"}
        ready = await client.get(f"{base}/ready")
        assert ready.status_code == 503
        assert ready.json() == {"ready": False, "reasons": ["connector plc: not connected"]}
        reasons.clear()
        ready = await client.get(f"{base}/ready")
        assert ready.status_code == 200 and ready.json()["ready"] is True
        metrics = await client.get(f"{base}/metrics")
        assert metrics.status_code == 200 and "circman5_up 1" in metrics.text
        assert metrics.headers["content-type"].startswith("text/plain")
        assert (await client.get(f"{base}/nope")).status_code == 404
        assert (await client.post(f"{base}/health")).status_code == 405
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
