"""The API served by uvicorn in the event loop (``ApiServer``): plain and with TLS."""

from __future__ import annotations

import asyncio
import json
import ssl
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from websockets.asyncio.client import connect

from circman5.api.app import create_app
from circman5.api.context import ApiContext
from circman5.api.server import ApiServer, uvicorn_config
from circman5.errors import ConfigError
from circman5.manufacturing.digital_twin.core.twin_core import DigitalTwin
from circman5.settings import ApiSettings
from simulators.certs import ensure_certificate


async def test_served_with_tls_including_the_live_push(
    tmp_path: Path,
    make_context: Callable[..., ApiContext],
    token_of: Callable[[str], str],
) -> None:
    cert = ensure_certificate(tmp_path, name="hmi", application_uri="urn:circman5:tests:hmi")
    settings = ApiSettings(
        host="127.0.0.1", port=0, tls_certfile=cert.cert_pem, tls_keyfile=cert.key_pem
    )
    server = ApiServer(create_app(make_context()), settings)
    trust = ssl.create_default_context(cafile=str(cert.cert_pem))
    async with asyncio.TaskGroup() as tasks:
        serving = tasks.create_task(server.serve())
        async with asyncio.timeout(20):
            await server.wait_started()
        base = f"https://127.0.0.1:{server.port}"
        token = token_of("viewer")
        async with httpx.AsyncClient(base_url=base, verify=trust) as client:
            health = await client.get("/api/health")
            assert health.status_code == 200
            state = await client.get("/api/state", headers={"Authorization": f"Bearer {token}"})
            assert state.json()["system_status"] == "running"
            assert (await client.get("/hmi/")).status_code == 200
        async with connect(f"wss://127.0.0.1:{server.port}/api/ws", ssl=trust) as ws:
            await ws.send(json.dumps({"type": "auth", "token": token}))
            assert json.loads(await ws.recv())["type"] == "hello"
            assert json.loads(await ws.recv())["type"] == "state"
        with pytest.raises(httpx.TransportError):  # no plain HTTP on the TLS port
            async with httpx.AsyncClient() as plain:
                await plain.get(f"http://127.0.0.1:{server.port}/api/health")
        server.stop()
        await serving


def test_tls_settings_are_checked(make_context: Callable[..., ApiContext], tmp_path: Path) -> None:
    app = create_app(make_context())
    only_cert = ApiSettings(tls_certfile=tmp_path / "cert.pem")
    with pytest.raises(ConfigError, match="both"):
        uvicorn_config(app, only_cert)
    missing = ApiSettings(tls_certfile=tmp_path / "cert.pem", tls_keyfile=tmp_path / "key.pem")
    with pytest.raises(ConfigError, match="file not found"):
        uvicorn_config(app, missing)
    config = uvicorn_config(app, ApiSettings(port=8123))
    assert (config.host, config.port) == ("127.0.0.1", 8123)
    assert config.ssl_certfile is None
    assert config.ws_per_message_deflate is False


async def test_a_hundred_live_clients_all_get_the_new_state(
    make_context: Callable[..., ApiContext],
    token_of: Callable[[str], str],
    twin: DigitalTwin,
) -> None:
    server = ApiServer(create_app(make_context()), ApiSettings(host="127.0.0.1", port=0))
    token = token_of("viewer")

    async def client() -> float:
        url = f"ws://127.0.0.1:{server.port}/api/ws?token={token}"
        async with connect(url) as ws:
            assert json.loads(await ws.recv())["type"] == "hello"
            ready.release()
            while True:
                message = json.loads(await ws.recv())
                if message["type"] == "state":
                    value = message["state"]["production_line"]["temperature"]
                    if value == 25.25:
                        return float(value)

    async with asyncio.TaskGroup() as tasks:
        serving = tasks.create_task(server.serve())
        async with asyncio.timeout(20):
            await server.wait_started()
        ready = asyncio.Semaphore(0)
        clients = [tasks.create_task(client()) for _ in range(100)]
        async with asyncio.timeout(60):
            for _ in clients:
                await ready.acquire()
            twin.update({"production_line": {"temperature": 25.25}})
            values = await asyncio.gather(*clients)
        assert values == [25.25] * 100
        server.stop()
        await serving
