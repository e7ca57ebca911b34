"""The MQTT connector against a real mosquitto: mapping, malformed input, sessions, TLS."""

from __future__ import annotations

import asyncio
import subprocess
import threading
import time
from collections.abc import Iterable
from contextlib import AbstractAsyncContextManager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from circman5.connectors.config import MqttConnectorSettings
from circman5.connectors.mqtt.client import MqttConnector
from circman5.errors import TagWriteError
from circman5.samples import Quality
from simulators.external import Mosquitto, find_binary
from tests.ingestion.conftest import Collector, RecordingReporter, collecting, eventually
from tests.ingestion.tls import make_tls_files


def settings(port: int, tags: list[dict[str, Any]], **extra: Any) -> MqttConnectorSettings:
    return MqttConnectorSettings.model_validate(
        {"type": "mqtt", "name": "mes", "port": port, "tags": tags, **extra}
    )


def publish(
    port: int,
    messages: Iterable[tuple[str, bytes | str, int]],
    retain: bool = False,
    **tls: Any,
) -> None:
    """Publish with a plain paho client and wait until every message is out.

    The messages are published only after the broker's CONNACK: a client that publishes right
    after sending CONNECT and then disconnects closes its socket with the CONNACK (over TLS 1.3
    also the session tickets) unread, the kernel answers with a reset, and the broker can lose
    the PUBLISH it had not read yet (about one in four QoS 0 probes over TLS, more under load:
    the cause of the flaky TLS test). QoS 1/2 messages are waited for until acknowledged.
    """
    client = paho.Client(CallbackAPIVersion.VERSION2, client_id="", protocol=paho.MQTTv311)
    connected = threading.Event()
    client.on_connect = lambda *args: connected.set()
    if tls:
        client.tls_set(**tls.pop("tls_args"))
        client.username_pw_set(*tls.pop("login"))
    client.connect("127.0.0.1", port)
    client.loop_start()
    try:
        if not connected.wait(30):
            raise TimeoutError(f"no CONNACK from the broker on port {port}")
        infos = [
            client.publish(topic, payload, qos=qos, retain=retain)
            for topic, payload, qos in messages
        ]
        for info in infos:
            info.wait_for_publish(30)
            if not info.is_published():
                raise TimeoutError(f"message {info.mid} not acknowledged by the broker")
    finally:
        client.disconnect()
        client.loop_stop()


async def apublish(port: int, messages: Iterable[tuple[str, bytes | str, int]], **tls: Any) -> None:
    await asyncio.to_thread(publish, port, list(messages), **tls)


def running(
    config: MqttConnectorSettings, reporter: RecordingReporter | None = None
) -> AbstractAsyncContextManager[Collector]:
    return collecting(MqttConnector(config, reporter))


TAGS = [
    {
        "address": "mes/line1/+/consumption",
        "path": "materials.{1}.consumption",
        "field": "consumption",
    },
    {"address": "plant/temp", "path": "production_line.temperature"},
    {"address": "plant/status", "path": "production_line.status", "data_type": "str"},
    {"address": "plant/running", "path": "production_line.running", "data_type": "bool"},
    {"address": "plant/count", "path": "production_line.modules_produced", "data_type": "int"},
    {
        "address": "plant/env",
        "path": "environment.temperature",
        "field": "data.t",
        "scale": 0.1,
        "offset": 1.0,
        "timestamp_field": "ts",
    },
    {"address": "probe", "path": "test.probe"},
]


async def wait_subscribed(port: int, collector: Collector) -> None:
    """Publish a probe until it comes back: the subscription is in place."""

    async def probe_seen() -> bool:
        await apublish(port, [("probe", b"1", 1)])
        await asyncio.sleep(0.05)
        return "test.probe" in collector.latest()

    await eventually(probe_seen, within=10, what="the subscription")


