"""Self-signed X.509 application certificates for OPC UA (server and client), made with
``cryptography``.

The OPC UA PLC creates its certificate at start-up in its work directory (and reuses it on a
restart, so clients that pinned it keep working). Tests and connectors use
:func:`ensure_certificate` to make client certificates the same way.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import socket
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID


@dataclass(frozen=True, slots=True)
class CertificateFiles:
    """Where a certificate and its key were written."""

    cert_der: Path
    cert_pem: Path
    key_pem: Path
    application_uri: str


def ensure_certificate(
    directory: Path,
    *,
    name: str,
    application_uri: str,
    hostnames: tuple[str, ...] = ("localhost",),
    days: int = 3650,
) -> CertificateFiles:
    """Create ``<name>_cert.der``, ``<name>_cert.pem`` and ``<name>_key.pem`` in ``directory``
    unless they already exist for the same application URI.

    The certificate carries the application URI as a subject alternative name (OPC UA requires
    it), the DNS names ``hostnames`` plus this host's name, the IP 127.0.0.1, and the key usages
    OPC UA expects of an application instance certificate (server and client auth).
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    files = CertificateFiles(
        directory / f"{name}_cert.der",
        directory / f"{name}_cert.pem",
        directory / f"{name}_key.pem",
        application_uri,
    )
    if files.cert_der.exists() and files.key_pem.exists() and files.cert_pem.exists():
        existing = x509.load_der_x509_certificate(files.cert_der.read_bytes())
        try:
            san = existing.extensions.get_extension_for_class(x509.SubjectAlternativeName)
            uris = san.value.get_values_for_type(x509.UniformResourceIdentifier)
        except x509.ExtensionNotFound:
            uris = []
        if application_uri in uris:
            return files

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    subject = x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, name),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "CIRCMAN5.0 simulators"),
        ]
    )
    dns = list(dict.fromkeys([*hostnames, socket.gethostname()]))
    alt_names: list[x509.GeneralName] = [x509.UniformResourceIdentifier(application_uri)]
    alt_names += [x509.DNSName(host) for host in dns if host]
    alt_names.append(x509.IPAddress(ipaddress.ip_address("127.0.0.1")))
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=days))
        .add_extension(x509.SubjectAlternativeName(alt_names), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=True,
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
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    files.key_pem.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    files.key_pem.chmod(0o600)
    files.cert_der.write_bytes(cert.public_bytes(serialization.Encoding.DER))
    files.cert_pem.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return files


class ClientTrustList:
    """Which client certificates an OPC UA server accepts: those in ``trusted`` (DER or PEM).

    An unknown certificate is refused (``BadCertificateUntrusted``) and copied to ``rejected``
    as ``<CN> [<SHA-1>].der``, where an administrator finds it and moves it to ``trusted`` (as in
    node-opcua, open62541 or the UA .NET stack). ``trust_all`` accepts any certificate.
    """

    def __init__(self, trusted: Path, rejected: Path, trust_all: bool = False) -> None:
        self.trusted = Path(trusted)
        self.rejected = Path(rejected)
        self.trust_all = trust_all

    def is_trusted(self, certificate: x509.Certificate) -> bool:
        if self.trust_all:
            return True
        if not self.trusted.is_dir():
            return False
        for path in self.trusted.iterdir():
            if path.is_file() and certificate in _certificates_in(path):
                return True
        return False

    def reject(self, certificate: x509.Certificate) -> Path:
        self.rejected.mkdir(parents=True, exist_ok=True)
        names = certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
        name = str(names[0].value) if names else "client"
        thumbprint = certificate.fingerprint(hashes.SHA1()).hex().upper()
        path = self.rejected / f"{name} [{thumbprint}].der"
        path.write_bytes(certificate.public_bytes(serialization.Encoding.DER))
        return path

    def trust(self, certificate_file: Path) -> Path:
        """Copy a certificate file into ``trusted``."""
        self.trusted.mkdir(parents=True, exist_ok=True)
        target = self.trusted / Path(certificate_file).name
        target.write_bytes(Path(certificate_file).read_bytes())
        return target

    def trust_rejected(self) -> list[Path]:
        """Move every rejected certificate to ``trusted`` (what the administrator does)."""
        moved: list[Path] = []
        if not self.rejected.is_dir():
            return moved
        self.trusted.mkdir(parents=True, exist_ok=True)
        for path in sorted(self.rejected.iterdir()):
            target = self.trusted / path.name
            path.replace(target)
            moved.append(target)
        return moved


def _certificates_in(path: Path) -> list[x509.Certificate]:
    data = path.read_bytes()
    try:
        if b"-----BEGIN CERTIFICATE-----" in data:
            return x509.load_pem_x509_certificates(data)
        return [x509.load_der_x509_certificate(data)]
    except ValueError:
        return []
