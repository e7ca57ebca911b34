"""The certificate command, the checks before connecting, expiry warnings, the security guide."""

from __future__ import annotations

import datetime as dt
import re
import shlex
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID

from circman5.cli import build_parser, main
from circman5.connectors.config import OpcUaConnectorSettings, load_connectors
from circman5.connectors.opcua.certificates import create_certificate, load_certificate
from circman5.connectors.opcua.expiry import CertificateExpiry
from circman5.connectors.opcua.refusals import (
    CERTIFICATE_FILE,
    CERTIFICATE_TIME,
    URI_MISMATCH,
    OpcUaRefused,
    check_local,
)
from circman5.reporting import ProblemReporter
from tests.ingestion.conftest import RecordingReporter

GUIDE = Path(__file__).resolve().parents[2] / "docs" / "opcua_security.md"


def write_settings(tmp_path: Path, uri: str = "urn:plant:edge:line2") -> Path:
    config = tmp_path / "edge.toml"
    config.write_text(
        f"""
data_dir = "{tmp_path / "data"}"

[[connectors]]
type = "opcua"
name = "plc"
url = "opc.tcp://127.0.0.1:4840"

[connectors.security]
application_uri = "{uri}"

[[connectors.tags]]
address = "i=2258"
path = "plc.clock"
"""
    )
    return config


def test_create_certificate_under_the_data_directory_of_the_settings(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_settings(tmp_path)
    args = ["opcua", "create-certificate", "--config", str(config), "--hostname", "edge-2"]
    assert main([*args, "--ip", "10.0.0.7"]) == 0
    folder = tmp_path / "data" / "opcua"
    key = folder / "client_key.pem"
    assert key.stat().st_mode & 0o777 == 0o600
    cert = load_certificate(folder / "client_cert.der")
    assert cert == load_certificate(folder / "client_cert.pem")
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.UniformResourceIdentifier) == ["urn:plant:edge:line2"]
    assert san.get_values_for_type(x509.DNSName) == ["edge-2"]
    assert [str(ip) for ip in san.get_values_for_type(x509.IPAddress)] == ["10.0.0.7"]
    usage = cert.extensions.get_extension_for_class(x509.KeyUsage).value
    assert usage.digital_signature and usage.content_commitment
    assert usage.key_encipherment and usage.data_encipherment and not usage.key_cert_sign
    extended = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert set(extended) == {ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH}
    public_key = cert.public_key()
    assert isinstance(public_key, rsa.RSAPublicKey) and public_key.key_size >= 2048
    assert cert.signature_hash_algorithm is not None
    assert cert.signature_hash_algorithm.name == "sha256"
    assert 729 <= (cert.not_valid_after_utc - cert.not_valid_before_utc).days <= 731
    printed = capsys.readouterr().out
    assert str(folder / "client_cert.der") in printed and "trusted" in printed
    # an existing certificate is kept unless --force: the server trusts that one
    assert main(args) == 1
    assert load_certificate(folder / "client_cert.der") == cert
    assert main([*args, "--force"]) == 0
    assert load_certificate(folder / "client_cert.der") != cert


def test_create_certificate_refuses_a_short_key_and_a_bad_uri(tmp_path: Path) -> None:
    with pytest.raises(SystemExit):
        main(["opcua", "create-certificate", "--output", str(tmp_path), "--key-size", "1024"])
    bad_uri = ["opcua", "create-certificate", "--output", str(tmp_path)]
    assert main([*bad_uri, "--application-uri", "no uri"]) == 2
    assert not (tmp_path / "client_cert.der").exists()


def secure(tmp_path: Path, uri: str, **security: object) -> OpcUaConnectorSettings:
    return OpcUaConnectorSettings.model_validate(
        {
            "type": "opcua",
            "name": "plc",
            "url": "opc.tcp://127.0.0.1:4840",
            "security": {
                "policy": "Basic256Sha256",
                "mode": "SignAndEncrypt",
                "application_uri": uri,
                "accept_any_server_certificate": True,
                **security,
            },
        }
    )


def refusal(settings: OpcUaConnectorSettings) -> OpcUaRefused:
    with pytest.raises(OpcUaRefused) as caught:
        check_local(settings)
    return caught.value