async def test_payloads_map_to_twin_paths(mosquitto: Mosquitto) -> None:
    # a source time a minute ago (inside the timestamp window), whole seconds
    stamp = datetime.fromtimestamp(int(time.time()) - 60, tz=UTC)
    async with running(settings(mosquitto.port, TAGS)) as collector:
        await wait_subscribed(mosquitto.port, collector)
        await apublish(
            mosquitto.port,
            [
                ("mes/line1/silicon_wafer/consumption", orjson.dumps({"consumption": 12.5}), 1),
                ("mes/line1/solar_glass/consumption", orjson.dumps({"consumption": 3}), 1),
                ("plant/temp", b"23.5", 0),
                ("plant/status", b"running", 0),
                ("plant/running", b"true", 0),
                ("plant/count", b"1234", 0),
                ("plant/env", orjson.dumps({"data": {"t": 215}, "ts": stamp.isoformat()}), 1),
            ],
        )
        await eventually(lambda: len(collector.latest()) >= 8, what="every sample")
        values = {path: s.value for path, s in collector.latest().items()}
        assert values == {
            "test.probe": 1.0,
            "materials.silicon_wafer.consumption": 12.5,
            "materials.solar_glass.consumption": 3.0,
            "production_line.temperature": 23.5,
            "production_line.status": "running",
            "production_line.running": True,
            "production_line.modules_produced": 1234,
            "environment.temperature": pytest.approx(22.5),
        }
        env = collector.latest()["environment.temperature"]
        assert env.timestamp_ns == int(stamp.timestamp()) * 10**9
        assert env.address == "plant/env" and env.source == "mes"
        assert collector.connector.status.samples_in >= 8
        assert collector.connector.status.malformed == 0


async def test_malformed_payloads_are_counted_reported_and_skipped(mosquitto: Mosquitto) -> None:
    reporter = RecordingReporter()
    config = settings(mosquitto.port, TAGS, max_payload_bytes=1000, qos=1)
    async with running(config, reporter) as collector:
        await wait_subscribed(mosquitto.port, collector)
        bad: list[tuple[str, bytes | str, int]] = [
            ("mes/line1/silicon_wafer/consumption", b'{"consumption": 1.0', 1),  # invalid JSON
            ("mes/line1/silicon_wafer/consumption", b'{"consumption": NaN}', 1),  # NaN
            ("mes/line1/silicon_wafer/consumption", b'{"consumption": "12 kg"}', 1),  # wrong type
            ("mes/line1/silicon_wafer/consumption", b'{"other": 1.0}', 1),  # missing field
            ("mes/line1/silicon_wafer/consumption", b"x" * 2000, 1),  # oversized
            ("plant/temp", b"nan", 1),
            ("plant/temp", b"\xff\xfe", 1),
            ("plant/count", b"12.5", 1),
            ("plant/running", b"maybe", 1),
            ("plant/env", b'{"data": {"t": 215}, "ts": "yesterday"}', 1),
        ]
        refused = ("mes/line1/bad-name/consumption", b'{"consumption": 1.0}', 1)  # not a path part
        bad.append(refused)
        good = [("plant/temp", f"{20 + i / 10}".encode(), 1) for i in range(50)]
        flood: list[tuple[str, bytes | str, int]] = []
        for i in range(len(bad) * 10):  # bad and good interleaved
            flood.append(bad[i % len(bad)])
            if i < len(good):
                flood.append(good[i])
        await apublish(mosquitto.port, flood)
        status = collector.connector.status
        await eventually(
            lambda: status.malformed + status.topics_refused >= len(bad) * 10,
            what="all malformed counted",
        )
        await eventually(
            lambda: (
                len([s for s in collector.samples if s.path == "production_line.temperature"]) == 50
            ),
            what="all good samples",
        )
        temps = [s.value for s in collector.samples if s.path == "production_line.temperature"]
        assert temps == [pytest.approx(20 + i / 10) for i in range(50)]
        assert status.malformed == (len(bad) - 1) * 10
        assert status.topics_refused == 10  # counted apart, reported as TopicRefused
        assert reporter.of("TopicRefused")
        # reported, but aggregated: far fewer reports than bad messages
        malformed_reports = reporter.of("MalformedInput")
        assert 1 <= len(malformed_reports) <= 3
        assert malformed_reports[0].details["source"] == "mes"
        assert "address" in malformed_reports[0].details
        assert not collector.connector.status.last_error


