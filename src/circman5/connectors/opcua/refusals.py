"""Why an OPC UA server refused us, in words an operator can act on.

asyncua reports refusals as status codes at best (``BadUserAccessDenied``), as a generic
transport error (``BadTcpInternalError`` when the pinned server certificate is wrong) or as an
``AssertionError`` (a server that does not trust our certificate answers OpenSecureChannel with
a fault asyncua cannot parse). :func:`check_local` finds what can be found without the server
(certificate files, validity, application URI); :func:`diagnose` turns a failed connection
attempt into an :class:`OpcUaRefused` with a reason, asking the server's unsecured discovery
endpoint (GetEndpoints) what it offers and which certificate it presents when the error itself
does not say.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
from dataclasses import dataclass
from typing import Any

from asyncua.ua.status_codes import StatusCodes
from asyncua.ua.uaerrors import UaStatusCodeError
from cryptography import x509

from circman5.connectors.opcua.certificates import (
    certificate_from_bytes,
    describe_certificate,
    load_certificate,
    sha1_thumbprint,
)
from circman5.connectors.opcua.config import OpcUaConnectorSettings, OpcUaSecurity
from circman5.errors import ConnectorError, SessionRefused
from circman5.retry import server_absent

__all__ = [
    "Offer",
    "OpcUaRefused",
    "check_local",
    "diagnose",
    "fetch_offers",
    "quiet_asyncua_logs",
]

logger = logging.getLogger(__name__)

# Kinds of refusal (``OpcUaRefused.kind``; also in the error event's details).
UNTRUSTED_CLIENT = "untrusted_client_certificate"
SERVER_MISMATCH = "server_certificate_mismatch"
SERVER_UNTRUSTED = "server_certificate_untrusted"
CERTIFICATE_TIME = "certificate_time_invalid"
URI_MISMATCH = "application_uri_mismatch"
USER_REJECTED = "user_rejected"
NOT_OFFERED = "security_not_offered"
CERTIFICATE_FILE = "certificate_file"
CERTIFICATE_INVALID = "certificate_invalid"

#: Longest delay between attempts while a refusal waits for an administrator (trusting our
#: certificate, a new server certificate, the security mode): the session is up within about
#: this long after the fix. A rejected login backs off normally (servers may lock accounts).
ADMIN_FIX_RETRY_S = 1.5

_USER_CODES = {
    StatusCodes.BadUserAccessDenied,
    StatusCodes.BadIdentityTokenRejected,
    StatusCodes.BadIdentityTokenInvalid,
    StatusCodes.BadUserSignatureInvalid,
}
_TIME_CODES = {StatusCodes.BadCertificateTimeInvalid, StatusCodes.BadCertificateIssuerTimeInvalid}
_UNTRUSTED_CODES = {
    StatusCodes.BadCertificateUntrusted,
    StatusCodes.BadCertificateChainIncomplete,
    StatusCodes.BadSecurityChecksFailed,
}
_REVOKED_CODES = {
    StatusCodes.BadCertificateRevoked,
    StatusCodes.BadCertificateIssuerRevoked,
    StatusCodes.BadCertificateRevocationUnknown,
    StatusCodes.BadCertificateIssuerRevocationUnknown,
}
_INVALID_CODES = {
    StatusCodes.BadCertificateInvalid,
    StatusCodes.BadCertificateUseNotAllowed,
    StatusCodes.BadCertificateIssuerUseNotAllowed,
    StatusCodes.BadCertificateHostNameInvalid,
    StatusCodes.BadCertificatePolicyCheckFailed,
}
_NOT_OFFERED_CODES = {StatusCodes.BadSecurityPolicyRejected, StatusCodes.BadSecurityModeRejected}


#: The server (or our own configuration) refused the session for a reason the operator can fix;
#: ``kind`` is one of this module's constants, ``str()`` the reason in words.
OpcUaRefused = SessionRefused


@dataclass(frozen=True, slots=True)
class Offer:
    """One endpoint of the server: security policy, mode and the certificate it presents."""

    policy: str
    mode: str
    certificate: bytes

    def __str__(self) -> str:
        return f"{self.policy} {self.mode}" if self.policy != "None" else "None"


def _thumb(certificate: x509.Certificate) -> str:
    return f"SHA-1 {sha1_thumbprint(certificate)}"


def _when(moment: dt.datetime) -> str:
    return f"{moment:%Y-%m-%d %H:%M} UTC"


# -- before connecting -----------------------------------------------------------------------------


def check_local(settings: OpcUaConnectorSettings, now: dt.datetime | None = None) -> None:
    """Raise :class:`OpcUaRefused` for what would fail anyway: a certificate or key file that is
    missing or unreadable, a certificate that is expired or not yet valid, an application URI
    that differs from the one in our certificate, an expired pinned server certificate."""
    security = settings.security
    if security.policy == "None":
        return
    now = now or dt.datetime.now(dt.UTC)
    assert security.certificate is not None and security.private_key is not None
    ours = _load(security.certificate, "client certificate")
    if not security.private_key.is_file():
        raise OpcUaRefused(
            CERTIFICATE_FILE,
            f"the private key {security.private_key} is missing: make the certificate and key "
            "with 'circman5 opcua create-certificate'",
        )
    info = describe_certificate(ours)
    if not info.not_before <= now <= info.not_after:
        expired = now > info.not_after
        raise OpcUaRefused(
            CERTIFICATE_TIME,
            f"our client certificate {security.certificate} ({_thumb(ours)}) "
            + (
                f"expired on {_when(info.not_after)}"
                if expired
                else f"is not valid before {_when(info.not_before)} (check this machine's clock)"
            )
            + ": make a new one with 'circman5 opcua create-certificate' and have the server "
            "trust it",
        )
    if info.application_uri != security.application_uri:
        raise OpcUaRefused(
            URI_MISMATCH,
            f"application URI mismatch: the connector sends '{security.application_uri}' but the "
            f"client certificate {security.certificate} carries "
            f"'{info.application_uri or '(none)'}'; set application_uri to the certificate's URI "
            "or make a certificate for this URI",
        )
    if security.server_certificate is not None:
        pinned = _load(security.server_certificate, "pinned server certificate")
        pinned_info = describe_certificate(pinned)
        if now > pinned_info.not_after:
            raise OpcUaRefused(
                CERTIFICATE_TIME,
                f"the pinned server certificate {security.server_certificate} ({_thumb(pinned)}) "
                f"expired on {_when(pinned_info.not_after)}: the server needs a new certificate; "
                "pin it again with 'circman5 opcua trust'",
            )


def _load(path: Any, what: str) -> x509.Certificate:
    try:
        return load_certificate(path)
    except ConnectorError as err:
        raise OpcUaRefused(CERTIFICATE_FILE, f"{what}: {err}") from err


# -- after a failed attempt ------------------------------------------------------------------------


async def fetch_offers(url: str, timeout_s: float) -> list[Offer]:
    """The server's endpoints (GetEndpoints without security); raises on any failure."""
    from asyncua.client.client import Client

    client = Client(url, timeout=timeout_s)
    async with asyncio.timeout(timeout_s * 2):
        endpoints = await client.connect_and_get_server_endpoints()
    return [
        Offer(
            str(endpoint.SecurityPolicyUri).rsplit("#", 1)[-1],
            endpoint.SecurityMode.name,
            bytes(endpoint.ServerCertificate or b""),
        )
        for endpoint in endpoints
    ]


