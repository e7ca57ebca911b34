"""OPC UA application instance certificates: make ours, inspect and fetch a server's.

An OPC UA client proves who it is with an *application instance certificate* (OPC UA Part 6,
6.2.2): an X.509 v3 certificate whose subject alternative name carries the application URI
(which must equal the ``ApplicationUri`` the client sends) plus the host's DNS names and IP
addresses, with the key usages digitalSignature, nonRepudiation, keyEncipherment and
dataEncipherment, and the extended key usages serverAuth and clientAuth. :func:`create_certificate`
makes one (RSA 2048 bit or more, SHA-256, self-signed) and writes it as DER and PEM with the key
readable by the owner only.

:func:`fetch_server_certificates` asks a server's unsecured discovery endpoint (GetEndpoints, no
session) for the certificates it presents, so an operator can check the thumbprint and pin it.
Thumbprints are shown as OPC UA tools show them: SHA-1 in hex (and SHA-256 beside it).
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import socket
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from circman5.errors import ConnectorError

__all__ = [
    "CertificateFiles",
    "CertificateInfo",
    "ServerCertificate",
    "create_certificate",
    "describe_certificate",
    "fetch_server_certificates",
    "load_certificate",
    "sha1_thumbprint",
    "sha256_thumbprint",
    "store_certificate",
]


@dataclass(frozen=True, slots=True)
class CertificateFiles:
    """Where a certificate and its private key were written."""

    cert_der: Path
    cert_pem: Path
    key_pem: Path
    application_uri: str


@dataclass(frozen=True, slots=True)
class CertificateInfo:
    """What an operator checks before trusting a certificate."""

    subject: str
    issuer: str
    application_uri: str | None
    dns_names: tuple[str, ...]
    ip_addresses: tuple[str, ...]
    not_before: dt.datetime
    not_after: dt.datetime
    sha1: str
    sha256: str

    def days_left(self, now: dt.datetime | None = None) -> float:
        """Days until ``not_after`` (negative once expired)."""
        now = now or dt.datetime.now(dt.UTC)
        return (self.not_after - now).total_seconds() / 86400.0

    def lines(self) -> list[str]:
        """Human-readable lines (for the CLI)."""
        return [
            f"subject:         {self.subject}",
            f"issuer:          {self.issuer}",
            f"application URI: {self.application_uri or '(none)'}",
            f"DNS names:       {', '.join(self.dns_names) or '(none)'}",
            f"IP addresses:    {', '.join(self.ip_addresses) or '(none)'}",
            f"valid from:      {self.not_before:%Y-%m-%d %H:%M:%S} UTC",
            f"valid until:     {self.not_after:%Y-%m-%d %H:%M:%S} UTC "
            f"({self.days_left():.0f} days left)",
            f"SHA-1 thumbprint:   {self.sha1}",
            f"SHA-256 thumbprint: {self.sha256}",
        ]


def sha1_thumbprint(certificate: x509.Certificate) -> str:
    """The SHA-1 thumbprint in upper-case hex (as UaExpert and most servers show it)."""
    return certificate.fingerprint(hashes.SHA1()).hex().upper()


def sha256_thumbprint(certificate: x509.Certificate) -> str:
    return certificate.fingerprint(hashes.SHA256()).hex().upper()


def load_certificate(path: Path) -> x509.Certificate:
    """The (first) certificate in a DER or PEM file; ConnectorError names the file otherwise."""
    try:
        data = Path(path).read_bytes()
    except OSError as err:
        raise ConnectorError(f"cannot read certificate {path}: {err.strerror or err}") from err
    return certificate_from_bytes(data, str(path))


def certificate_from_bytes(data: bytes, label: str = "certificate") -> x509.Certificate:
    try:
        if b"-----BEGIN CERTIFICATE-----" in data:
            return x509.load_pem_x509_certificate(data)
        return x509.load_der_x509_certificate(_first_der(data))
    except ValueError as err:
        raise ConnectorError(f"{label} is not an X.509 certificate (DER or PEM): {err}") from err


def _first_der(data: bytes) -> bytes:
    """The first DER element of ``data`` (servers may send a chain: certificate + CAs)."""
    if len(data) < 4 or data[0] != 0x30:
        return data
    length = data[1]
    if length < 0x80:
        return data[: 2 + length]
    size = length & 0x7F
    if size == 0 or len(data) < 2 + size:
        return data
    return data[: 2 + size + int.from_bytes(data[2 : 2 + size], "big")]


def describe_certificate(certificate: x509.Certificate) -> CertificateInfo:
    uris: list[str] = []
    dns: list[str] = []
    ips: list[str] = []
    try:
        san = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        pass
    else:
        uris = san.get_values_for_type(x509.UniformResourceIdentifier)
        dns = san.get_values_for_type(x509.DNSName)
        ips = [str(ip) for ip in san.get_values_for_type(x509.IPAddress)]
    return CertificateInfo(
        subject=certificate.subject.rfc4514_string(),
        issuer=certificate.issuer.rfc4514_string(),
        application_uri=uris[0] if uris else None,
        dns_names=tuple(dns),
        ip_addresses=tuple(ips),
        not_before=certificate.not_valid_before_utc,
        not_after=certificate.not_valid_after_utc,
        sha1=sha1_thumbprint(certificate),
        sha256=sha256_thumbprint(certificate),
    )


def _write_private(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` with mode 0600 from the first byte on."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as file:
        file.write(data)
    path.chmod(0o600)


def create_certificate(
    directory: Path,
    *,
    application_uri: str,
    name: str = "client",
    common_name: str | None = None,
    organization: str = "CIRCMAN5.0 edge twin",
    hostnames: Sequence[str] = (),
    ip_addresses: Sequence[str] = (),
    days: int = 730,
    key_size: int = 2048,
    not_before: dt.datetime | None = None,
) -> CertificateFiles:
    """Make a self-signed application instance certificate and key in ``directory``.

    Files: ``<name>_cert.der`` (what servers import), ``<name>_cert.pem`` and ``<name>_key.pem``
    (PKCS#8, mode 0600). ``hostnames`` default to this host's name and ``localhost``;
    ``ip_addresses`` to 127.0.0.1. ``not_before`` (default: an hour ago, to tolerate clock skew)
    exists for tests of expired certificates.
    """
    if key_size < 2048:
        raise ValueError("OPC UA's security policies need an RSA key of 2048 bits or more")
    if days < 1:
        raise ValueError("the validity must be at least one day")
    if ":" not in application_uri:
        raise ValueError(f"application URI {application_uri!r} is not a URI (e.g. urn:site:app)")
    hosts = list(dict.fromkeys([*hostnames] or [socket.gethostname(), "localhost"]))
    try:
        ips = [ipaddress.ip_address(ip) for ip in (ip_addresses or ["127.0.0.1"])]
    except ValueError as err:
        raise ValueError(f"invalid IP address: {err}") from err
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    files = CertificateFiles(
        directory / f"{name}_cert.der",
        directory / f"{name}_cert.pem",
        directory / f"{name}_key.pem",
        application_uri,
    )
    key = rsa.generate_private_key(public_exponent=65537, key_size=key_size)
    subject = x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, common_name or f"circman5 {name}"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization),
            x509.NameAttribute(NameOID.DOMAIN_COMPONENT, hosts[0]),
        ]
    )
    alt_names: list[x509.GeneralName] = [x509.UniformResourceIdentifier(application_uri)]
    alt_names += [x509.DNSName(host) for host in hosts if host]
    alt_names += [x509.IPAddress(ip) for ip in ips]
    start = not_before or dt.datetime.now(dt.UTC) - dt.timedelta(hours=1)
    public_key = key.public_key()
    certificate = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + dt.timedelta(days=days))
        .add_extension(x509.SubjectAlternativeName(alt_names), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=True,  # nonRepudiation
                key_encipherment=True,
                data_encipherment=True,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(
            x509.ExtendedKeyUsage(
                [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
            ),
            critical=False,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(public_key), critical=False
        )
        .sign(key, hashes.SHA256())
    )
    _write_private(
        files.key_pem,
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ),
    )
    files.cert_der.write_bytes(certificate.public_bytes(serialization.Encoding.DER))
    files.cert_pem.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    return files


def store_certificate(certificate: x509.Certificate, path: Path) -> Path:
    """Write ``certificate`` as DER to ``path`` (parents created)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(certificate.public_bytes(serialization.Encoding.DER))
    return path


@dataclass(frozen=True, slots=True)
class ServerCertificate:
    """A certificate a server presents, with the security it offers under it."""

    certificate: x509.Certificate
    endpoints: tuple[str, ...]  # "Basic256Sha256 SignAndEncrypt", ...


async def fetch_server_certificates(url: str, timeout_s: float = 5.0) -> list[ServerCertificate]:
    """The distinct certificates of ``url``'s endpoints (GetEndpoints over security None).

    Raises :class:`~circman5.errors.DeviceUnavailable` when the server cannot be asked and
    :class:`~circman5.errors.ConnectorError` when it offers no certificate.
    """
    from asyncua.client.client import Client

    from circman5.errors import DeviceUnavailable

    client = Client(url, timeout=timeout_s)
    try:
        endpoints = await client.connect_and_get_server_endpoints()
    except (OSError, TimeoutError, ConnectionError) as err:
        raise DeviceUnavailable(f"cannot reach {url}: {err or type(err).__name__}") from err
    except Exception as err:  # asyncua raises UaError and bare exceptions from its transport
        raise DeviceUnavailable(f"GetEndpoints on {url} failed: {err!r}") from err
    found: dict[bytes, list[str]] = {}
    for endpoint in endpoints:
        data = endpoint.ServerCertificate
        if not data:
            continue
        policy = str(endpoint.SecurityPolicyUri).rsplit("#", 1)[-1]
        found.setdefault(bytes(data), []).append(f"{policy} {endpoint.SecurityMode.name}")
    if not found:
        raise ConnectorError(f"{url} presents no certificate on any endpoint (security None only?)")
    return [
        ServerCertificate(certificate_from_bytes(data, f"certificate of {url}"), tuple(offers))
        for data, offers in found.items()
    ]
