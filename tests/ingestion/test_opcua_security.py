"""OPC UA security against a server that is not our simulator's stack: node-opcua.

The server (``tests/opcua_node/server.mjs``) offers Basic256Sha256 SignAndEncrypt only, wants a
user login, and puts unknown client certificates into its "rejected" folder. Every refusal must
be named in words (status, log line, error event), go through the reconnect backoff, and never
show up as a traceback or an internal error.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from circman5.adapters.services.constants_service import ConstantsService
from circman5.cli import main
from circman5.connectors.config import OpcUaConnectorSettings
from circman5.connectors.opcua.certificates import (
    CertificateFiles,
    create_certificate,
    describe_certificate,
    fetch_server_certificates,
    load_certificate,
    store_certificate,
)
from circman5.connectors.opcua.client import OpcUaConnector
from circman5.manufacturing.digital_twin.event_notification.event_manager import event_manager
from circman5.manufacturing.digital_twin.event_notification.event_types import ErrorEvent
from circman5.service.app import EdgeService
from circman5.settings import load_settings
from simulators.external import free_port
from tests.fixtures.node_opcua import PASSWORD, TEMPERATURE, USER, NodeOpcUaServer
from tests.ingestion.conftest import RecordingReporter, collecting, eventually

PATH = "production_line.temperature"
CLIENT_URI = "urn:circman5:test:edge"


def settings(
    server: NodeOpcUaServer,
    client: CertificateFiles,
    pinned: Path | None,
    *,
    mode: str = "SignAndEncrypt",
    password: str = PASSWORD,
    **security: Any,
) -> OpcUaConnectorSettings:
    trust: dict[str, Any] = (
        {"server_certificate": str(pinned)} if pinned else {"accept_any_server_certificate": True}
    )
    return OpcUaConnectorSettings.model_validate(
        {
            "type": "opcua",
            "name": "line",
            "url": server.url,
            "publishing_interval_ms": 50,
            "sampling_interval_ms": 50,
            "reconnect_initial_s": 0.2,
            "reconnect_max_s": 1.0,
            "username": USER,
            "password": password,
            "security": {
                "policy": "Basic256Sha256",
                "mode": mode,
                "certificate": str(client.cert_der),
                "private_key": str(client.key_pem),
                "application_uri": client.application_uri,
                **trust,
                **security,
            },
            "tags": [{"address": TEMPERATURE, "path": PATH}],
        }
    )


async def pin_server(server: NodeOpcUaServer, target: Path) -> Path:
    found = await fetch_server_certificates(server.url)
    return store_certificate(found[0].certificate, target)


def tracebacks(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    """Records that would print a traceback or an internal error at INFO or above."""
    return [
        r
        for r in caplog.records
        if r.levelno >= logging.INFO and (r.exc_info or "internal error" in r.getMessage())
    ]


async def assert_refused(
    connector: OpcUaConnector,
    reporter: RecordingReporter,
    caplog: pytest.LogCaptureFixture,
    *words: str,
) -> str:
    """The connector keeps failing with ``words`` in its reason, in a WARNING log line and in an
    error event, retrying with a growing delay; no traceback. Returns the reason."""
    async with collecting(connector, connect_timeout=0):
        await eventually(
            lambda: all(w in (connector.status.last_error or "") for w in words),
            within=20,
            what=f"a refusal naming {words}",
        )
        reason = connector.status.last_error or ""

        def backed_off() -> list[float]:
            return [d for absent, d in connector.reconnect_policy.delays if not absent]

        await eventually(
            lambda: (
                len(backed_off()) >= 3
                and max(backed_off()) > connector.settings.reconnect_initial_s * 1.5
            ),
            within=20,
            what="retries with a growing delay",
        )
        assert max(backed_off()) <= connector.settings.reconnect_max_s * 1.25
        assert connector.status.connect_failures >= 3
        assert not connector.status.connected
    assert "internal error" not in reason
    events = [r for r in reporter.reports if all(w in r.message for w in words)]
    assert events, f"no error event naming {words}: {reporter.reports}"
    assert events[0].severity in ("warning", "error")
    warnings = [
        r
        for r in caplog.records
        if r.levelno == logging.WARNING and all(w in r.getMessage() for w in words)
    ]
    assert len(warnings) == 1, [r.getMessage() for r in caplog.records]
    assert tracebacks(caplog) == []
    return reason


async def test_secure_session_with_certificates_made_by_the_commands(
    node_opcua: NodeOpcUaServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pki = tmp_path / "pki"
    assert main(["opcua", "create-certificate", "--output", str(pki), "--application-uri",
                 CLIENT_URI]) == 0  # fmt: skip
    printed = capsys.readouterr().out
    assert "rejected" in printed and "trusted" in printed  # what to do on the server
    client = CertificateFiles(
        pki / "client_cert.der", pki / "client_cert.pem", pki / "client_key.pem", CLIENT_URI
    )
    assert client.key_pem.stat().st_mode & 0o777 == 0o600
    pinned = tmp_path / "server.der"
    code = await asyncio.to_thread(
        main, ["opcua", "trust", "--url", node_opcua.url, "--output", str(pinned), "--yes"]
    )
    assert code == 0
    printed = capsys.readouterr().out
    server_info = describe_certificate(load_certificate(pinned))
    assert server_info.sha1 in printed and server_info.sha256 in printed
    node_opcua.trust(client.cert_der)
    connector = OpcUaConnector(settings(node_opcua, client, pinned))
    async with collecting(connector) as collector:
        await eventually(lambda: len(collector.values(PATH)) >= 2, what="values from node-opcua")
    assert all(isinstance(v, float) for v in collector.values(PATH))
    days = connector.status.extra["certificate_days_left"]
    assert isinstance(days, dict) and days["client"] > 700 and days["server"] > 0


async def test_untrusted_client_certificate_then_trusted_without_restart(
    node_opcua: NodeOpcUaServer,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    client = create_certificate(tmp_path / "pki", application_uri=CLIENT_URI, name="fresh")
    pinned = await pin_server(node_opcua, tmp_path / "server.der")
    reporter = RecordingReporter()
    connector = OpcUaConnector(settings(node_opcua, client, pinned), reporter)
    thumbprint = describe_certificate(load_certificate(client.cert_der)).sha1
    async with collecting(connector, connect_timeout=0) as collector:
        await eventually(
            lambda: "untrusted client certificate" in (connector.status.last_error or ""),
            within=20,
            what="the refusal",
        )
        reason = connector.status.last_error or ""
        assert thumbprint in reason and "rejected" in reason
        assert [r for r in reporter.reports if "untrusted client certificate" in r.message]
        warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
        assert any("untrusted client certificate" in r.getMessage() for r in warnings)
        assert tracebacks(caplog) == []
        await eventually(lambda: bool(node_opcua.rejected()), what="our certificate rejected")
        # the administrator moves it to the trusted certificates; the service keeps running
        node_opcua.trust_rejected()
        await eventually(lambda: connector.status.connected, within=20, what="the session")
        await eventually(lambda: len(collector.values(PATH)) >= 2, what="values")
    assert tracebacks(caplog) == []


@pytest.fixture
def trusted_client(node_opcua: NodeOpcUaServer, tmp_path: Path) -> CertificateFiles:
    client = create_certificate(tmp_path / "pki", application_uri=CLIENT_URI, name="trusted")
    node_opcua.trust(client.cert_der)
    return client


async def test_wrong_pinned_server_certificate(
    node_opcua: NodeOpcUaServer,
    trusted_client: CertificateFiles,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    other = create_certificate(tmp_path / "other", application_uri="urn:other", name="other")
    real = await fetch_server_certificates(node_opcua.url)
    real_sha1 = describe_certificate(real[0].certificate).sha1
    pinned_sha1 = describe_certificate(load_certificate(other.cert_der)).sha1
    reporter = RecordingReporter()
    connector = OpcUaConnector(settings(node_opcua, trusted_client, other.cert_der), reporter)
    reason = await assert_refused(
        connector, reporter, caplog, "does not match the pinned one", pinned_sha1, real_sha1
    )
    assert "BadTcpInternalError" not in reason


async def test_wrong_password(
    node_opcua: NodeOpcUaServer,
    trusted_client: CertificateFiles,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    pinned = await pin_server(node_opcua, tmp_path / "server.der")
    reporter = RecordingReporter()
    connector = OpcUaConnector(
        settings(node_opcua, trusted_client, pinned, password="wrong"), reporter
    )
    await assert_refused(connector, reporter, caplog, f"user '{USER}' rejected", "password")


async def test_expired_client_certificate(
    node_opcua: NodeOpcUaServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    expired = create_certificate(
        tmp_path / "pki",
        application_uri=CLIENT_URI,
        name="expired",
        not_before=dt.datetime.now(dt.UTC) - dt.timedelta(days=40),
        days=10,
    )
    node_opcua.trust(expired.cert_der)
    pinned = await pin_server(node_opcua, tmp_path / "server.der")
    reporter = RecordingReporter()
    connector = OpcUaConnector(settings(node_opcua, expired, pinned), reporter)
    await assert_refused(connector, reporter, caplog, "client certificate", "expired on")
    (expiring,) = reporter.of("CertificateExpiring")
    assert "has expired" in expiring.message
    days = connector.status.extra["certificate_days_left"]
    assert isinstance(days, dict) and days["client"] < 0


@pytest.mark.parametrize("pinned_server", [True, False], ids=["pinned", "any-server"])
async def test_security_mode_not_offered(
    node_opcua: NodeOpcUaServer,
    trusted_client: CertificateFiles,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    pinned_server: bool,
) -> None:
    caplog.set_level(logging.INFO)
    pinned = await pin_server(node_opcua, tmp_path / "server.der") if pinned_server else None
    reporter = RecordingReporter()
    connector = OpcUaConnector(settings(node_opcua, trusted_client, pinned, mode="Sign"), reporter)
    await assert_refused(
        connector,
        reporter,
        caplog,
        "Basic256Sha256 Sign is not offered",
        "it offers: Basic256Sha256 SignAndEncrypt",
    )


async def test_security_none_not_offered(
    node_opcua: NodeOpcUaServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    reporter = RecordingReporter()
    plain = OpcUaConnectorSettings.model_validate(
        {
            "type": "opcua",
            "name": "line",
            "url": node_opcua.url,
            "reconnect_initial_s": 0.2,
            "reconnect_max_s": 1.0,
            "tags": [{"address": TEMPERATURE, "path": PATH}],
        }
    )
    await assert_refused(
        OpcUaConnector(plain, reporter),
        reporter,
        caplog,
        "security None is not offered by the server",
        "it offers: Basic256Sha256 SignAndEncrypt",
    )


async def test_application_uri_mismatch(
    node_opcua: NodeOpcUaServer,
    trusted_client: CertificateFiles,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    pinned = await pin_server(node_opcua, tmp_path / "server.der")
    reporter = RecordingReporter()
    connector = OpcUaConnector(
        settings(node_opcua, trusted_client, pinned, application_uri="urn:somebody:else"),
        reporter,
    )
    await assert_refused(
        connector, reporter, caplog, "application URI mismatch", "urn:somebody:else", CLIENT_URI
    )


def _http(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode()
    except OSError:  # not listening yet
        return 0, ""


async def test_service_tells_the_refusal_everywhere_and_recovers_without_restart(
    node_opcua: NodeOpcUaServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The running service: log line, error event and /ready name the untrusted certificate;
    once the server's administrator trusts it, values reach the twin without a restart."""
    caplog.set_level(logging.INFO)
    client = create_certificate(tmp_path / "pki", application_uri=CLIENT_URI, name="service")
    pinned = await pin_server(node_opcua, tmp_path / "server.der")
    health_port = free_port()
    config = tmp_path / "edge.toml"
    config.write_text(
        f"""
[health]
port = {health_port}

[api]
enabled = false

[[connectors]]
type = "opcua"
name = "line"
url = "{node_opcua.url}"
publishing_interval_ms = 50
reconnect_initial_s = 0.2
reconnect_max_s = 1.0
username = "{USER}"
password = "{PASSWORD}"

[connectors.security]
policy = "Basic256Sha256"
mode = "SignAndEncrypt"
certificate = "{client.cert_der}"
private_key = "{client.key_pem}"
application_uri = "{CLIENT_URI}"
server_certificate = "{pinned}"

[[connectors.tags]]
address = "{TEMPERATURE}"
path = "{PATH}"
"""
    )
    events: list[ErrorEvent] = []

    def on_event(event: Any) -> None:
        if isinstance(event, ErrorEvent):
            events.append(event)

    settings = load_settings(config)
    service = EdgeService(settings, ConstantsService(settings.config_dir))
    event_manager.subscribe(on_event)
    runner = asyncio.create_task(service.run())
    ready_url = f"http://127.0.0.1:{health_port}/ready"
    try:

        async def refused_in_ready() -> bool:
            status, body = await asyncio.to_thread(_http, ready_url)
            return status == 503 and "untrusted client certificate" in body

        await eventually(refused_in_ready, within=30, what="/ready naming the refusal")
        refusals = [
            e for e in events if "untrusted client certificate" in str(e.details["error_message"])
        ]
        assert refusals and refusals[0].details["error_type"] == "ConnectionFailed"
        assert [
            r
            for r in caplog.records
            if r.levelno == logging.WARNING and "untrusted client certificate" in r.getMessage()
        ]
        _, metrics = await asyncio.to_thread(_http, ready_url.replace("ready", "metrics"))
        assert 'circman5_opcua_certificate_days_left{certificate="client",connector="line"}' in (
            metrics
        )
        await eventually(lambda: bool(node_opcua.rejected()), what="our certificate rejected")
        node_opcua.trust_rejected()

        async def ready() -> bool:
            return (await asyncio.to_thread(_http, ready_url))[0] == 200

        await eventually(ready, within=30, what="/ready after the server trusts us")
        running = service.running
        assert running is not None
        await eventually(
            lambda: running.connectors[0].status.samples_in >= 2, what="values from the server"
        )
        assert tracebacks(caplog) == []
    finally:
        event_manager.unsubscribe(on_event)
        service.stop()
        await runner


