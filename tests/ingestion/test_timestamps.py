"""Source timestamps outside the window are replaced by the receive time or rejected, counted.

A timestamp far in the future (5 minutes and more ahead, a 20-digit epoch, 9999-12-31) or far in
the past (1970, older than the retention) would be written where the time-series server drops it.
MQTT against mosquitto (payload timestamps), OPC UA against a small asyncua server written in the
test (SourceTimestamp).
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest

from circman5.connectors.config import MqttConnectorSettings, OpcUaConnectorSettings
from circman5.connectors.mqtt.client import MqttConnector
from circman5.connectors.opcua.client import OpcUaConnector
from circman5.connectors.timestamps import TimestampWindow
from simulators.external import Mosquitto, free_port
from tests.ingestion.conftest import RecordingReporter, collecting, eventually
from tests.ingestion.opcua_server import NS, small_opcua_server
from tests.ingestion.test_mqtt import apublish, wait_subscribed

pytestmark = pytest.mark.asyncio(loop_scope="session")

HOUR_AHEAD = "hour ahead"
OUT_OF_WINDOW: dict[str, object] = {
    HOUR_AHEAD: None,  # filled in at run time (relative to now)
    "20-digit epoch": 12345678901234567890,
    "9999": "9999-12-31T23:59:59Z",
    "1970 (seconds)": 1,
    "1970 (ISO)": "1970-01-01T00:00:01+00:00",
    "8 days old": None,
}


def stamps_now() -> dict[str, object]:
    now = time.time()
    stamps = dict(OUT_OF_WINDOW)
    stamps[HOUR_AHEAD] = now + 3600
    stamps["8 days old"] = (now - 8 * 24 * 3600) * 1000  # milliseconds
    return stamps


def mqtt_settings(port: int, **extra: Any) -> MqttConnectorSettings:
    tag = {"field": "v", "timestamp_field": "ts"}
    return MqttConnectorSettings.model_validate(
        {
            "type": "mqtt",
            "name": "mes",
            "port": port,
            "tags": [
                {"address": "ts/replace/+", "path": "replaced.{1}", **tag},
                {
                    "address": "ts/reject/+",
                    "path": "rejected.{1}",
                    "timestamp_outside_window": "reject",
                    **tag,
                },
                {"address": "probe", "path": "test.probe"},
            ],
            **extra,
        }
    )


def in_window(timestamp_ns: int) -> bool:
    return TimestampWindow().contains(timestamp_ns, time.time_ns())


async def test_mqtt_timestamps_outside_the_window_are_replaced_or_rejected(
    mosquitto: Mosquitto,
) -> None:
    reporter = RecordingReporter()
    async with collecting(MqttConnector(mqtt_settings(mosquitto.port), reporter)) as collector:
        await wait_subscribed(mosquitto.port, collector)
        connector = collector.connector
        stamps = stamps_now()
        good_stamp = int(time.time()) - 30
        messages = []
        for number, stamp in enumerate(stamps.values()):
            body = orjson.dumps({"v": number, "ts": stamp})
            messages += [(f"ts/replace/n{number}", body, 1), (f"ts/reject/n{number}", body, 1)]
        body = orjson.dumps({"v": 99, "ts": good_stamp})
        messages += [("ts/replace/good", body, 1), ("ts/reject/good", body, 1)]
        await apublish(mosquitto.port, messages)
        await eventually(
            lambda: (
                connector.status.timestamps_replaced + connector.status.timestamps_rejected
                >= 2 * len(stamps)
                and "rejected.good" in collector.latest()
                and "replaced.good" in collector.latest()
            ),
            what="every message",
        )
        assert connector.status.timestamps_replaced == len(stamps)
        assert connector.status.timestamps_rejected == len(stamps)
        latest = collector.latest()
        # replaced: the value is kept, stamped with the receive time
        for number in range(len(stamps)):
            sample = latest[f"replaced.n{number}"]
            assert sample.value == float(number)
            assert in_window(sample.timestamp_ns)
        # rejected: nothing of those messages; the good ones keep their own timestamp
        assert not [path for path in latest if path.startswith("rejected.n")]
        assert latest["replaced.good"].timestamp_ns == good_stamp * 10**9
        assert latest["rejected.good"].timestamp_ns == good_stamp * 10**9
        reports = reporter.of("TimestampOutOfRange")
        assert reports, "reported as an event"
        assert reports[0].details["action"] in ("replaced by the receive time", "rejected")
        assert "future" in str(reports[0].details["reason"]) or "old" in str(
            reports[0].details["reason"]
        )
        assert connector.status.malformed == 0


async def test_mqtt_window_follows_the_settings_and_the_output_retention(
    mosquitto: Mosquitto,
) -> None:
    config = mqtt_settings(mosquitto.port, timestamp_max_future_s=7200)
    connector = MqttConnector(config)
    connector.use_output_retention(3600.0)  # the embedded store keeps one hour
    async with collecting(connector) as collector:
        await wait_subscribed(mosquitto.port, collector)
        now = time.time()
        ahead, old = int(now + 3600), int(now - 2 * 3600)
        await apublish(
            mosquitto.port,
            [
                ("ts/replace/ahead", orjson.dumps({"v": 1, "ts": ahead}), 1),
                ("ts/replace/old", orjson.dumps({"v": 2, "ts": old}), 1),
            ],
        )
        await eventually(lambda: len(collector.latest()) >= 3, what="both messages")
        latest = collector.latest()
        assert latest["replaced.ahead"].timestamp_ns == ahead * 10**9  # an hour ahead is allowed
        assert latest["replaced.old"].timestamp_ns != old * 10**9  # older than the retention
        assert connector.status.timestamps_replaced == 1
    own = MqttConnector(mqtt_settings(mosquitto.port, timestamp_max_age_s=60.0))
    own.use_output_retention(3600.0)  # the connector's own setting wins
    assert own.timestamp_window.max_age_s == 60.0


@pytest.mark.parametrize("policy", ["replace", "reject"])
async def test_opcua_source_timestamps_outside_the_window(policy: str) -> None:
    port = free_port()
    reporter = RecordingReporter()
    config = OpcUaConnectorSettings.model_validate(
        {
            "type": "opcua",
            "name": "plc",
            "url": f"opc.tcp://127.0.0.1:{port}/recovery",
            "publishing_interval_ms": 50,
            "sampling_interval_ms": 50,
            "tags": [
                {
                    "address": f"nsu={NS};s=Temperature",
                    "path": "line.temperature",
                    "timestamp_outside_window": policy,
                }
            ],
        }
    )
    connector = OpcUaConnector(config, reporter)
    async with small_opcua_server(port) as server, collecting(connector) as collector:
        now = datetime.now(UTC)
        stamps = [
            now + timedelta(hours=1),
            datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC),
            datetime(1970, 1, 1, 0, 0, 1, tzinfo=UTC),
        ]
        for number, stamp in enumerate(stamps, start=1):
            await server.write(float(number), stamp)
            await eventually(
                lambda: (
                    connector.status.timestamps_replaced + connector.status.timestamps_rejected
                    >= number  # noqa: B023 (checked before the next iteration)
                ),
                what=f"the sample stamped {stamp}",
            )
        good = now - timedelta(seconds=5)
        await server.write(42.0, good)
        await eventually(lambda: 42.0 in collector.values("line.temperature"), what="good")
        values = collector.values("line.temperature")
        by_value = {s.value: s for s in collector.samples if s.path == "line.temperature"}
        if policy == "replace":
            assert connector.status.timestamps_replaced == 3
            assert {1.0, 2.0, 3.0} <= set(values)
            assert all(in_window(by_value[v].timestamp_ns) for v in (1.0, 2.0, 3.0))
        else:
            assert connector.status.timestamps_rejected == 3
            assert not {1.0, 2.0, 3.0} & set(values)
        assert by_value[42.0].timestamp_ns == int(good.timestamp() * 1e9)
        assert reporter.of("TimestampOutOfRange")


async def test_mqtt_payload_without_its_timestamp_field(mosquitto: Mosquitto) -> None:
    """No timestamp field: like a timestamp outside the window, per the tag's setting."""
    reporter = RecordingReporter()
    async with collecting(MqttConnector(mqtt_settings(mosquitto.port), reporter)) as collector:
        await wait_subscribed(mosquitto.port, collector)
        connector = collector.connector
        body = orjson.dumps({"v": 7})
        await apublish(mosquitto.port, [("ts/replace/bare", body, 1), ("ts/reject/bare", body, 1)])
        await eventually(
            lambda: "replaced.bare" in collector.latest() and connector.status.malformed >= 1,
            what="both messages handled",
        )
        sample = collector.latest()["replaced.bare"]
        assert sample.value == 7.0 and in_window(sample.timestamp_ns)
        assert connector.status.timestamps_replaced == 1
        assert "rejected.bare" not in collector.latest()
        assert reporter.of("TimestampMissing")
