"""One connection attempt with a connector's settings: ``circman5 opcua test``."""

from __future__ import annotations

import asyncio

from circman5.connectors.opcua.client import OpcUaConnector
from circman5.connectors.opcua.config import OpcUaConnectorSettings

__all__ = ["probe_connection"]


class _Quiet:
    """Problems are the answer of the probe, not events."""

    def report(
        self, severity: str, error_type: str, message: str, details: dict[str, object]
    ) -> None:
        return None


async def probe_connection(settings: OpcUaConnectorSettings, timeout_s: float) -> tuple[bool, str]:
    """(connected, what happened): connected and subscribed, or the reason of the first failure."""
    connector = OpcUaConnector(settings, _Quiet())
    async with connector:
        try:
            async with asyncio.timeout(timeout_s):
                while True:
                    status = connector.status
                    if status.connected:
                        security = settings.security
                        mode = (
                            "no security"
                            if security.policy == "None"
                            else f"{security.policy} {security.mode}"
                        )
                        return True, f"connected ({mode}, {len(connector.paths())} tag(s))"
                    if status.last_error:
                        return False, f"refused or failed: {status.last_error}"
                    await asyncio.sleep(0.05)
        except TimeoutError:
            return False, f"no answer within {timeout_s:.0f} s"