def _status_code(err: BaseException) -> int | None:
    if isinstance(err, UaStatusCodeError):
        return int(err.code)
    return None


def _server_absent(err: BaseException) -> bool:
    """Nobody answered (or the network timed out): no refusal to explain."""
    return isinstance(err, TimeoutError) or server_absent(err)


async def diagnose(
    err: BaseException, settings: OpcUaConnectorSettings, describe: str
) -> OpcUaRefused | None:
    """An :class:`OpcUaRefused` for a failed connection attempt, or None when ``err`` is not a
    refusal (the server is absent or the network failed: ``describe`` stays the reason)."""
    if isinstance(err, OpcUaRefused):
        return err
    security = settings.security
    code = _status_code(err)
    name = describe
    if code in _USER_CODES:
        if settings.username is None:
            return OpcUaRefused(
                USER_REJECTED,
                f"the server refused an anonymous login ({name}): set username and password",
            )
        return OpcUaRefused(
            USER_REJECTED,
            f"user '{settings.username}' rejected by the server ({name}): wrong user name or "
            "password, or the user may not log in",
        )
    if code in _TIME_CODES:
        return OpcUaRefused(
            CERTIFICATE_TIME,
            f"the server says a certificate is expired or not yet valid ({name}): "
            + _our_validity(security)
            + "; check the clocks of both machines",
        )
    if code == StatusCodes.BadCertificateUriInvalid:
        return OpcUaRefused(
            URI_MISMATCH,
            f"application URI mismatch ({name}): the server does not accept "
            f"'{security.application_uri}' with our certificate; the URI in the certificate and "
            "application_uri must be the same",
        )
    if code in _REVOKED_CODES:
        return OpcUaRefused(
            CERTIFICATE_INVALID,
            f"the server cannot accept our certificate ({name}): revoked, or the server has no "
            "revocation list for its issuer",
        )
    if code in _INVALID_CODES:
        return OpcUaRefused(
            CERTIFICATE_INVALID,
            f"the server rejects our client certificate as invalid ({name}): make one with "
            "'circman5 opcua create-certificate'",
        )
    if _server_absent(err):
        return None
    # The error does not say: ask the server what it offers and which certificate it presents.
    try:
        offers = await fetch_offers(settings.url, settings.request_timeout_s)
    except Exception as fetch_err:
        logger.debug("opcua %s: GetEndpoints for diagnosis: %r", settings.name, fetch_err)
        if code in _UNTRUSTED_CODES:
            return _untrusted(security, name)
        return None
    wanted = (security.policy, security.mode)
    matching = [
        o
        for o in offers
        if (o.policy, o.mode) == wanted or (security.policy == "None" and o.policy == "None")
    ]
    if not matching:
        offered = ", ".join(dict.fromkeys(str(o) for o in offers)) or "nothing"
        asked = "None" if security.policy == "None" else f"{security.policy} {security.mode}"
        return OpcUaRefused(
            NOT_OFFERED,
            f"security {asked} is not offered by the server; it offers: {offered}",
        )
    if security.server_certificate is not None:
        with contextlib.suppress(OpcUaRefused):
            pinned = _load(security.server_certificate, "pinned server certificate")
            presented = certificate_from_bytes(matching[0].certificate, "server certificate")
            if presented != pinned:
                return OpcUaRefused(
                    SERVER_MISMATCH,
                    "the server certificate does not match the pinned one: pinned "
                    f"{security.server_certificate} has {_thumb(pinned)}, the server presents "
                    f"{_thumb(presented)} ({presented.subject.rfc4514_string()}); if the server "
                    "got a new certificate, pin it again with 'circman5 opcua trust'",
                )
    if security.policy == "None":
        if code in _NOT_OFFERED_CODES:
            return OpcUaRefused(NOT_OFFERED, f"the server refused security None ({name})")
        return None
    if code in _NOT_OFFERED_CODES:
        return OpcUaRefused(
            NOT_OFFERED,
            f"the server refused {security.policy} {security.mode} ({name}); it offers: "
            + ", ".join(dict.fromkeys(str(o) for o in offers)),
        )
    if code in _UNTRUSTED_CODES or _channel_refused(err):
        # the same words whichever way asyncua reported it, so repeats are recognized as such
        return _untrusted(security, name if code in _UNTRUSTED_CODES else "closed at once")
    return None