async def test_flush_reports_the_aggregate() -> None:
    from circman5.reporting import RateLimitedReporter

    now = [0.0]
    reporter = RecordingReporter()
    limited = RateLimitedReporter(reporter, "mes", interval_s=10.0, clock=lambda: now[0])
    for i in range(500):
        limited.note("MalformedInput", f"bad {i}", {"address": "a/b"})
    assert len(reporter.reports) == 1
    now[0] = 5.0
    limited.flush()
    assert len(reporter.reports) == 1
    now[0] = 10.5
    limited.flush()
    assert len(reporter.reports) == 2
    summary = reporter.reports[1]
    assert summary.details["suppressed"] == 499
    assert "499 more MalformedInput" in summary.message and "bad 499" in summary.message
    now[0] = 30.0
    limited.flush()
    limited.note("MalformedInput", "again", {})
    assert len(reporter.reports) == 3 and reporter.reports[2].message == "again"


async def test_broker_restart_reconnects_and_resubscribes(mosquitto: Mosquitto) -> None:
    reporter = RecordingReporter()
    config = settings(mosquitto.port, TAGS, reconnect_max_s=1.0)
    async with running(config, reporter) as collector:
        await wait_subscribed(mosquitto.port, collector)
        await apublish(mosquitto.port, [("plant/temp", b"21.0", 1)])
        await eventually(lambda: "production_line.temperature" in collector.latest())
        connector = collector.connector
        await asyncio.to_thread(mosquitto.stop)
        await eventually(lambda: not connector.status.connected, what="the disconnect")
        await eventually(
            lambda: any(
                s.quality is Quality.STALE and s.path == "production_line.temperature"
                for s in collector.samples
            ),
            what="stale samples",
        )
        await asyncio.to_thread(mosquitto.start)
        await eventually(lambda: connector.status.connected, within=15, what="the reconnect")
        assert connector.status.reconnects == 1
        collector.samples.clear()
        await wait_subscribed(mosquitto.port, collector)
        await apublish(mosquitto.port, [("plant/temp", b"22.0", 1)])
        await eventually(
            lambda: collector.latest().get("production_line.temperature") is not None,
            what="fresh data",
        )
        assert collector.latest()["production_line.temperature"].value == 22.0
        assert reporter.of("ConnectionLost")


@pytest.mark.parametrize("protocol", ["3.1.1", "5"])
async def test_persistent_session_keeps_messages_while_away(
    mosquitto: Mosquitto, protocol: str
) -> None:
    config = settings(mosquitto.port, TAGS, protocol=protocol, client_id=f"edge-{protocol}", qos=1)
    async with running(config) as collector:
        await wait_subscribed(mosquitto.port, collector)
    # the edge box is away: the broker queues QoS 1 messages for its session
    await apublish(mosquitto.port, [("plant/temp", f"{v}".encode(), 1) for v in (30.0, 31.0, 32.0)])
    async with running(config) as collector:
        await eventually(
            lambda: (
                len([s for s in collector.samples if s.path == "production_line.temperature"]) >= 3
            ),
            what="the queued messages",
        )
        values = [s.value for s in collector.samples if s.path == "production_line.temperature"]
        assert values[:3] == [30.0, 31.0, 32.0]


async def test_clean_start_forgets_the_session(mosquitto: Mosquitto) -> None:
    config = settings(mosquitto.port, TAGS, client_id="edge-clean", clean_start=True, qos=1)
    async with running(config) as collector:
        await wait_subscribed(mosquitto.port, collector)
    await apublish(mosquitto.port, [("plant/temp", b"33.0", 1)])
    async with running(config) as collector:
        await wait_subscribed(mosquitto.port, collector)
        assert "production_line.temperature" not in collector.latest()


async def test_qos2_delivers_exactly_once(mosquitto: Mosquitto) -> None:
    tags = [
        {"address": "plant/+/count", "path": "counts.{1}", "data_type": "int", "qos": 2},
        {"address": "probe", "path": "test.probe"},
    ]
    async with running(settings(mosquitto.port, tags)) as collector:
        await wait_subscribed(mosquitto.port, collector)
        await apublish(
            mosquitto.port, [(f"plant/l{i % 3}/count", f"{i}".encode(), 2) for i in range(60)]
        )
        await eventually(
            lambda: len([s for s in collector.samples if s.path.startswith("counts.")]) >= 60
        )
        counts = sorted(int(s.value) for s in collector.samples if s.path.startswith("counts."))
        assert counts == list(range(60))


