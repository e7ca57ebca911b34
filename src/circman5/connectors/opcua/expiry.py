"""Certificate expiry: days left of our client certificate and the pinned server certificate.

The days left go into the connector status (``extra["certificate_days_left"]``, exported as the
metric ``circman5_opcua_certificate_days_left{connector, certificate}``); a certificate that
expires within :data:`WARN_DAYS` days raises one ``CertificateExpiring`` warning event (once per
certificate and process), so there is time to make and trust a new one.
"""

from __future__ import annotations

import datetime as dt
import logging
from pathlib import Path

from circman5.connectors.opcua.certificates import describe_certificate, load_certificate
from circman5.connectors.opcua.config import OpcUaSecurity
from circman5.errors import ConnectorError
from circman5.reporting import ProblemReporter

__all__ = ["WARN_DAYS", "CertificateExpiry"]

logger = logging.getLogger(__name__)

WARN_DAYS = 30.0


class CertificateExpiry:
    """Checks a connector's certificates; reports each one expiring soon once."""

    def __init__(self, source: str, reporter: ProblemReporter, extra: dict[str, object]) -> None:
        self._source = source
        self._reporter = reporter
        self._extra = extra
        self._warned: set[str] = set()

    def check(self, security: OpcUaSecurity, now: dt.datetime | None = None) -> dict[str, float]:
        """Days left per certificate ("client", "server"); also stored in the status."""
        now = now or dt.datetime.now(dt.UTC)
        files: dict[str, Path] = {}
        if security.policy != "None" and security.certificate is not None:
            files["client"] = security.certificate
        if security.policy != "None" and security.server_certificate is not None:
            files["server"] = security.server_certificate
        days: dict[str, float] = {}
        for role, path in files.items():
            try:
                info = describe_certificate(load_certificate(path))
            except ConnectorError:
                continue  # reported as a refusal by the connection attempt
            left = info.days_left(now)
            days[role] = round(left, 2)
            if left < WARN_DAYS and info.sha256 not in self._warned:
                self._warned.add(info.sha256)
                self._warn(role, path, left, info.not_after, info.sha1)
        self._extra["certificate_days_left"] = days
        return days

    def _warn(self, role: str, path: Path, left: float, until: dt.datetime, sha1: str) -> None:
        which = "our client certificate" if role == "client" else "the pinned server certificate"
        state = f"expires in {left:.0f} days" if left >= 0 else "has expired"
        action = (
            "make a new one with 'circman5 opcua create-certificate' and have the server trust it"
            if role == "client"
            else "the server needs a new certificate; pin it with 'circman5 opcua trust'"
        )
        message = (
            f"opcua connector {self._source}: {which} {path} {state} "
            f"({until:%Y-%m-%d %H:%M} UTC, SHA-1 {sha1}): {action}"
        )
        try:
            self._reporter.report(
                "warning",
                "CertificateExpiring",
                message,
                {
                    "source": self._source,
                    "certificate": role,
                    "path": str(path),
                    "days_left": round(left, 2),
                    "not_after": until.isoformat(),
                    "sha1": sha1,
                },
            )
        except Exception:  # a reporter must not raise; if it does, the connector goes on
            logger.exception("problem reporter failed")
