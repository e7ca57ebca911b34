"""OPC UA PLC configurations: anonymous access, and the 10,000-tag scale knob."""

from __future__ import annotations

from pathlib import Path

import pytest
from asyncua import ua
from asyncua.client.client import Client

from simulators.certs import CertificateFiles, ensure_certificate
from simulators.opcua_plc import OpcUaConfig, synthetic_node_id, synthetic_values
from tests.fixtures.simulators import CLIENT_APPLICATION_URI, BenchFactory
from tests.simulators.helpers import eventually, secure_client


async def test_anonymous_read_only(sim_bench_factory: BenchFactory) -> None:
    bench = await sim_bench_factory(
        modbus=None,
        opcua=OpcUaConfig(port=0, security=("None",), allow_anonymous=True, anonymous_write=False),
    )
    assert bench.opcua is not None
    idx = bench.opcua.namespace_index
    async with Client(bench.opcua.url, timeout=5) as client:
        target = client.get_node(f"ns={idx};s=Line1.Laminator.TargetTemperature")
        assert await target.read_value() == 22.5
        with pytest.raises(ua.uaerrors.BadUserAccessDenied):
            await target.write_value(ua.Variant(23.0, ua.VariantType.Double))
        batch = client.get_node(f"ns={idx};s=Line1.Batch")
        with pytest.raises(ua.uaerrors.BadUserAccessDenied):
            await batch.call_method(f"{idx}:EndBatch")
    client = Client(bench.opcua.url, timeout=5)
    client.set_user("operator")
    client.set_password("circman5")
    async with client:
        target = client.get_node(f"ns={idx};s=Line1.Laminator.TargetTemperature")
        await target.write_value(ua.Variant(23.0, ua.VariantType.Double))
    assert bench.plant.setpoints.target_temperature == 23.0


async def test_no_anonymous_and_ten_thousand_synthetic_tags(
    sim_bench_factory: BenchFactory, opcua_client_cert: CertificateFiles
) -> None:
    bench = await sim_bench_factory(
        modbus=None,
        opcua=OpcUaConfig(
            port=0,
            allow_anonymous=False,
            security=("None", "Basic256Sha256_SignAndEncrypt"),
            synthetic_tags=10_000,
            synthetic_rate_hz=5.0,
        ),
    )
    assert bench.opcua is not None
    idx = bench.opcua.namespace_index
    with pytest.raises(ua.uaerrors.BadIdentityTokenRejected):
        async with Client(bench.opcua.url, timeout=5):
            pass

    client = Client(bench.opcua.url, timeout=10)
    client.set_user("operator")
    client.set_password("circman5")
    async with client:
        first = client.get_node(f"ns={idx};s={synthetic_node_id(0)}")
        last = client.get_node(f"ns={idx};s={synthetic_node_id(9_999)}")
        before = await last.read_value()
        possible = {float(v) for tick in range(0, 200) for v in synthetic_values(10_000, tick)[-1:]}
        assert before in possible

        async def changed() -> bool:
            return bool(await last.read_value() != before)

        await eventually(changed, "the last synthetic tag to change")
        assert 0.0 <= await first.read_value() <= 100.0
        folder = client.get_node(f"ns={idx};s=Line1.Synthetic")
        groups = await folder.get_children()
        assert len(groups) == 100
        assert len(await groups[-1].get_children()) == 100

    secure = await secure_client(
        bench, opcua_client_cert, ua.MessageSecurityMode.SignAndEncrypt, "operator", "circman5"
    )
    async with secure:
        status = secure.get_node(f"ns={idx};s=Line1.Laminator.Status")
        assert await status.read_value() in ("running", "idle")


async def test_trust_all_accepts_any_client_certificate(
    sim_bench_factory: BenchFactory, tmp_path: Path
) -> None:
    bench = await sim_bench_factory(
        modbus=None, opcua=OpcUaConfig(port=0, trust_all=True, security=("Basic256Sha256_Sign",))
    )
    stranger = ensure_certificate(tmp_path, name="stranger", application_uri=CLIENT_APPLICATION_URI)
    client = await secure_client(
        bench, stranger, ua.MessageSecurityMode.Sign, "operator", "circman5", trusted=False
    )
    async with client:
        assert client.security_policy.Mode == ua.MessageSecurityMode.Sign
    assert bench.endpoints()["opcua"]["client_trust"] == "all"