async def test_trust_and_test_commands_with_the_connector_settings(
    node_opcua: NodeOpcUaServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    client = create_certificate(tmp_path / "pki", application_uri=CLIENT_URI, name="probe")
    pinned = tmp_path / "pinned" / "line.der"
    config = tmp_path / "edge.toml"
    config.write_text(
        f"""
data_dir = "{tmp_path / "data"}"

[[connectors]]
type = "opcua"
name = "line"
url = "{node_opcua.url}"
username = "{USER}"
password = "{PASSWORD}"

[connectors.security]
policy = "Basic256Sha256"
mode = "SignAndEncrypt"
certificate = "{client.cert_der}"
private_key = "{client.key_pem}"
application_uri = "{CLIENT_URI}"
server_certificate = "{pinned}"

[[connectors.tags]]
address = "{TEMPERATURE}"
path = "{PATH}"
"""
    )
    base = ["opcua", "trust", "--config", str(config), "--connector", "line"]
    # not on a terminal and no --yes: shown, not stored
    assert await asyncio.to_thread(main, base) == 1
    assert not pinned.exists()
    assert "SHA-1 thumbprint" in capsys.readouterr().out
    assert await asyncio.to_thread(main, [*base, "--yes"]) == 0
    found = await fetch_server_certificates(node_opcua.url)
    assert load_certificate(pinned) == found[0].certificate
    assert "Basic256Sha256 SignAndEncrypt" in capsys.readouterr().out

    probe = ["opcua", "test", "--config", str(config), "--connector", "line"]
    assert await asyncio.to_thread(main, probe) == 1
    assert "untrusted client certificate" in capsys.readouterr().out
    node_opcua.trust(client.cert_der)
    assert await asyncio.to_thread(main, probe) == 0
    assert "connected (Basic256Sha256 SignAndEncrypt, 1 tag(s))" in capsys.readouterr().out
