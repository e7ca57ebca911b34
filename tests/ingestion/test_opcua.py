"""The OPC UA connector against the simulated PLC (asyncua server)."""

from __future__ import annotations

import shutil
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from circman5.connectors.config import OpcUaConnectorSettings
from circman5.connectors.opcua.client import OpcUaConnector
from circman5.errors import TagWriteError
from circman5.samples import Quality
from simulators.bench import SimulatorBench
from simulators.certs import CertificateFiles
from tests.ingestion.conftest import (
    RecordingReporter,
    collecting,
    eventually,
    outage_and_recovery,
)

pytestmark = pytest.mark.asyncio(loop_scope="session")

NS = "urn:circman5:sim:plc"

TAGS: list[dict[str, Any]] = [
    {"address": "s=Line1.Laminator.Temperature", "path": "production_line.temperature"},
    {"address": f"nsu={NS};s=Line1.Laminator.Status", "path": "production_line.status"},
    {"address": "s=Line1.Laminator.Running", "path": "production_line.running", "writable": True},
    {"address": "s=Line1.Laminator.ModulesProduced", "path": "production_line.modules_produced"},
    {
        "address": "s=Line1.Laminator.TargetTemperature",
        "path": "production_line.target_temperature",
        "writable": True,
        "sampling_interval_ms": 50,
    },
    {
        "address": "s=Line1.Laminator.CycleTime",
        "path": "production_line.cycle_time",
        "writable": True,
        "scale": 1000.0,
        "unit": "ms",
    },
    {"address": "s=Line1.Environment.Humidity", "path": "environment.humidity", "deadband": 0.5},
]


@pytest_asyncio.fixture(autouse=True, loop_scope="session")
async def _reset(sim_bench_shared: SimulatorBench) -> AsyncIterator[None]:
    yield
    await sim_bench_shared.reset()


def plc_settings(
    bench: SimulatorBench, tags: list[dict[str, Any]] | None = None, **extra: Any
) -> OpcUaConnectorSettings:
    assert bench.opcua is not None
    return OpcUaConnectorSettings.model_validate(
        {
            "type": "opcua",
            "name": "plc",
            "url": bench.opcua.url,
            "namespace_uri": NS,
            "publishing_interval_ms": 50,
            "sampling_interval_ms": 50,
            "reconnect_initial_s": 0.2,
            "reconnect_max_s": 1.0,
            "watchdog_interval_s": 0.5,
            "tags": TAGS if tags is None else tags,
            **extra,
        }
    )


async def test_values_with_source_timestamps_and_types(sim_bench_shared: SimulatorBench) -> None:
    async with collecting(OpcUaConnector(plc_settings(sim_bench_shared))) as collector:
        await eventually(lambda: len(collector.latest()) == len(TAGS), what="every tag")
        latest = collector.latest()
        plant = sim_bench_shared.plant.snapshot()
        assert latest["production_line.status"].value == plant["production_line.status"]
        assert latest["production_line.running"].value is True
        assert isinstance(latest["production_line.modules_produced"].value, int)
        assert isinstance(latest["production_line.temperature"].value, float)
        assert latest["production_line.cycle_time"].value == pytest.approx(
            plant["production_line.cycle_time"] * 1000.0
        )
        sample = latest["production_line.temperature"]
        assert sample.source == "plc"
        assert sample.address == f"nsu={NS};s=Line1.Laminator.Temperature"
        assert abs(sample.timestamp_ns - time.time_ns()) < 10 * 10**9
        status = collector.connector.status
        assert status.connected and status.samples_in >= len(TAGS)
        # values keep coming as the plant runs
        count = len(collector.values("production_line.temperature"))
        await eventually(
            lambda: len(collector.values("production_line.temperature")) > count,
            what="a data change",
        )


