"""The OPC UA PLC, read and written with a real asyncua client."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from asyncua import ua
from asyncua.client.client import Client
from asyncua.ua.uaerrors import UaStatusCodeError
from pymodbus.client import AsyncModbusTcpClient

from simulators.bench import SimulatorBench
from simulators.certs import CertificateFiles, ensure_certificate
from simulators.modbus_devices import UNIT_LINE
from simulators.opcua_plc import (
    NAMESPACE_URI,
    NODES,
)
from simulators.tags import TAGS, unece_unit_id
from tests.fixtures.simulators import CLIENT_APPLICATION_URI
from tests.simulators.helpers import eventually, secure_client

pytestmark = pytest.mark.asyncio(loop_scope="session")


@pytest_asyncio.fixture(autouse=True, loop_scope="session")
async def _reset(sim_bench_shared: SimulatorBench) -> AsyncIterator[None]:
    yield
    await sim_bench_shared.reset()


PYTHON_TYPES: dict[ua.VariantType, type] = {
    ua.VariantType.Double: float,
    ua.VariantType.Boolean: bool,
    ua.VariantType.String: str,
    ua.VariantType.UInt32: int,
}


async def test_every_documented_variable_reads_with_units_timestamp_and_status(
    sim_bench_shared: SimulatorBench,
) -> None:
    assert sim_bench_shared.opcua is not None
    sim_bench_shared.runner.paused = True  # hold the plant still so values can be compared exactly
    async with Client(sim_bench_shared.opcua.url, timeout=5) as client:
        idx = await client.get_namespace_index(NAMESPACE_URI)
        assert idx == sim_bench_shared.opcua.namespace_index
        plant = sim_bench_shared.plant.snapshot()

        async def pushed() -> bool:
            node = client.get_node(f"ns={idx};s=Line1.Laminator.Temperature")
            return bool(await node.read_value() == plant["production_line.temperature"])

        await eventually(pushed, "the paused plant's values in the address space")
        for spec in NODES:
            node = client.get_node(f"ns={idx};s={spec.node_id}")
            dv = await node.read_data_value()
            assert dv.StatusCode is not None and dv.StatusCode.is_good(), spec.node_id
            assert dv.SourceTimestamp is not None
            assert dv.Value is not None and dv.Value.VariantType == spec.variant, spec.node_id
            value = dv.Value.Value
            assert isinstance(value, PYTHON_TYPES[spec.variant])
            assert value == plant[spec.path], spec.node_id
            assert sim_bench_shared.opcua.node_ids[spec.path] == f"ns={idx};s={spec.node_id}"
            if spec.variant == ua.VariantType.Double:
                tag = TAGS[spec.path]
                eu = await client.get_node(
                    f"ns={idx};s={spec.node_id}.EngineeringUnits"
                ).read_value()
                assert eu.UnitId == unece_unit_id(tag.unece)
                assert eu.DisplayName.Text == tag.unit
                eu_range = await client.get_node(f"ns={idx};s={spec.node_id}.EURange").read_value()
                assert (eu_range.Low, eu_range.High) == (tag.low, tag.high)
        # the browse path matches the node id
        laminator = await client.nodes.objects.get_child([f"{idx}:Line1", f"{idx}:Laminator"])
        temperature = await laminator.get_child(f"{idx}:Temperature")
        assert temperature.nodeid.to_string() == f"ns={idx};s=Line1.Laminator.Temperature"
        setpoint = client.get_node(f"ns={idx};s=Line1.Laminator.TargetTemperature")
        assert ua.AccessLevel.CurrentWrite in await setpoint.get_access_level()


async def test_setpoint_writes_reach_the_plant_and_every_protocol(
    sim_bench_shared: SimulatorBench,
) -> None:
    assert sim_bench_shared.opcua is not None and sim_bench_shared.modbus is not None
    writes_before = sim_bench_shared.opcua.writes_applied  # the bench is shared by other tests
    modbus = AsyncModbusTcpClient("127.0.0.1", port=sim_bench_shared.modbus.tcp_port, timeout=3)
    await modbus.connect()
    try:
        async with Client(sim_bench_shared.opcua.url, timeout=5) as client:
            idx = sim_bench_shared.opcua.namespace_index
            target = client.get_node(f"ns={idx};s=Line1.Laminator.TargetTemperature")
            await target.write_value(ua.Variant(25.5, ua.VariantType.Double))
            assert sim_bench_shared.plant.setpoints.target_temperature == 25.5
            assert await target.read_value() == 25.5
            regs = await modbus.read_holding_registers(0, count=2, device_id=UNIT_LINE)
            value = modbus.convert_from_registers(regs.registers, modbus.DATATYPE.FLOAT32)
            assert value == 25.5

            running = client.get_node(f"ns={idx};s=Line1.Laminator.Running")
            await running.write_value(ua.Variant(False, ua.VariantType.Boolean))
            assert sim_bench_shared.plant.setpoints.running is False
            coils = await modbus.read_coils(0, count=1, device_id=UNIT_LINE)
            assert coils.bits[0] is False
            status = client.get_node(f"ns={idx};s=Line1.Laminator.Status")

            async def idle() -> bool:
                return bool(await status.read_value() == "idle")

            await eventually(idle, "the line to report idle over OPC UA")

            # and the other way round: a Modbus write shows on OPC UA
            words = modbus.convert_to_registers(42.0, modbus.DATATYPE.FLOAT32)
            assert not (await modbus.write_registers(2, words, device_id=UNIT_LINE)).isError()
            cycle = client.get_node(f"ns={idx};s=Line1.Laminator.CycleTime")

            async def cycle_42() -> bool:
                return bool(await cycle.read_value() == 42.0)

            await eventually(cycle_42, "the Modbus cycle-time write on OPC UA")
            assert sim_bench_shared.opcua.writes_applied - writes_before == 2
    finally:
        modbus.close()


async def test_out_of_range_setpoint_is_refused(sim_bench_shared: SimulatorBench) -> None:
    assert sim_bench_shared.opcua is not None
    async with Client(sim_bench_shared.opcua.url, timeout=5) as client:
        idx = sim_bench_shared.opcua.namespace_index
        target = client.get_node(f"ns={idx};s=Line1.Laminator.TargetTemperature")
        with pytest.raises(ua.uaerrors.BadOutOfRange):
            await target.write_value(ua.Variant(90.0, ua.VariantType.Double))
        with pytest.raises(UaStatusCodeError):  # read-only process value
            temperature = client.get_node(f"ns={idx};s=Line1.Laminator.Temperature")
            await temperature.write_value(ua.Variant(1.0, ua.VariantType.Double))
    assert sim_bench_shared.plant.setpoints.target_temperature == 22.5


async def test_batch_methods(sim_bench_shared: SimulatorBench) -> None:
    assert sim_bench_shared.opcua is not None
    async with Client(sim_bench_shared.opcua.url, timeout=5) as client:
        idx = sim_bench_shared.opcua.namespace_index
        batch = client.get_node(f"ns={idx};s=Line1.Batch")
        started = await batch.call_method(
            f"{idx}:StartBatch", ua.Variant("ORDER-7", ua.VariantType.String)
        )
        assert started == "ORDER-7"
        assert sim_bench_shared.plant.snapshot()["batch.id"] == "ORDER-7"
        assert await client.get_node(f"ns={idx};s=Line1.Batch.BatchId").read_value() == "ORDER-7"
        ended = await batch.call_method(f"{idx}:EndBatch")
        assert ended == "ORDER-7"
        assert sim_bench_shared.plant.completed_batches[-1].batch_id == "ORDER-7"
        with pytest.raises(ua.uaerrors.BadInvalidArgument):
            await batch.call_method(
                f"{idx}:StartBatch", ua.Variant("x" * 200, ua.VariantType.String)
            )


async def test_endpoints_offer_none_sign_and_sign_and_encrypt(
    sim_bench_shared: SimulatorBench,
) -> None:
    assert sim_bench_shared.opcua is not None
    client = Client(sim_bench_shared.opcua.url, timeout=5)
    endpoints = await client.connect_and_get_server_endpoints()
    offered = {(e.SecurityPolicyUri.rsplit("#", 1)[-1], e.SecurityMode) for e in endpoints}
    assert offered == {
        ("None", ua.MessageSecurityMode.None_),
        ("Basic256Sha256", ua.MessageSecurityMode.Sign),
        ("Basic256Sha256", ua.MessageSecurityMode.SignAndEncrypt),
    }
    tokens = {t.TokenType for e in endpoints for t in e.UserIdentityTokens}
    assert tokens == {ua.UserTokenType.Anonymous, ua.UserTokenType.UserName}


@pytest.mark.parametrize(
    "mode",
    [ua.MessageSecurityMode.SignAndEncrypt, ua.MessageSecurityMode.Sign],
    ids=["sign-and-encrypt", "sign"],
)
async def test_secure_session_with_user_and_wrong_password(
    sim_bench_shared: SimulatorBench,
    opcua_client_cert: CertificateFiles,
    mode: ua.MessageSecurityMode,
) -> None:
    assert sim_bench_shared.opcua is not None
    idx = sim_bench_shared.opcua.namespace_index
    client = await secure_client(sim_bench_shared, opcua_client_cert, mode, "operator", "circman5")
    async with client:
        assert client.security_policy.Mode == mode
        target = client.get_node(f"ns={idx};s=Line1.Laminator.TargetTemperature")
        await target.write_value(ua.Variant(24.0, ua.VariantType.Double))
        assert await target.read_value() == 24.0
    assert sim_bench_shared.plant.setpoints.target_temperature == 24.0

    for user, password in (("operator", "wrong"), ("nobody", "circman5")):
        client = await secure_client(sim_bench_shared, opcua_client_cert, mode, user, password)
        with pytest.raises(ua.uaerrors.BadUserAccessDenied):
            async with client:
                pass


async def test_unknown_client_certificates_are_rejected_until_trusted(
    sim_bench_shared: SimulatorBench, tmp_path: Path
) -> None:
    assert sim_bench_shared.opcua is not None
    plc = sim_bench_shared.opcua
    stranger = ensure_certificate(tmp_path, name="stranger", application_uri=CLIENT_APPLICATION_URI)
    mode = ua.MessageSecurityMode.SignAndEncrypt
    client = await secure_client(
        sim_bench_shared, stranger, mode, "operator", "circman5", trusted=False
    )
    with pytest.raises(ua.uaerrors.BadCertificateUntrusted):
        async with client:
            pass
    rejected = sorted(plc.client_trust.rejected.iterdir())
    assert [p.name for p in rejected if "stranger" in p.name]
    assert plc.client_trust.trust_rejected()  # what the administrator does
    client = await secure_client(
        sim_bench_shared, stranger, mode, "operator", "circman5", trusted=False
    )
    async with client:
        assert client.security_policy.Mode == mode


class _Changes:
    def __init__(self) -> None:
        self.values: list[Any] = []

    def datachange_notification(self, node: Any, val: Any, data: Any) -> None:
        self.values.append(val)


async def test_subscriptions_see_value_changes(sim_bench_shared: SimulatorBench) -> None:
    assert sim_bench_shared.opcua is not None
    async with Client(sim_bench_shared.opcua.url, timeout=5) as client:
        idx = sim_bench_shared.opcua.namespace_index
        handler = _Changes()
        subscription = await client.create_subscription(50, handler)
        await subscription.subscribe_data_change(
            client.get_node(f"ns={idx};s=Line1.EnergyMeter.ActivePower")
        )
        await eventually(lambda: len(set(handler.values)) >= 3, "three different power values")
        assert all(isinstance(v, float) for v in handler.values)
        await subscription.delete()