async def test_deadband_passes_only_real_changes(mosquitto: Mosquitto) -> None:
    tags = [
        {"address": "plant/temp", "path": "production_line.temperature", "deadband": 0.5},
        {"address": "probe", "path": "test.probe"},
    ]
    async with running(settings(mosquitto.port, tags)) as collector:
        await wait_subscribed(mosquitto.port, collector)
        values = [20.0, 20.1, 20.2, 20.6, 20.7, 19.9, 25.0]
        await apublish(mosquitto.port, [("plant/temp", f"{v}".encode(), 1) for v in values])
        await eventually(lambda: any(s.value == 25.0 for s in collector.samples))
        passed = [s.value for s in collector.samples if s.path == "production_line.temperature"]
        assert passed == [20.0, 20.6, 19.9, 25.0]


async def test_write_publishes_to_the_tag_topic(mosquitto: Mosquitto) -> None:
    tags = [
        {
            "address": "plant/setpoint",
            "path": "production_line.target_temperature",
            "field": "value",
            "writable": True,
            "scale": 2.0,
        },
        {"address": "plant/+/x", "path": "wild.{1}", "writable": True},
        {"address": "plant/temp", "path": "production_line.temperature"},
        {"address": "probe", "path": "test.probe"},
    ]
    async with running(settings(mosquitto.port, tags)) as collector:
        await wait_subscribed(mosquitto.port, collector)
        await collector.connector.write("production_line.target_temperature", 24.0)
        # the connector subscribes to its own tag topic, so it reads its write back
        await eventually(
            lambda: "production_line.target_temperature" in collector.latest(), what="echo"
        )
        assert collector.latest()["production_line.target_temperature"].value == 24.0
        assert collector.connector.status.writes == 1
        with pytest.raises(TagWriteError, match="not writable"):
            await collector.connector.write("production_line.temperature", 1.0)
        with pytest.raises(TagWriteError, match="cannot publish"):
            await collector.connector.write("wild.{1}", 1.0)
        with pytest.raises(TagWriteError, match="no tag"):
            await collector.connector.write("nothing.here", 1.0)


async def test_tls_with_client_certificate_and_password(
    tmp_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    files = make_tls_files(tmp_path / "tls")
    passwords = tmp_path / "passwords"
    passwd = find_binary("mosquitto_passwd", "mosquitto", ("/usr/bin",))
    await asyncio.to_thread(
        subprocess.run, [passwd, "-b", "-c", str(passwords), "edge", "s3cret"], check=True
    )
    passwords.chmod(0o600)
    broker = Mosquitto(
        Path(tmp_path_factory.mktemp("mosquitto-tls")),
        extra_config=(
            f"cafile {files.ca}\ncertfile {files.server_cert}\nkeyfile {files.server_key}\n"
            f"require_certificate true\npassword_file {passwords}\nallow_anonymous false\n"
        ),
    )
    with broker:
        tls = {
            "ca_file": str(files.ca),
            "cert_file": str(files.client_cert),
            "key_file": str(files.client_key),
        }
        config = settings(
            broker.port, TAGS, host="localhost", tls=tls, username="edge", password="s3cret"
        )
        tls_args = {
            "ca_certs": str(files.ca),
            "certfile": str(files.client_cert),
            "keyfile": str(files.client_key),
        }
        async with running(config) as collector:

            async def probe_seen() -> bool:
                await apublish(
                    broker.port,
                    [("probe", b"1", 1)],
                    tls_args=dict(tls_args),
                    login=("edge", "s3cret"),
                )
                await asyncio.sleep(0.05)
                return "test.probe" in collector.latest()

            await eventually(probe_seen, what="a message over TLS")
        wrong = settings(
            broker.port, TAGS, host="localhost", tls=tls, username="edge", password="wrong"
        )
        reporter = RecordingReporter()
        async with MqttConnector(wrong, reporter) as connector:
            await eventually(lambda: connector.status.last_error is not None, what="the refusal")
            assert not connector.status.connected
            assert "refused" in (connector.status.last_error or "")
