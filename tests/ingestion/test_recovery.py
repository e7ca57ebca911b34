"""Connection state, told once per change, and recovery in seconds, per connector.

Each connector against a server that is absent at first, refuses, or goes away and comes back:
one ``ConnectionFailed`` / ``ConnectionLost`` error event and one WARNING line per reason, the
repeats only counted; one ``ConnectionRestored`` event with the outage length and the failed
attempts when it is back; data flows again; and while the server is absent the connector retries
at the short interval (inspected in the reconnect policy's delays, not timed).

The OPC UA server here is a small asyncua server written in the test (not the plant simulator);
the broker is mosquitto; Modbus is the simulated meters.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import subprocess
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from circman5.connectors.base import BaseConnector
from circman5.connectors.config import (
    ModbusConnectorSettings,
    MqttConnectorSettings,
    OpcUaConnectorSettings,
)
from circman5.connectors.modbus.client import ModbusConnector
from circman5.connectors.mqtt.client import MqttConnector
from circman5.connectors.opcua.client import OpcUaConnector
from circman5.retry import ReconnectPolicy
from circman5.samples import Quality
from simulators.bench import SimulatorBench
from simulators.external import Mosquitto, find_binary, free_port
from tests.ingestion.conftest import Collector, RecordingReporter, collecting, eventually
from tests.ingestion.opcua_server import NS, small_opcua_server
from tests.ingestion.test_mqtt import apublish

pytestmark = pytest.mark.asyncio(loop_scope="session")

ABSENT_INTERVAL = 0.2


# -- helpers ---------------------------------------------------------------------------------------


def opcua_settings(port: int) -> OpcUaConnectorSettings:
    return OpcUaConnectorSettings.model_validate(
        {
            "type": "opcua",
            "name": "plc",
            "url": f"opc.tcp://127.0.0.1:{port}/recovery",
            "publishing_interval_ms": 50,
            "sampling_interval_ms": 50,
            "watchdog_interval_s": 0.5,
            "reconnect_absent_s": ABSENT_INTERVAL,
            "tags": [{"address": f"nsu={NS};s=Temperature", "path": "line.temperature"}],
        }
    )


def mqtt_settings(port: int, **extra: Any) -> MqttConnectorSettings:
    return MqttConnectorSettings.model_validate(
        {
            "type": "mqtt",
            "name": "mes",
            "port": port,
            "reconnect_absent_s": ABSENT_INTERVAL,
            "tags": [{"address": "plant/temp", "path": "line.temperature", "qos": 1}],
            **extra,
        }
    )


def absent_delays_are_short(policy: ReconnectPolicy) -> bool:
    """Every delay handed out while the server was absent is the short interval (+ jitter)."""
    absent = [delay for was_absent, delay in policy.delays if was_absent]
    return bool(absent) and all(delay <= ABSENT_INTERVAL * 1.21 for delay in absent)


def told_once_per_reason(reporter: RecordingReporter, last: str) -> bool:
    """Failed attempts were reported once per change of reason (the last one contains ``last``),
    never twice in a row for the same reason, however many attempts failed."""
    reasons = [str(r.details["reason"]) for r in reporter.of("ConnectionFailed")]
    return (
        bool(reasons)
        and last in reasons[-1]
        and all(a != b for a, b in itertools.pairwise(reasons))
    )


def warnings_of(caplog: pytest.LogCaptureFixture, connector: BaseConnector) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.levelno == logging.WARNING and f"connector {connector.name}:" in r.getMessage()
    ]


async def fresh_value(collector: Collector, path: str, value: float) -> None:
    await eventually(
        lambda: any(
            s.path == path and s.value == value and s.quality is Quality.GOOD
            for s in collector.samples
        ),
        within=15,
        what=f"{path} = {value}",
    )


# -- OPC UA ----------------------------------------------------------------------------------------


async def test_opcua_first_refusal_is_told_once_and_the_first_connection_restores(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="circman5.connectors")
    port = free_port()
    reporter = RecordingReporter()
    connector = OpcUaConnector(opcua_settings(port), reporter)
    async with collecting(connector, connect_timeout=0) as collector:
        await eventually(
            lambda: connector.status.connect_failures >= 4, what="repeated failed attempts"
        )
        failed = reporter.of("ConnectionFailed")
        assert len(failed) == 1, failed
        assert failed[0].severity == "error"
        assert "Connect call failed" in str(failed[0].details["reason"])
        assert failed[0].details["ever_connected"] is False
        assert len(warnings_of(caplog, connector)) == 1
        assert "Connect call failed" in (connector.status.last_error or "")
        assert connector.status.connect_attempts == connector.status.connect_failures
        assert absent_delays_are_short(connector.reconnect_policy)

        async with small_opcua_server(port) as server:
            await eventually(lambda: connector.status.connected, within=15, what="the connection")
            restored = reporter.of("ConnectionRestored")
            assert len(restored) == 1
            assert restored[0].severity == "info"
            assert restored[0].details["first_connection"] is True
            assert restored[0].details["failed_attempts"] == connector.status.connect_failures
            assert float(str(restored[0].details["outage_s"])) > 0
            await server.write(21.5)
            await fresh_value(collector, "line.temperature", 21.5)
            assert len(reporter.of("ConnectionFailed")) == 1


async def test_opcua_server_restart_restores_with_the_outage_length() -> None:
    port = free_port()
    reporter = RecordingReporter()
    connector = OpcUaConnector(opcua_settings(port), reporter)
    async with small_opcua_server(port) as server, collecting(connector) as collector:
        await server.write(22.0)
        await fresh_value(collector, "line.temperature", 22.0)
        assert connector.status.connect_failures == 0
        assert not reporter.of("ConnectionRestored")  # connected at the first attempt: no event

        await server.stop()
        await eventually(lambda: not connector.status.connected, what="the loss")
        await eventually(
            lambda: connector.status.connect_failures >= 3, what="failed attempts while away"
        )
        lost = reporter.of("ConnectionLost")
        assert len(lost) == 1 and lost[0].severity == "error"
        assert told_once_per_reason(reporter, "Connect call failed")
        assert collector.latest(Quality.STALE).keys() == {"line.temperature"}
        assert absent_delays_are_short(connector.reconnect_policy)

        await server.start()
        await eventually(lambda: connector.status.connected, within=15, what="the reconnect")
        restored = reporter.of("ConnectionRestored")
        assert len(restored) == 1
        assert restored[0].details["first_connection"] is False
        assert int(str(restored[0].details["failed_attempts"])) >= 3
        assert float(str(restored[0].details["outage_s"])) > 0
        await server.write(23.0)
        await fresh_value(collector, "line.temperature", 23.0)
        assert connector.status.reconnects == 1


# -- MQTT ------------------------------------------------------------------------------------------


async def test_mqtt_absent_broker_is_retried_at_the_short_interval(
    tmp_path_factory: pytest.TempPathFactory, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="circman5.connectors")
    broker = Mosquitto(Path(tmp_path_factory.mktemp("mosquitto-late")))
    reporter = RecordingReporter()
    connector = MqttConnector(mqtt_settings(broker.port), reporter)
    try:
        async with collecting(connector, connect_timeout=0) as collector:
            await eventually(
                lambda: connector.status.connect_failures >= 4, what="repeated failed attempts"
            )
            failed = reporter.of("ConnectionFailed")
            assert len(failed) == 1, failed
            assert "ConnectionRefusedError" in str(failed[0].details["reason"])
            assert len(warnings_of(caplog, connector)) == 1
            assert "ConnectionRefusedError" in (connector.status.last_error or "")
            assert absent_delays_are_short(connector.reconnect_policy)

            await asyncio.to_thread(broker.start)
            await eventually(lambda: connector.status.connected, within=15, what="the connection")
            restored = reporter.of("ConnectionRestored")
            assert len(restored) == 1 and restored[0].details["first_connection"] is True
            assert restored[0].details["failed_attempts"] == connector.status.connect_failures
            # connected means subscribed: a message published now is delivered
            await apublish(broker.port, [("plant/temp", b"24.5", 1)])
            await fresh_value(collector, "line.temperature", 24.5)
    finally:
        await asyncio.to_thread(broker.stop)


async def test_mqtt_broker_restart_restores_with_the_outage_length(mosquitto: Mosquitto) -> None:
    reporter = RecordingReporter()
    connector = MqttConnector(mqtt_settings(mosquitto.port), reporter)
    async with collecting(connector) as collector:
        await apublish(mosquitto.port, [("plant/temp", b"21.0", 1)])
        await fresh_value(collector, "line.temperature", 21.0)
        await asyncio.to_thread(mosquitto.stop)
        await eventually(lambda: not connector.status.connected, what="the loss")
        await eventually(
            lambda: connector.status.connect_failures >= 3, what="failed attempts while away"
        )
        assert len(reporter.of("ConnectionLost")) == 1
        assert told_once_per_reason(reporter, "ConnectionRefusedError")
        assert absent_delays_are_short(connector.reconnect_policy)
        await asyncio.to_thread(mosquitto.start)
        await eventually(lambda: connector.status.connected, within=15, what="the reconnect")
        restored = reporter.of("ConnectionRestored")
        assert len(restored) == 1
        assert restored[0].details["first_connection"] is False
        assert int(str(restored[0].details["failed_attempts"])) >= 3
        assert float(str(restored[0].details["outage_s"])) > 0
        await apublish(mosquitto.port, [("plant/temp", b"22.0", 1)])
        await fresh_value(collector, "line.temperature", 22.0)
        assert connector.status.reconnects == 1


async def test_mqtt_refusal_by_a_live_broker_backs_off_and_is_told_once(
    tmp_path: Path,
    tmp_path_factory: pytest.TempPathFactory,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="circman5.connectors")
    passwords = tmp_path / "passwords"
    passwd = find_binary("mosquitto_passwd", "mosquitto", ("/usr/bin",))
    await asyncio.to_thread(
        subprocess.run, [passwd, "-b", "-c", str(passwords), "edge", "s3cret"], check=True
    )
    passwords.chmod(0o600)
    broker = Mosquitto(
        Path(tmp_path_factory.mktemp("mosquitto-auth")),
        extra_config=f"password_file {passwords}\nallow_anonymous false\n",
    )
    reporter = RecordingReporter()
    wrong = mqtt_settings(
        broker.port,
        username="edge",
        password="wrong",
        reconnect_initial_s=0.05,
        reconnect_max_s=0.4,
    )
    connector = MqttConnector(wrong, reporter)
    with broker:
        async with connector:
            await eventually(
                lambda: connector.status.connect_failures >= 5, what="repeated refusals"
            )
            assert not connector.status.connected
            failed = reporter.of("ConnectionFailed")
            assert len(failed) == 1, failed
            assert "not authorized" in str(failed[0].details["reason"]).lower()
            assert "not authorized" in (connector.status.last_error or "").lower()
            assert len(warnings_of(caplog, connector)) == 1
            # a live broker that refuses is backed off: the delays grow (up to the cap)
            refused = [delay for absent, delay in connector.reconnect_policy.delays if not absent]
            assert len(refused) >= 4
            assert refused[3] > refused[0] * 2


# -- Modbus ----------------------------------------------------------------------------------------


async def test_modbus_device_restart_restores_with_the_outage_length(
    sim_bench_shared: SimulatorBench,
) -> None:
    assert sim_bench_shared.modbus is not None
    config = ModbusConnectorSettings.model_validate(
        {
            "type": "modbus",
            "name": "meters",
            "host": "127.0.0.1",
            "port": sim_bench_shared.modbus.tcp_port,
            "poll_interval_s": 0.1,
            "reconnect_absent_s": ABSENT_INTERVAL,
            "tags": [
                {
                    "address": "ir:4",
                    "path": "energy_meter.voltage",
                    "data_type": "float32",
                    "unit_id": 1,
                }
            ],
        }
    )
    reporter = RecordingReporter()
    connector = ModbusConnector(config, reporter)
    bench = sim_bench_shared
    async with collecting(connector) as collector:
        await eventually(lambda: "energy_meter.voltage" in collector.latest(), what="a value")
        await bench.stop_server("modbus")
        await eventually(lambda: not connector.status.connected, what="the loss")
        await eventually(
            lambda: connector.status.connect_failures >= 3, what="failed attempts while away"
        )
        assert len(reporter.of("ConnectionLost")) == 1
        assert absent_delays_are_short(connector.reconnect_policy)
        mark = len(collector.samples)
        await bench.start_server("modbus")
        await eventually(lambda: connector.status.connected, within=15, what="the reconnect")
        restored = reporter.of("ConnectionRestored")
        assert len(restored) == 1
        assert int(str(restored[0].details["failed_attempts"])) >= 3
        assert float(str(restored[0].details["outage_s"])) > 0
        await eventually(
            lambda: any(
                s.quality is Quality.GOOD and s.path == "energy_meter.voltage"
                for s in collector.samples[mark:]
            ),
            what="fresh values",
        )


# -- what /ready and /metrics say ------------------------------------------------------------------


async def test_ready_names_the_refusal_and_metrics_count_the_attempts() -> None:
    from circman5.service.app import RunningService
    from circman5.service.metrics import ServiceMetrics
    from circman5.service.supervisor import Supervisor
    from circman5.sinks.timeseries import SeriesOutput

    port = free_port()
    connector = OpcUaConnector(opcua_settings(port), RecordingReporter())
    metrics = ServiceMetrics(connectors=lambda: [connector.status])
    service = RunningService(
        twin=None,  # type: ignore[arg-type]  # not_ready() reads connectors, outputs, supervisor
        engine=None,  # type: ignore[arg-type]
        connectors=[connector],
        series=SeriesOutput(writer=None, outbox=None, store=None),  # type: ignore[arg-type]
        metrics=metrics,
        supervisor=Supervisor(report=lambda *a: None),
        health=None,
    )
    async with connector:
        await eventually(lambda: connector.status.connect_failures >= 3, what="failed attempts")
        reasons = service.not_ready()
        assert len(reasons) == 1
        assert reasons[0].startswith("connector plc: not connected (")
        assert "Connect call failed" in reasons[0]
        text = metrics.render().decode()
        failures = connector.status.connect_failures
        assert f'circman5_connector_connect_failures_total{{connector="plc"}} {failures}' in text
        assert 'circman5_connector_connect_attempts_total{connector="plc"}' in text
        assert 'circman5_timestamps_replaced_total{connector="plc"} 0.0' in text


async def test_modbus_first_refusal_is_told_once(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="circman5.connectors")
    config = ModbusConnectorSettings.model_validate(
        {
            "type": "modbus",
            "name": "meters",
            "host": "127.0.0.1",
            "port": free_port(),
            "reconnect_absent_s": ABSENT_INTERVAL,
            "tags": [{"address": "hr:0", "path": "energy_meter.raw"}],
        }
    )
    reporter = RecordingReporter()
    connector = ModbusConnector(config, reporter)
    async with connector:
        await eventually(lambda: connector.status.connect_failures >= 4, what="failed attempts")
        failed = reporter.of("ConnectionFailed")
        assert len(failed) == 1 and failed[0].severity == "error"
        assert failed[0].details["ever_connected"] is False
        assert len(warnings_of(caplog, connector)) == 1
        assert "cannot connect" in (connector.status.last_error or "")
        assert absent_delays_are_short(connector.reconnect_policy)
        assert not reporter.of("ConnectionLost")


async def test_a_new_failure_reason_is_told_at_once(
    tmp_path: Path, tmp_path_factory: pytest.TempPathFactory, caplog: pytest.LogCaptureFixture
) -> None:
    """Absent first (connection refused), then a broker that refuses the login: two reasons,
    two events and two WARNING lines within seconds; the retries switch to backoff."""
    caplog.set_level(logging.INFO, logger="circman5.connectors")
    passwords = tmp_path / "passwords"
    passwd = find_binary("mosquitto_passwd", "mosquitto", ("/usr/bin",))
    await asyncio.to_thread(
        subprocess.run, [passwd, "-b", "-c", str(passwords), "edge", "s3cret"], check=True
    )
    passwords.chmod(0o600)
    broker = Mosquitto(
        Path(tmp_path_factory.mktemp("mosquitto-auth-late")),
        extra_config=f"password_file {passwords}\nallow_anonymous false\n",
    )
    reporter = RecordingReporter()
    config = mqtt_settings(broker.port, reconnect_initial_s=0.05, reconnect_max_s=0.2)
    connector = MqttConnector(config, reporter)
    try:
        async with connector:
            await eventually(lambda: connector.status.connect_failures >= 2, what="refusals")
            await asyncio.to_thread(broker.start)
            await eventually(
                lambda: len(reporter.of("ConnectionFailed")) == 2, what="the second reason"
            )
            first, second = (str(r.details["reason"]) for r in reporter.of("ConnectionFailed"))
            assert "ConnectionRefusedError" in first
            assert "not authorized" in second.lower()
            assert len(warnings_of(caplog, connector)) == 2
            await eventually(
                lambda: any(not absent for absent, _ in connector.reconnect_policy.delays),
                what="a backed-off retry",
            )
            assert not connector.status.connected
    finally:
        await asyncio.to_thread(broker.stop)


async def test_mqtt_connector_closes_while_the_broker_is_absent() -> None:
    connector = MqttConnector(mqtt_settings(free_port()))
    async with connector:
        await eventually(lambda: connector.status.connect_failures >= 2, what="failed attempts")
    assert not connector.status.connected
    assert connector._client is None  # released


async def test_opcua_login_refusal_backs_off_and_is_told_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="circman5.connectors")
    port = free_port()
    config = opcua_settings(port).model_copy(
        update={
            "username": "edge",
            "password": SecretStr("wrong"),
            "reconnect_initial_s": 0.05,
            "reconnect_max_s": 0.4,
        }
    )
    reporter = RecordingReporter()
    connector = OpcUaConnector(config, reporter)
    async with small_opcua_server(port, users={"edge": "s3cret"}), connector:
        await eventually(lambda: connector.status.connect_failures >= 5, what="refusals")
        assert not connector.status.connected
        failed = reporter.of("ConnectionFailed")
        assert len(failed) == 1, failed
        reason = str(failed[0].details["reason"])
        assert "BadUserAccessDenied" in reason or "BadIdentityTokenRejected" in reason
        assert reason in (connector.status.last_error or "")
        assert len(warnings_of(caplog, connector)) == 1
        refused = [delay for absent, delay in connector.reconnect_policy.delays if not absent]
        assert len(refused) >= 4
        assert refused[3] > refused[0] * 2  # backed off, not retried at the short interval