def _channel_refused(err: BaseException) -> bool:
    """The server answered OpenSecureChannel with a fault at once (the usual answer to an unknown
    client certificate: asyncua shows it as an AssertionError or a parse error). A plain lost
    connection is not taken as a refusal: a restarting server looks the same."""
    if isinstance(err, AssertionError) or type(err).__name__ == "NotEnoughData":
        return True
    return _status_code(err) == StatusCodes.BadTcpInternalError


def _our_certificate(security: OpcUaSecurity) -> x509.Certificate | None:
    if security.certificate is None:
        return None
    try:
        return load_certificate(security.certificate)
    except ConnectorError:
        return None


def _our_validity(security: OpcUaSecurity) -> str:
    ours = _our_certificate(security)
    if ours is None:
        return "our client certificate cannot be read"
    info = describe_certificate(ours)
    return (
        f"our client certificate is valid from {_when(info.not_before)} until "
        f"{_when(info.not_after)}"
    )


def _untrusted(security: OpcUaSecurity, name: str) -> OpcUaRefused:
    ours = _our_certificate(security)
    which = (
        f"{security.certificate} ({_thumb(ours)}, {ours.subject.rfc4514_string()})"
        if ours is not None
        else str(security.certificate)
    )
    return OpcUaRefused(
        UNTRUSTED_CLIENT,
        f"untrusted client certificate: the server refused the secure channel ({name}); it does "
        f"not (yet) trust our certificate {which}: on the server, move it from the rejected to "
        "the trusted certificates",
    )


# -- asyncua's own log lines -----------------------------------------------------------------------

_NOISY_LOGGERS = (
    "asyncua.client.ua_client.UASocketProtocol",
    "asyncua.client.ua_client",
    "asyncua.client.ua_client.UaClient",
    "asyncua.client.client",
    "asyncua.crypto.uacrypto",
)


class _ToDebug(logging.Filter):
    """asyncua logs a refused channel at ERROR/CRITICAL, with tracebacks; the connector reports
    the refusal itself (one WARNING with the reason), so these records go to DEBUG."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno > logging.DEBUG:
            record.levelno = logging.DEBUG
            record.levelname = "DEBUG"
        return logging.getLogger(record.name).isEnabledFor(logging.DEBUG)


_FILTER = _ToDebug()


def quiet_asyncua_logs() -> None:
    """Install the DEBUG demotion on asyncua's client loggers (idempotent)."""
    for name in _NOISY_LOGGERS:
        log = logging.getLogger(name)
        if _FILTER not in log.filters:
            log.addFilter(_FILTER)