async def test_write_setpoint_changes_the_plant(sim_bench_shared: SimulatorBench) -> None:
    connector = OpcUaConnector(plc_settings(sim_bench_shared))
    async with collecting(connector) as collector:
        await eventually(lambda: "production_line.target_temperature" in collector.latest())
        await connector.write("production_line.target_temperature", 24)  # int -> Double
        assert sim_bench_shared.plant.setpoints.target_temperature == 24.0
        await eventually(
            lambda: collector.latest()["production_line.target_temperature"].value == 24.0,
            what="the new setpoint in the subscription",
        )
        await connector.write(f"nsu={NS};s=Line1.Laminator.Running", "false")  # by address
        assert sim_bench_shared.plant.setpoints.running is False
        await connector.write("production_line.cycle_time", 40_000.0)  # scaled: ms -> s
        assert sim_bench_shared.plant.setpoints.cycle_time == pytest.approx(40.0)
        with pytest.raises(TagWriteError, match="BadOutOfRange"):
            await connector.write("production_line.target_temperature", 500.0)
        with pytest.raises(TagWriteError, match="not writable"):
            await connector.write("production_line.temperature", 20.0)
        with pytest.raises(TagWriteError, match="is not a boolean"):
            await connector.write("production_line.running", 7)
        with pytest.raises(TagWriteError, match="no tag"):
            await connector.write("production_line.nothing", 1)
        assert connector.status.writes == 3 and connector.status.write_errors >= 2


async def test_status_codes_become_quality(sim_bench_shared: SimulatorBench) -> None:
    async with collecting(OpcUaConnector(plc_settings(sim_bench_shared))) as collector:
        await eventually(lambda: "production_line.temperature" in collector.latest())
        sim_bench_shared.faults.bad_quality("production_line.temperature", "uncertain")
        await eventually(
            lambda: "production_line.temperature" in collector.latest(Quality.UNCERTAIN),
            what="an uncertain sample",
        )
        assert isinstance(
            collector.latest(Quality.UNCERTAIN)["production_line.temperature"].value, float
        )
        sim_bench_shared.faults.bad_quality("production_line.temperature", "bad")
        await eventually(
            lambda: "production_line.temperature" in collector.latest(Quality.BAD),
            what="a bad sample",
        )
        assert collector.connector.status.stale_tags >= 1
        sim_bench_shared.faults.clear_quality()
        collector.samples.clear()
        await eventually(
            lambda: "production_line.temperature" in collector.latest(), what="good again"
        )
        assert collector.connector.status.stale_tags == 0


async def test_server_restart_is_followed_by_a_full_resubscribe(
    sim_bench_shared: SimulatorBench,
) -> None:
    reporter = RecordingReporter()
    connector = OpcUaConnector(plc_settings(sim_bench_shared), reporter)
    async with collecting(connector) as collector:
        paths = {t["path"] for t in TAGS}
        await outage_and_recovery(sim_bench_shared, "opcua", connector, collector, paths)
        assert connector.sessions >= 2
        assert reporter.of("ConnectionLost")


async def test_browse_discovery(sim_bench_shared: SimulatorBench) -> None:
    settings = plc_settings(
        sim_bench_shared,
        tags=[
            {
                "address": "s=Line1.Materials.SolarGlass.Inventory",
                "path": "materials.solar_glass.inventory",
            }
        ],
        discover=[
            {"root": "s=Line1", "pattern": "Materials/*/*", "path": "discovered.{1}.{name}"},
            {"root": "i=85", "pattern": "Line1/EnergyMeter/Active*", "path": "meter.{name}"},
            {
                "root": "i=85",
                "pattern": "**/Alarms/*",
                "path": "alarms_found.{name}",
                "data_type": "bool",
            },
        ],
    )
    connector = OpcUaConnector(settings)
    async with collecting(connector) as collector:
        expected = {
            "materials.solar_glass.inventory",
            "discovered.silicon_wafer.inventory",
            "discovered.silicon_wafer.quality",
            "discovered.solar_glass.inventory",
            "discovered.solar_glass.quality",
            "meter.active_power",
            "alarms_found.temperature",
            "alarms_found.humidity",
            "alarms_found.silicon_wafer_low",
            "alarms_found.solar_glass_low",
            "alarms_found.defect_rate",
        }
        await eventually(lambda: set(collector.latest()) == expected, what="discovered tags")
        assert collector.latest()["discovered.solar_glass.inventory"].address == (
            f"nsu={NS};s=Line1.Materials.SolarGlass.Inventory"
        )
        assert all(isinstance(collector.latest()[p].value, bool) for p in expected if "alarms" in p)


