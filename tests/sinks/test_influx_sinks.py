"""The InfluxDB sinks against real servers: exact points read back, and errors classified."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from circman5.errors import SinkRejected, SinkUnavailable
from circman5.samples import Quality, Sample
from circman5.sinks.config import InfluxDB1Settings, InfluxDB2Settings
from circman5.sinks.influxdb import InfluxDB1Sink, InfluxDB2Sink
from circman5.sinks.line_protocol import LineEncoder
from simulators.external import InfluxDB1, VictoriaMetrics, free_port
from tests.sinks.helpers import (
    Reply,
    Request,
    ScriptedHTTPServer,
    influx1_create_db,
    influx1_query,
    vm_export,
)

T0 = 1_700_000_000_000_000_000  # ns; VictoriaMetrics keeps milliseconds


def samples() -> list[Sample]:
    return [
        Sample("plc", "ns=2;s=T", "production_line.temperature", 22.5, T0 + 1_000_000),
        Sample("plc", "ns=2;s=T", "production_line.temperature", 23.25, T0 + 2_000_000),
        Sample("mes", "line/e", "production_line.energy consumption", 1e-3, T0 + 3_000_000),
        Sample("plc", "40001", "materials.silicon_wafer.inventory", 950, T0 + 4_000_000),
        Sample("plc", "ns=2;s=X", "production_line.temperature", -0.0, T0 + 5_000_000,
               Quality.UNCERTAIN),
    ]  # fmt: skip


async def test_v2_sink_writes_exact_points_to_victoria_metrics(
    victoria_metrics: VictoriaMetrics,
) -> None:
    payload, count = LineEncoder("plant", "l1").encode_samples(samples())
    settings = InfluxDB2Settings(url=victoria_metrics.url, bucket="b", org="o")
    async with InfluxDB2Sink(settings) as sink:
        await sink.write([payload])
    victoria_metrics.force_flush()
    series = {
        (s["metric"]["path"], s["metric"]["quality"], s["metric"]["source"]): s
        for s in vm_export(victoria_metrics.url, '{__name__="sample_value"}')
    }
    assert count == 5
    temp = series[("production_line.temperature", "good", "plc")]
    assert temp["values"] == [22.5, 23.25]
    assert temp["timestamps"] == [T0 // 1_000_000 + 1, T0 // 1_000_000 + 2]
    assert temp["metric"]["site"] == "plant" and temp["metric"]["line"] == "l1"
    assert series[("production_line.energy consumption", "good", "mes")]["values"] == [0.001]
    assert series[("materials.silicon_wafer.inventory", "good", "plc")]["values"] == [950]
    assert series[("production_line.temperature", "uncertain", "plc")]["values"] == [0]
    assert len(series) == 4


async def test_v1_sink_writes_exact_points_to_influxdb1(influxdb1: InfluxDB1) -> None:
    influx1_create_db(influxdb1.url, "plant")
    more = [
        Sample("plc", "a", "line.running", True, T0 + 6_000_000),
        Sample("mes", "b", "line.batch", 'lot "7", \\ok', T0 + 7_000_012),
    ]
    payload, count = LineEncoder().encode_samples([*samples(), *more])
    async with InfluxDB1Sink(InfluxDB1Settings(url=influxdb1.url, database="plant")) as sink:
        await sink.write([payload[: len(payload) // 2], payload[len(payload) // 2 :]])
    rows = influx1_query(
        influxdb1.url,
        "plant",
        "SELECT value, value_bool, value_str, path, quality, source FROM sample",
    )[0]
    columns = rows["columns"]
    got = [dict(zip(columns, values, strict=True)) for values in rows["values"]]
    assert count == 7
    assert [(r["time"], r["path"], r["value"]) for r in got[:5]] == [
        (T0 + 1_000_000, "production_line.temperature", 22.5),
        (T0 + 2_000_000, "production_line.temperature", 23.25),
        (T0 + 3_000_000, "production_line.energy consumption", 0.001),
        (T0 + 4_000_000, "materials.silicon_wafer.inventory", 950),
        (T0 + 5_000_000, "production_line.temperature", 0),
    ]
    assert got[4]["quality"] == "uncertain"
    assert (got[5]["time"], got[5]["value_bool"]) == (T0 + 6_000_000, True)
    assert (got[6]["time"], got[6]["value_str"]) == (T0 + 7_000_012, 'lot "7", \\ok')


async def test_v1_sink_with_integer_fields_and_retention_policy(influxdb1: InfluxDB1) -> None:
    influx1_create_db(influxdb1.url, "plant")
    payload, _ = LineEncoder(integer_fields=True).encode_samples(
        [Sample("plc", "a", "counter", 2**40, T0)]
    )
    settings = InfluxDB1Settings(url=influxdb1.url, database="plant", retention_policy="autogen")
    async with InfluxDB1Sink(settings) as sink:
        await sink.write([payload])
    fields = influx1_query(influxdb1.url, "plant", "SHOW FIELD KEYS FROM sample")[0]["values"]
    assert ["value", "integer"] in fields
    rows = influx1_query(influxdb1.url, "plant", "SELECT value FROM sample")[0]["values"]
    assert rows == [[T0, 2**40]]


@pytest.fixture
def http_server() -> Iterator[ScriptedHTTPServer]:
    replies: dict[str, Reply] = {
        "400": (400, {"Content-Type": "application/json"}, b'{"message":"bad line 1"}'),
        "401": (401, {}, b'{"error":"authorization failed"}'),
        "404": (404, {}, b'{"error":"database not found"}'),
        "429": (429, {"Retry-After": "7"}, b""),
        "503": (503, {"Retry-After": "2"}, b"busy"),
        "500": (500, {}, b"oops"),
        "204": (204, {}, b""),
    }

    def respond(request: Request) -> Reply:
        return replies[request.body.decode().split(" ", 1)[0]]

    server = ScriptedHTTPServer(respond=respond)
    yield server
    server.close()


@pytest.mark.parametrize("api", ["v2", "v1"])
async def test_sinks_classify_http_errors(http_server: ScriptedHTTPServer, api: str) -> None:
    sink: InfluxDB2Sink | InfluxDB1Sink
    if api == "v2":
        sink = InfluxDB2Sink(InfluxDB2Settings(url=http_server.url, timeout_s=5))
    else:
        sink = InfluxDB1Sink(InfluxDB1Settings(url=http_server.url, timeout_s=5))
    messages = {}
    async with sink:
        await sink.write([b"204 x=1\n"])
        for status in (400, 401, 404):
            with pytest.raises(SinkRejected) as rejected:
                await sink.write([f"{status} x=1\n".encode()])
            assert rejected.value.status == status
            messages[status] = str(rejected.value)
        for status, retry_after in ((429, 7.0), (503, 2.0), (500, None)):
            with pytest.raises(SinkUnavailable) as unavailable:
                await sink.write([f"{status} x=1\n".encode()])
            assert unavailable.value.retry_after == retry_after
    assert "bad line 1" in messages[400]
    assert "database not found" in messages[404]
    path = "/api/v2/write" if api == "v2" else "/write"
    assert [r.path for r in http_server.requests] == [path] * 7
    assert http_server.requests[0].query["precision"] == ["ns"]


@pytest.mark.parametrize("api", ["v2", "v1"])
async def test_sinks_report_refused_connections_as_unavailable(api: str) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    sink: InfluxDB2Sink | InfluxDB1Sink = (
        InfluxDB2Sink(InfluxDB2Settings(url=url))
        if api == "v2"
        else InfluxDB1Sink(InfluxDB1Settings(url=url))
    )
    async with sink:
        with pytest.raises(SinkUnavailable) as unavailable:
            await sink.write([b"m x=1\n"])
    assert unavailable.value.retry_after is None
    assert unavailable.value.__cause__ is not None
