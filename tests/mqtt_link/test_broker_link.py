"""The shared paho link against a real mosquitto, watched with the real mosquitto_sub client."""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
import pytest

from circman5.errors import ConfigError
from circman5.mqtt_link import BrokerLink, LinkDown, LinkSettings, TlsOptions, Will
from simulators.external import Mosquitto, free_port
from tests.fixtures.servers import password_file
from tests.sinks.helpers import LineReader, wait_async

LOGGER = "tests.mqtt_link"


class Reports:
    def __init__(self) -> None:
        self.items: list[tuple[str, str, str, dict[str, object]]] = []

    def report(
        self, severity: str, error_type: str, message: str, details: dict[str, object]
    ) -> None:
        self.items.append((severity, error_type, message, details))


def link_settings(port: int, **kw: Any) -> LinkSettings:
    values: dict[str, Any] = {
        "host": "127.0.0.1",
        "port": port,
        "client_id": "link-test",
        "section": "outputs.test",
        "protocol": "5",
        "reconnect_min_s": 0.05,
        "reconnect_max_s": 0.2,
    }
    values.update(kw)
    return LinkSettings(**values)


def make_link(settings: LinkSettings, reporter: Reports | None = None) -> BrokerLink:
    return BrokerLink(settings, what="test link", log=logging.getLogger(LOGGER), reporter=reporter)


async def downs_of(link: BrokerLink, count: int, what: str) -> list[LinkDown]:
    """Start ``link`` and collect its downs until there are ``count``; then stop it."""
    downs: list[LinkDown] = []
    link.add_down_listener(downs.append)
    link.start()
    try:
        await wait_async(lambda: len(downs) >= count, 15, what)
    finally:
        await link.stop()
    return downs


def warnings_of(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == LOGGER and r.levelno == logging.WARNING]


@pytest.fixture
def sub(mosquitto: Mosquitto) -> Iterator[LineReader]:
    """mosquitto_sub on ``will/#`` printing JSON lines (with the MQTT 5 properties)."""
    process = subprocess.Popen(
        ["mosquitto_sub", "-p", str(mosquitto.port), "-V", "mqttv5", "-t", "will/#", "-F", "%j"],
        stdout=subprocess.PIPE,
        text=True,
    )
    yield LineReader(process)
    process.terminate()
    process.wait(5)


async def test_session_hooks_state_and_listeners(
    mosquitto: Mosquitto, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger=LOGGER)
    link = make_link(link_settings(mosquitto.port))
    loop_thread = threading.get_ident()
    hook_threads: list[int] = []
    ups: list[int] = []
    downs: list[LinkDown] = []
    link.on_session = lambda client: hook_threads.append(threading.get_ident())
    link.add_up_listener(lambda: ups.append(threading.get_ident()))
    link.add_down_listener(downs.append)
    link.start()
    try:
        await asyncio.wait_for(link.up.wait(), 15)
        assert link.connected and link.connects == 1
        assert hook_threads and hook_threads[0] != loop_thread  # paho's network thread
        assert ups == [loop_thread]  # listeners on the event loop
        await asyncio.to_thread(mosquitto.stop)
        await wait_async(lambda: bool(downs), 15, "the lost connection")
        assert not link.connected and not link.up.is_set()
        assert downs[0].was_up and downs[0].reason.startswith("disconnected")
        await asyncio.to_thread(mosquitto.start)
        await asyncio.wait_for(link.up.wait(), 15)
        assert link.connects == 2 and len(hook_threads) == 2
        # one WARNING for the outage, however many attempts failed during it
        assert len(warnings_of(caplog)) == 1
        infos = [r.getMessage() for r in caplog.records if r.levelno == logging.INFO]
        assert sum("test link online at" in m for m in infos) == 2
    finally:
        await link.stop()
    assert not link.connected and link.client is None
    assert all(not d.was_up for d in downs[1:])  # no down for the clean stop


