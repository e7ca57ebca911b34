"""The site page: ``GET /api/site`` from the retained topics of lines publishing to a real
mosquitto (each line a child process running the service's own MQTT publisher), role scoping
per site, and a line turning offline through its last will when its process dies."""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio
from fastapi import FastAPI

from circman5.api.app import STATIC_DIR, create_app
from circman5.api.context import ApiContext
from circman5.api.users import UserStore
from circman5.sinks.site_config import SiteViewSettings
from circman5.sinks.site_watch import SiteWatcher
from simulators.external import Mosquitto

LINE_SCRIPT = str(Path(__file__).with_name("line_process.py"))
TEMPERATURE = "production_line.temperature"


class Lines:
    """Line publisher processes; killed (SIGKILL) at teardown."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.processes: dict[tuple[str, str], asyncio.subprocess.Process] = {}

    async def start(self, site: str, line: str, temperature: float) -> None:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            LINE_SCRIPT,
            str(self.port),
            site,
            line,
            str(temperature),
            stdout=asyncio.subprocess.PIPE,
        )
        self.processes[(site, line)] = process
        assert process.stdout is not None
        first = await asyncio.wait_for(process.stdout.readline(), 30)
        assert first.strip() == b"connected", first

    async def kill(self, site: str, line: str) -> None:
        process = self.processes.pop((site, line))
        process.kill()  # no DISCONNECT: the broker publishes the will
        await process.wait()

    async def close(self) -> None:
        for key in list(self.processes):
            await self.kill(*key)


@pytest_asyncio.fixture
async def lines(mosquitto: Mosquitto) -> AsyncIterator[Lines]:
    started = Lines(mosquitto.port)
    yield started
    await started.close()


@pytest_asyncio.fixture
async def watcher(mosquitto: Mosquitto) -> AsyncIterator[SiteWatcher]:
    settings = SiteViewSettings(
        enabled=True,
        port=mosquitto.port,
        sites=["plantA", "plantB"],
        key_values=[TEMPERATURE, "production_line.status"],
        dashboards={"plantA/line1": "http://edge-a1:8080/hmi/"},
    )
    async with SiteWatcher(settings, "plantA") as view:
        await asyncio.wait_for(view.subscribed.wait(), 30)
        yield view


@pytest.fixture
def site_app(make_context: Callable[..., ApiContext], watcher: SiteWatcher) -> FastAPI:
    return create_app(make_context(site_view=watcher))


@pytest_asyncio.fixture
async def http(site_app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=site_app)
    async with httpx.AsyncClient(transport=transport, base_url="http://site") as client:
        yield client


Get = Callable[..., Awaitable[httpx.Response]]


@pytest.fixture
def get(http: httpx.AsyncClient, auth: Callable[[str], dict[str, str]]) -> Get:
    async def call(path: str, role: str = "viewer", headers: dict[str, str] | None = None) -> Any:
        return await http.get(path, headers=headers or auth(role))

    return call


def _lines(body: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {f"{ln['site']}/{ln['line']}": ln for site in body["sites"] for ln in site["lines"]}


async def test_every_line_with_its_status_values_alarms_and_the_will(
    lines: Lines, get: Get
) -> None:
    await lines.start("plantA", "line1", 21.5)
    await lines.start("plantA", "line2", 29.0)  # above the 27 °C limit: an alarm
    await lines.start("plantB", "line1", 23.0)

    async def view() -> dict[str, dict[str, Any]]:
        response = await get("/api/site")
        assert response.status_code == 200, response.text
        return _lines(response.json())

    seen: dict[str, dict[str, Any]] = {}

    async def refresh() -> None:
        seen.clear()
        seen.update(await view())

    async def all_three_ready() -> bool:
        await refresh()
        return (
            len(seen) == 3
            and all(ln["online"] and ln["values"] for ln in seen.values())
            and (bool(seen["plantA/line2"]["alarms"]))
        )

    await _await_true(all_three_ready, 30, "three lines online with their state and the alarm")
    assert seen["plantA/line1"]["values"][TEMPERATURE] == 21.5
    assert seen["plantA/line2"]["values"][TEMPERATURE] == 29.0
    assert seen["plantB/line1"]["values"][TEMPERATURE] == 23.0
    assert seen["plantA/line1"]["values"]["production_line.status"] == "running"
    assert seen["plantA/line1"]["state_time"] == "2026-01-01T00:00:00+00:00"
    assert seen["plantA/line1"]["alarms"] == [] and seen["plantB/line1"]["alarms"] == []
    (alarm,) = seen["plantA/line2"]["alarms"]
    assert alarm["parameter"] == TEMPERATURE and "29" in alarm["message"]
    assert seen["plantA/line1"]["dashboard"] == "http://edge-a1:8080/hmi/"
    assert seen["plantA/line2"]["dashboard"] is None

    # the live view of a line without a dashboard of its own: its retained state
    state = await get("/api/site/plantA/line2/state")
    assert state.status_code == 200
    assert state.json()["state"]["production_line"]["temperature"] == 29.0

    await lines.kill("plantA", "line2")

    async def line2_offline() -> bool:
        await refresh()
        return seen["plantA/line2"]["status"] == "offline"

    await _await_true(line2_offline, 30, "the will to turn line 2 offline")
    assert seen["plantA/line1"]["online"] and seen["plantB/line1"]["online"]
    body = (await get("/api/site?site=plantA")).json()
    assert [(s["site"], s["online"], s["offline"]) for s in body["sites"]] == [("plantA", 1, 1)]


async def test_a_site_view_started_later_sees_the_alarms_raised_before(
    lines: Lines, mosquitto: Mosquitto
) -> None:
    await lines.start("plantA", "line9", 31.0)
    settings = SiteViewSettings(enabled=True, port=mosquitto.port, client_id="late-view")
    async with SiteWatcher(settings, "plantA") as late:

        async def alarm_seen() -> bool:
            return any(ln["alarms"] for ln in late.lines())

        await _await_true(alarm_seen, 30, "the retained alarm list")
        (line,) = late.lines()
        assert line["line"] == "line9" and line["online"]
        assert [a["parameter"] for a in line["alarms"]] == [TEMPERATURE]
        assert "31" in line["alarms"][0]["message"]


async def _await_true(check: Callable[[], Awaitable[bool]], within_s: float, what: str) -> None:
    deadline = time.monotonic() + within_s
    while not await check():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {within_s:.0f} s waiting for {what}")
        await asyncio.sleep(0.1)


async def test_a_user_of_one_site_sees_only_that_site(
    lines: Lines, get: Get, users: UserStore, http: httpx.AsyncClient, context_tokens: Any
) -> None:
    await lines.start("plantA", "line1", 21.0)
    await lines.start("plantB", "line1", 22.0)
    users.add("alice", "alice-password", "engineer", sites=["plantA"])
    alice = {"Authorization": f"Bearer {context_tokens('alice', 'engineer')}"}

    async def both_visible_to_the_viewer() -> bool:
        body = (await get("/api/site")).json()
        return len(_lines(body)) == 2

    await _await_true(both_visible_to_the_viewer, 30, "both lines")
    mine = await get("/api/site", headers=alice)
    assert mine.status_code == 200
    assert [s["site"] for s in mine.json()["sites"]] == ["plantA"]
    assert set(_lines(mine.json())) == {"plantA/line1"}
    assert (await get("/api/site?site=plantB", headers=alice)).status_code == 403
    assert (await get("/api/site/plantB/line1/state", headers=alice)).status_code == 403
    assert (await get("/api/site/plantA/line1/state", headers=alice)).status_code == 200
    # the default scope (no sites in the user file) is every site, as before
    assert set(_lines((await get("/api/site", "viewer")).json())) == {
        "plantA/line1",
        "plantB/line1",
    }
    # an admin limits alice to plantB through the users API: she sees plantB only
    patched = await http.patch(
        "/api/users/alice", json={"sites": ["plantB"]}, headers=_admin(context_tokens)
    )
    assert patched.status_code == 200 and patched.json()["sites"] == ["plantB"]
    assert [s["site"] for s in (await get("/api/site", headers=alice)).json()["sites"]] == [
        "plantB"
    ]
    # a user of a site the view does not watch sees nothing here
    users.add("bob", "bob-password-1", "viewer", sites=["plantC"])
    bob = {"Authorization": f"Bearer {context_tokens('bob', 'viewer')}"}
    assert (await get("/api/site", headers=bob)).status_code == 403


def _admin(tokens: Any) -> dict[str, str]:
    return {"Authorization": f"Bearer {tokens('admin', 'admin')}"}


@pytest.fixture
def context_tokens(site_app: FastAPI) -> Callable[[str, str], str]:
    context: ApiContext = site_app.state.context

    def issue(username: str, role: str) -> str:
        token, _ = context.tokens.issue(username, role)  # type: ignore[arg-type]
        return token

    return issue


async def test_without_a_site_view_the_route_says_so(
    make_context: Callable[..., ApiContext], auth: Callable[[str], dict[str, str]]
) -> None:
    app = create_app(make_context())
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://site"
    ) as client:
        response = await client.get("/api/site", headers=auth("viewer"))
    assert response.status_code == 503
    assert "site_view" in response.json()["detail"]


def test_the_site_page_is_served_and_linked_from_the_hmi() -> None:
    page = (STATIC_DIR / "site.html").read_text()
    assert 'src="site.js"' in page
    assert 'href="site.html"' in (STATIC_DIR / "index.html").read_text()
    script = (STATIC_DIR / "site.js").read_text()
    assert "/api/site" in script and "dashboard" in script