def test_checks_before_connecting(tmp_path: Path) -> None:
    ours = create_certificate(tmp_path, application_uri="urn:a:b")
    files = {"certificate": str(ours.cert_der), "private_key": str(ours.key_pem)}
    check_local(secure(tmp_path, "urn:a:b", **files))  # all good: no refusal

    mismatch = refusal(secure(tmp_path, "urn:other", **files))
    assert mismatch.kind == URI_MISMATCH
    assert "'urn:other'" in mismatch.reason and "'urn:a:b'" in mismatch.reason

    missing_key = refusal(secure(tmp_path, "urn:a:b", **{**files, "private_key": "/nope.pem"}))
    assert missing_key.kind == CERTIFICATE_FILE and "/nope.pem" in missing_key.reason

    later = create_certificate(
        tmp_path / "later",
        application_uri="urn:a:b",
        not_before=dt.datetime.now(dt.UTC) + dt.timedelta(days=2),
    )
    future = refusal(
        secure(tmp_path, "urn:a:b", certificate=str(later.cert_der), private_key=str(later.key_pem))
    )
    assert future.kind == CERTIFICATE_TIME and "is not valid before" in future.reason

    old_server = create_certificate(
        tmp_path / "server",
        application_uri="urn:server",
        not_before=dt.datetime.now(dt.UTC) - dt.timedelta(days=20),
        days=5,
    )
    expired_pin = refusal(
        OpcUaConnectorSettings.model_validate(
            {
                "type": "opcua",
                "name": "plc",
                "url": "opc.tcp://127.0.0.1:4840",
                "security": {
                    "policy": "Basic256Sha256",
                    "mode": "Sign",
                    "application_uri": "urn:a:b",
                    "server_certificate": str(old_server.cert_der),
                    **files,
                },
            }
        )
    )
    assert expired_pin.kind == CERTIFICATE_TIME
    assert "pinned server certificate" in expired_pin.reason and "expired on" in expired_pin.reason


def test_expiry_within_30_days_warns_once_and_tells_the_days_left(tmp_path: Path) -> None:
    soon = create_certificate(
        tmp_path,
        application_uri="urn:a:b",
        not_before=dt.datetime.now(dt.UTC) - dt.timedelta(days=700),
        days=710,
    )
    server = create_certificate(tmp_path / "server", application_uri="urn:server", days=400)
    settings = secure(
        tmp_path,
        "urn:a:b",
        certificate=str(soon.cert_der),
        private_key=str(soon.key_pem),
        server_certificate=str(server.cert_der),
        accept_any_server_certificate=False,
    )
    reporter = RecordingReporter()
    extra: dict[str, object] = {}
    problems: ProblemReporter = reporter
    expiry = CertificateExpiry("plc", problems, extra)
    days = expiry.check(settings.security)
    assert 9 <= days["client"] <= 10 and 398 <= days["server"] <= 400
    assert extra["certificate_days_left"] == days
    warnings = reporter.of("CertificateExpiring")
    assert len(warnings) == 1 and warnings[0].severity == "warning"
    assert "our client certificate" in warnings[0].message
    assert "create-certificate" in warnings[0].message
    assert warnings[0].details["certificate"] == "client"
    expiry.check(settings.security)
    assert len(reporter.of("CertificateExpiring")) == 1  # once per certificate


def test_the_guide_loads_its_examples_and_names_every_refusal() -> None:
    text = GUIDE.read_text(encoding="utf-8")
    blocks = re.findall(r"```toml\n(.*?)```", text, flags=re.DOTALL)
    assert len(blocks) >= 2
    for index, block in enumerate(blocks):
        (connector,) = load_connectors(block, f"opcua_security.md block {index}")
        assert isinstance(connector, OpcUaConnectorSettings)
        assert connector.security.policy == "Basic256Sha256"
        assert connector.security.mode == "SignAndEncrypt"
    for phrase in (
        "untrusted client certificate",
        "does not match the pinned one",
        "expired on",
        "application URI mismatch",
        "rejected by the server",
        "is not offered by the server",
        "server certificate untrusted",
    ):
        assert phrase in text, phrase
    # every command line of the guide parses
    parser = build_parser()
    commands = re.findall(r"^circman5 ([^#\n]*)", text, flags=re.MULTILINE)
    assert len(commands) >= 4
    for command in commands:
        parser.parse_args(shlex.split(command))


def test_check_config_warns_about_certificates_that_would_be_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ours = create_certificate(tmp_path / "pki", application_uri="urn:a:b")
    config = tmp_path / "edge.toml"
    config.write_text(
        f"""
[[connectors]]
type = "opcua"
name = "plc"
url = "opc.tcp://127.0.0.1:4840"

[connectors.security]
policy = "Basic256Sha256"
mode = "Sign"
certificate = "{ours.cert_der}"
private_key = "{ours.key_pem}"
application_uri = "urn:not:the:certificate"
accept_any_server_certificate = true

[[connectors.tags]]
address = "i=2258"
path = "plc.clock"
"""
    )
    assert main(["check-config", str(config)]) == 0
    err = capsys.readouterr().err
    assert "warning: opcua connector plc: application URI mismatch" in err
    assert "configuration OK" in err