async def test_unknown_nodes_and_namespaces_are_reported(sim_bench_shared: SimulatorBench) -> None:
    reporter = RecordingReporter()
    tags = [
        {"address": "s=Line1.Laminator.Temperature", "path": "production_line.temperature"},
        {"address": "s=Line1.NoSuchNode", "path": "x.missing"},
        {"address": "nsu=urn:not:here;s=Foo", "path": "x.elsewhere"},
    ]
    connector = OpcUaConnector(plc_settings(sim_bench_shared, tags=tags), reporter)
    async with collecting(connector) as collector:
        await eventually(lambda: "production_line.temperature" in collector.latest())
        assert reporter.of("MonitoredItemFailed")
        assert "BadNodeIdUnknown" in reporter.of("MonitoredItemFailed")[0].message
        assert reporter.of("UnknownNamespace")
        assert connector.status.stale_tags == 2


async def test_secure_session_with_pinned_certificate_and_login(
    sim_bench_shared: SimulatorBench, opcua_client_cert: CertificateFiles, tmp_path: Path
) -> None:
    assert sim_bench_shared.opcua is not None
    sim_bench_shared.opcua.client_trust.trust(opcua_client_cert.cert_der)
    server_cert = Path(sim_bench_shared.endpoints()["opcua"]["server_certificate"])
    security = {
        "policy": "Basic256Sha256",
        "mode": "SignAndEncrypt",
        "certificate": str(opcua_client_cert.cert_der),
        "private_key": str(opcua_client_cert.key_pem),
        "server_certificate": str(server_cert),
        "application_uri": opcua_client_cert.application_uri,
    }
    tags = TAGS[:2]
    pinned = plc_settings(
        sim_bench_shared, tags=tags, security=security, username="operator", password="circman5"
    )
    async with collecting(OpcUaConnector(pinned)) as collector:
        await eventually(lambda: len(collector.latest()) == 2, what="values over SignAndEncrypt")

    trust = tmp_path / "trusted"
    trust.mkdir()
    shutil.copy(server_cert, trust / "plc.der")
    listed = {**security, "server_certificate": None, "trust_dir": str(trust), "mode": "Sign"}
    async with collecting(
        OpcUaConnector(plc_settings(sim_bench_shared, tags=tags, security=listed))
    ) as collector:
        await eventually(lambda: len(collector.latest()) == 2, what="values with a trust list")

    # an empty trust list: the server is not trusted, the connector keeps retrying
    untrusted = {**listed, "trust_dir": str(tmp_path / "empty")}
    (tmp_path / "empty").mkdir()
    connector = OpcUaConnector(plc_settings(sim_bench_shared, tags=tags, security=untrusted))
    async with collecting(connector, connect_timeout=0):
        await eventually(lambda: connector.status.last_error is not None, what="a refusal")
        assert "server certificate untrusted" in (connector.status.last_error or "")
        assert str(tmp_path / "empty") in (connector.status.last_error or "")
        assert not connector.status.connected

    wrong_login = plc_settings(
        sim_bench_shared, tags=tags, security=security, username="operator", password="wrong"
    )
    connector = OpcUaConnector(wrong_login)
    async with collecting(connector, connect_timeout=0):
        await eventually(lambda: connector.status.last_error is not None, what="a refusal")
        assert "user 'operator' rejected" in (connector.status.last_error or "")
        assert not connector.status.connected
