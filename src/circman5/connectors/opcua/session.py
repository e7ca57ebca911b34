"""Opening and closing an asyncua client session: security, server trust, login.

Also the connection errors that end a session and :func:`describe`, a library error in words.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Coroutine
from pathlib import Path

from asyncua import ua
from asyncua.client.client import Client
from asyncua.crypto import security_policies
from asyncua.ua.uaerrors import UaError, UaStatusCodeError
from cryptography import x509

from circman5.connectors.opcua.certificates import sha1_thumbprint
from circman5.connectors.opcua.config import OpcUaConnectorSettings
from circman5.connectors.opcua.refusals import SERVER_UNTRUSTED, OpcUaRefused
from circman5.errors import SessionLost

__all__ = ["CONNECTION_ERRORS", "SessionLost", "TrustList", "describe", "disconnect", "make_client"]

logger = logging.getLogger(__name__)

_POLICIES: dict[str, type[security_policies.SecurityPolicy]] = {
    "Basic256Sha256": security_policies.SecurityPolicyBasic256Sha256,
    "Aes128_Sha256_RsaOaep": security_policies.SecurityPolicyAes128Sha256RsaOaep,
    "Aes256_Sha256_RsaPss": security_policies.SecurityPolicyAes256Sha256RsaPss,
}
_MODES = {
    "Sign": ua.MessageSecurityMode.Sign,
    "SignAndEncrypt": ua.MessageSecurityMode.SignAndEncrypt,
}

# Library exceptions that mean "the server or the network is gone".
CONNECTION_ERRORS: tuple[type[BaseException], ...] = (
    OSError,
    TimeoutError,
    ConnectionError,
    UaError,
    SessionLost,
    EOFError,
)


class TrustList:
    """Trusts a server certificate that is in ``directory`` (DER or PEM) or signed by a CA there."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def _load(self) -> list[x509.Certificate]:
        certificates: list[x509.Certificate] = []
        if not self.directory.is_dir():
            return certificates
        for path in sorted(self.directory.iterdir()):
            if not path.is_file():
                continue
            data = path.read_bytes()
            with contextlib.suppress(ValueError):
                if b"-----BEGIN CERTIFICATE-----" in data:
                    certificates.extend(x509.load_pem_x509_certificates(data))
                else:
                    certificates.append(x509.load_der_x509_certificate(data))
        return certificates

    async def __call__(self, certificate: x509.Certificate, _description: object) -> None:
        trusted = await asyncio.to_thread(self._load)
        for candidate in trusted:
            if candidate == certificate:
                return
        for candidate in trusted:
            if candidate.subject != certificate.issuer:
                continue
            with contextlib.suppress(Exception):
                certificate.verify_directly_issued_by(candidate)
                return
        raise OpcUaRefused(
            SERVER_UNTRUSTED,
            f"server certificate untrusted (BadCertificateUntrusted): "
            f"{certificate.subject.rfc4514_string()} (SHA-1 {sha1_thumbprint(certificate)}) is "
            f"neither in the trust list {self.directory} nor issued by a CA there; check it "
            "and store it with 'circman5 opcua trust'",
        )


async def make_client(
    s: OpcUaConnectorSettings,
    connection_lost: Callable[[Exception], Coroutine[object, object, None]],
    accepting_any_certificate: Callable[[], None],
) -> Client:
    """A client for ``s`` with its security set up (not connected yet).

    ``accepting_any_certificate`` is called when the server is trusted without a check
    (``accept_any_server_certificate``, a lab setting).
    """
    # asyncua's own liveness probe times out after min(session timeout / 2, its interval):
    # keep it lenient, the connector's watchdog (watchdog_timeout_s) is the one that decides.
    client = Client(
        s.url,
        timeout=s.request_timeout_s,
        watchdog_intervall=2 * max(s.watchdog_timeout_s, s.watchdog_interval_s),
    )
    client.session_timeout = int(s.session_timeout_s * 1000)
    client.name = client.description = f"circman5 {s.name}"
    client.application_uri = s.security.application_uri
    if s.username is not None and s.password is not None:
        client.set_user(s.username)
        client.set_password(s.password.get_secret_value())
    security = s.security
    if security.policy != "None":
        assert security.certificate is not None and security.private_key is not None
        server_certificate = None
        if security.server_certificate is not None:
            server_certificate = str(security.server_certificate)
        elif security.trust_dir is not None:
            client.certificate_validator = TrustList(security.trust_dir)
        else:
            accepting_any_certificate()
        password = (
            security.private_key_password.get_secret_value()
            if security.private_key_password
            else None
        )
        await client.set_security(
            _POLICIES[security.policy],
            str(security.certificate),
            str(security.private_key),
            private_key_password=password,
            server_certificate=server_certificate,
            mode=_MODES[security.mode],
        )
    client.connection_lost_callback = connection_lost
    return client


async def disconnect(client: Client, timeout_s: float, name: str) -> None:
    """Close the session; a server that is gone leaves only the socket to close, quietly."""
    try:
        async with asyncio.timeout(timeout_s):
            await client.disconnect()
    except Exception as err:  # the server may be gone: close what is left, quietly
        logger.debug("opcua %s: disconnect: %r", name, err)
        with contextlib.suppress(Exception):
            client.disconnect_socket()


def describe(err: BaseException) -> str:
    """A library error in words: the status code's name, or the exception and its text."""
    if isinstance(err, UaStatusCodeError):
        with contextlib.suppress(Exception):
            return ua.StatusCode(err.code).name
    text = str(err)
    return f"{type(err).__name__}: {text}" if text else type(err).__name__