async def test_absent_broker_one_warning_traceback_at_debug(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger=LOGGER)
    reports = Reports()
    link = make_link(link_settings(free_port()), reports)
    downs = await downs_of(link, 3, "repeated failed attempts")
    assert all(d.refused and d.code is None for d in downs)
    assert "cannot connect: ConnectionRefusedError" in downs[0].reason
    warnings = warnings_of(caplog)
    assert len(warnings) == 1 and warnings[0].exc_info is None
    assert "ConnectionRefusedError" in warnings[0].getMessage()
    tracebacks = [r for r in caplog.records if r.levelno == logging.DEBUG and r.exc_info]
    assert tracebacks and isinstance(tracebacks[0].exc_info[1], ConnectionRefusedError)  # type: ignore[index]
    assert [(s, t) for s, t, _, _ in reports.items] == [("error", "ConnectionFailed")]


@pytest.mark.parametrize("protocol", ["3.1.1", "5"])
async def test_refused_login_is_one_down_per_attempt_with_the_reason(
    tmp_path: Path, tmp_path_factory: pytest.TempPathFactory, protocol: str
) -> None:
    passwords = await asyncio.to_thread(password_file, tmp_path / "passwords", "edge", "s3cret")
    broker = Mosquitto(
        Path(tmp_path_factory.mktemp("mosquitto-auth")),
        extra_config=f"password_file {passwords}\nallow_anonymous false\n",
    )
    await asyncio.to_thread(broker.start)
    try:
        link = make_link(link_settings(broker.port, protocol=protocol, username="edge"))
        downs = await downs_of(link, 3, "refusals")
    finally:
        await asyncio.to_thread(broker.stop)
    # the disconnect that ends a refused connect is not a second down
    assert all(d.reason.startswith("connect refused") for d in downs), downs
    assert all(d.refused and not d.was_up for d in downs)
    assert "not authorized" in downs[0].reason.lower()
    assert downs[0].code in (5, 135)  # MQTT 3.1.1 return code / MQTT 5 reason code


async def test_the_will_is_published_when_the_connection_dies(
    mosquitto: Mosquitto, sub: LineReader
) -> None:
    # retained: seen even if mosquitto_sub subscribes after the will went out
    will = Will("will/link", b"offline", qos=1, retain=True, content_type="text/plain")
    link = make_link(link_settings(mosquitto.port, will=will))
    link.start()
    try:
        await asyncio.wait_for(link.up.wait(), 15)
        client = link.client
        assert client is not None
        sock = client.socket()
        assert isinstance(sock, socket.socket)
        sock.shutdown(socket.SHUT_RDWR)  # gone without a DISCONNECT: the broker sends the will
        await asyncio.to_thread(
            sub.wait_for, lambda lines: any('"will/link"' in line for line in lines), 15, "will"
        )
        message = json.loads(next(line for line in sub.lines if '"will/link"' in line))
        assert message["payload"] == "offline"
        assert message["properties"]["content-type"] == "text/plain"
        await wait_async(lambda: link.connects == 2, 15, "paho's reconnect")
    finally:
        await link.stop()


async def test_a_failing_hook_does_not_stop_paho(
    mosquitto: Mosquitto, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger=LOGGER)

    def broken(client: paho.Client) -> None:
        raise RuntimeError("hook broke")

    link = make_link(link_settings(mosquitto.port))
    link.on_session = broken
    link.start()
    try:
        await asyncio.wait_for(link.up.wait(), 15)
        assert any("hook broke" in r.getMessage() for r in warnings_of(caplog))
        client = link.client
        assert client is not None
        # paho's thread still runs: the broker's PUBACK comes back through it
        info = client.publish("alive", b"x", qos=1)
        await asyncio.to_thread(info.wait_for_publish, 15)
        assert info.is_published()
    finally:
        await link.stop()


async def test_unreadable_tls_files_are_a_config_error(tmp_path: Path) -> None:
    missing = tmp_path / "ca.pem"
    link = make_link(link_settings(free_port(), tls=TlsOptions(ca_file=missing)))
    with pytest.raises(ConfigError) as caught:
        link.open()
    assert caught.value.file == "outputs.test" and caught.value.key == "tls"
    assert link.client is None
