"""Small async helpers for the simulator tests: wait on conditions, never on fixed sleeps."""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import json
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from asyncua import ua
from asyncua.client.client import Client
from asyncua.crypto.security_policies import SecurityPolicyBasic256Sha256

from simulators.bench import SimulatorBench
from simulators.certs import CertificateFiles
from simulators.external import find_binary
from tests.fixtures.simulators import CLIENT_APPLICATION_URI


async def eventually(
    condition: Callable[[], bool | Awaitable[bool]],
    what: str,
    within: float = 10.0,
    interval: float = 0.05,
) -> None:
    """Poll ``condition`` (sync or async) until it is true; TimeoutError naming ``what``."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    last_error: BaseException | None = None
    while True:
        try:
            result = condition()
            if inspect.isawaitable(result):
                result = await result
            if result:
                return
        except Exception as err:  # the server may be starting, restarting, ...
            last_error = err
        if loop.time() > deadline:
            raise TimeoutError(f"timed out after {within:.1f}s waiting for {what}") from last_error
        await asyncio.sleep(interval)


async def mosquitto_pub(port: int, topic: str, *args: str) -> None:
    """Run the real ``mosquitto_pub`` (QoS 1) with extra arguments (``-m``, ``-r``, ``-n``...)."""
    binary = find_binary("mosquitto_pub", "mosquitto-clients")
    proc = await asyncio.create_subprocess_exec(
        binary, "-h", "127.0.0.1", "-p", str(port), "-t", topic, "-q", "1", *args
    )
    assert await proc.wait() == 0, f"mosquitto_pub to {topic} failed"


class Subscriber:
    """The real ``mosquitto_sub`` client in the background; payloads kept as bytes.

    ``async with Subscriber(port, "mes/#") as sub:`` returns once the subscription is active
    (a retained probe message has come back), so nothing published afterwards is missed.
    """

    def __init__(self, port: int, *topics: str) -> None:
        self.port = port
        self.topics = topics
        self.probe = f"test/probe/{uuid.uuid4().hex}"
        self.messages: list[tuple[str, bytes]] = []
        self._proc: asyncio.subprocess.Process | None = None
        self._reader: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Subscriber:
        await mosquitto_pub(self.port, self.probe, "-r", "-m", "probe")
        args = ["-h", "127.0.0.1", "-p", str(self.port), "-q", "1", "-F", "%t %x", "-t", self.probe]
        for topic in self.topics:
            args += ["-t", topic]
        self._proc = await asyncio.create_subprocess_exec(
            find_binary("mosquitto_sub", "mosquitto-clients"),
            *args,
            stdout=asyncio.subprocess.PIPE,
            limit=64 * 1024 * 1024,
        )
        self._reader = asyncio.create_task(self._read())
        await eventually(lambda: bool(self.received(self.probe)), "mosquitto_sub to subscribe")
        return self

    async def _read(self) -> None:
        assert self._proc is not None and self._proc.stdout is not None
        while line := await self._proc.stdout.readline():
            topic, _, hexed = line.decode().rstrip("\n").partition(" ")
            self.messages.append((topic, bytes.fromhex(hexed)))

    async def __aexit__(self, *exc: object) -> None:
        if self._proc is not None and self._proc.returncode is None:
            self._proc.terminate()
            await self._proc.wait()
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader
        await mosquitto_pub(self.port, self.probe, "-r", "-n")

    def received(self, topic: str | None = None) -> list[bytes]:
        """Payloads received on ``topic`` (every topic but the probe when None)."""
        return [
            body
            for t, body in self.messages
            if (t == topic if topic is not None else t != self.probe)
        ]

    def json(self, topic: str) -> list[dict[str, Any]]:
        return [json.loads(body) for body in self.received(topic)]

    def topics_seen(self) -> set[str]:
        return {t for t, _ in self.messages if t != self.probe}

    async def wait_for(self, what: str, count: int, topic: str | None = None) -> None:
        await eventually(lambda: len(self.received(topic)) >= count, what, within=20)


async def secure_client(
    bench: SimulatorBench,
    cert: CertificateFiles,
    mode: ua.MessageSecurityMode,
    user: str | None,
    password: str | None,
    trusted: bool = True,
) -> Client:
    """An asyncua client for a Basic256Sha256 session with ``cert`` (not connected yet); the
    PLC trusts ``cert`` unless ``trusted`` is False."""
    assert bench.opcua is not None and bench.opcua.certificate is not None
    if trusted:
        bench.opcua.client_trust.trust(cert.cert_der)
    client = Client(bench.opcua.url, timeout=5)
    client.application_uri = CLIENT_APPLICATION_URI
    await client.set_security(
        SecurityPolicyBasic256Sha256,
        str(cert.cert_pem),
        str(cert.key_pem),
        server_certificate=str(bench.opcua.certificate.cert_der),
        mode=mode,
    )
    if user is not None:
        client.set_user(user)
        client.set_password(password or "")
    return client
