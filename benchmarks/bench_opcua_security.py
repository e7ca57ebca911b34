"""OPC UA security: how soon values flow after the server's administrator trusts our certificate.

Against the node-opcua server of the tests (Basic256Sha256 SignAndEncrypt, user login, unknown
client certificates go to ``pki/rejected``): a connector with the default reconnect settings is
refused for a while (``REFUSED_S``), then the certificate is moved to ``pki/trusted/certs`` and
the time until the first good value is measured. Target: 3 s. Baseline (same run): the time a
fresh connector with an already trusted certificate needs from start to its first value, i.e.
what connecting and subscribing cost by themselves.
"""

from __future__ import annotations

import asyncio
import statistics
import tempfile
import time
from pathlib import Path

from benchmarks.report import Row
from circman5.connectors.config import OpcUaConnectorSettings
from circman5.connectors.opcua.certificates import (
    CertificateFiles,
    create_certificate,
    fetch_server_certificates,
    store_certificate,
)
from circman5.connectors.opcua.client import OpcUaConnector
from circman5.samples import Quality
from tests.fixtures.node_opcua import PASSWORD, TEMPERATURE, USER, NodeOpcUaServer

ROUNDS = 3
REFUSED_S = 12.0  # long enough for the backoff to reach its cap
TARGET_S = 3.0
URI = "urn:circman5:bench:edge"


class _Quiet:
    def report(
        self, severity: str, error_type: str, message: str, details: dict[str, object]
    ) -> None:
        return None


def _settings(
    server: NodeOpcUaServer, client: CertificateFiles, pinned: Path
) -> OpcUaConnectorSettings:
    return OpcUaConnectorSettings.model_validate(
        {
            "type": "opcua",
            "name": "bench",
            "url": server.url,
            "username": USER,
            "password": PASSWORD,
            "security": {
                "policy": "Basic256Sha256",
                "mode": "SignAndEncrypt",
                "certificate": str(client.cert_der),
                "private_key": str(client.key_pem),
                "application_uri": URI,
                "server_certificate": str(pinned),
            },
            "tags": [{"address": TEMPERATURE, "path": "bench.temperature"}],
        }
    )


async def _first_value(connector: OpcUaConnector) -> float:
    """Monotonic time of the connector's first good sample."""
    async for batch in connector.batches():
        if any(sample.quality is Quality.GOOD for sample in batch):
            return time.monotonic()
    raise RuntimeError("connector closed before a value")


async def _after_trust(server: NodeOpcUaServer, client: CertificateFiles, pinned: Path) -> float:
    connector = OpcUaConnector(_settings(server, client, pinned), _Quiet())
    async with connector:
        first = asyncio.create_task(_first_value(connector))
        await asyncio.sleep(REFUSED_S)
        assert server.rejected(), "the server did not put our certificate in pki/rejected"
        assert not first.done(), "connected although the certificate was not trusted"
        trusted_at = time.monotonic()
        server.trust_rejected()
        async with asyncio.timeout(60):
            return await first - trusted_at


async def _fresh_connect(server: NodeOpcUaServer, client: CertificateFiles, pinned: Path) -> float:
    connector = OpcUaConnector(_settings(server, client, pinned), _Quiet())
    started = time.monotonic()
    async with connector:
        async with asyncio.timeout(60):
            return await _first_value(connector) - started


async def _run(server: NodeOpcUaServer, workdir: Path) -> tuple[list[float], list[float]]:
    found = await fetch_server_certificates(server.url)
    pinned = store_certificate(found[0].certificate, workdir / "server.der")
    after_trust: list[float] = []
    fresh: list[float] = []
    for round_ in range(ROUNDS):
        client = create_certificate(
            workdir / f"pki{round_}", application_uri=URI, name=f"b{round_}"
        )
        after_trust.append(await _after_trust(server, client, pinned))
        fresh.append(await _fresh_connect(server, client, pinned))
    return after_trust, fresh


def main() -> list[Row]:
    with tempfile.TemporaryDirectory(prefix="circman5-bench-opcua-security-") as tmp:
        workdir = Path(tmp)
        (workdir / "server").mkdir()
        server = NodeOpcUaServer(workdir / "server").start()
        try:
            after_trust, fresh = asyncio.run(_run(server, workdir))
        finally:
            server.stop()
    return [
        Row(
            name="first value after the server trusts our certificate (default reconnect "
            f"settings, refused for {REFUSED_S:.0f} s before)",
            value=statistics.median(after_trust),
            unit="s",
            target=TARGET_S,
            higher_is_better=False,
            baseline=statistics.median(fresh),
            baseline_label="s: fresh connector, trusted certificate, start to first value",
        )
    ]
