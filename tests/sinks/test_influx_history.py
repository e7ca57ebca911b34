"""Reading history back from InfluxDB: InfluxQL against a real InfluxDB 1.x; Flux against a
server written here that answers ``/api/v2/query`` as InfluxDB 2.x does (annotated CSV; no
InfluxDB 2.x can run on this machine: it is not packaged for Debian)."""

from __future__ import annotations

import json
from collections.abc import Iterator

import numpy as np
import pytest

from circman5.errors import SinkError, SinkUnavailable
from circman5.samples import Quality, Sample
from circman5.sinks.config import InfluxDB1Settings
from circman5.sinks.influx_history import (
    FluxNotSupported,
    read_flux_history,
    read_influxql_history,
)
from circman5.sinks.influxdb import InfluxDB1Sink
from circman5.sinks.line_protocol import LineEncoder
from simulators.external import InfluxDB1, free_port
from tests.sinks.helpers import Request, ScriptedHTTPServer, influx1_create_db

T0_S = 1_800_000_000


def _sample(path: str, value: float, second: int, quality: Quality = Quality.GOOD) -> Sample:
    return Sample("plc", path, path, value, (T0_S + second) * 1_000_000_000, quality)


async def test_influxql_reads_good_points_of_the_paths_in_the_window(influxdb1: InfluxDB1) -> None:
    samples = [_sample("line.temperature", 20.0 + i, i) for i in range(100)]
    samples += [_sample("line.temperature", 99.0, 100, Quality.BAD)]
    samples += [_sample("line/odd.path", float(i), 10 + i) for i in range(10)]  # '/' in a path
    samples += [_sample("line.other", 1.0, i) for i in range(10)]
    samples += [Sample("plc", "line.status", "line.status", "running", T0_S * 10**9)]
    payload, _ = LineEncoder("s1", "l1").encode_samples(samples)
    influx1_create_db(influxdb1.url, "plant")
    async with InfluxDB1Sink(InfluxDB1Settings(url=influxdb1.url, database="plant")) as sink:
        await sink.write([payload])

    found = read_influxql_history(
        influxdb1.url,
        "plant",
        ["line.temperature", "line/odd.path", "line.missing"],
        start_s=T0_S + 10,
        end_s=T0_S + 59,
    )
    assert sorted(found) == ["line.temperature", "line/odd.path"]
    times, values = found["line.temperature"]
    assert times.tolist() == [float(T0_S + i) for i in range(10, 60)]
    assert values.tolist() == [20.0 + i for i in range(10, 60)]
    assert found["line/odd.path"][1].tolist() == [float(i) for i in range(10)]
    everything = read_influxql_history(influxdb1.url, "plant", ["line.temperature"])
    assert everything["line.temperature"][1].max() == 119.0  # the BAD 99.0 is left out
    assert np.all(np.diff(everything["line.temperature"][0]) > 0)


def test_influxql_names_the_reason(influxdb1: InfluxDB1) -> None:
    with pytest.raises(SinkError, match="database not found"):
        read_influxql_history(influxdb1.url, "nowhere", ["line.temperature"])
    with pytest.raises(SinkUnavailable, match="cannot read history"):
        read_influxql_history(f"http://127.0.0.1:{free_port()}", "plant", ["x"])


FLUX_CSV = (
    "#datatype,string,long,dateTime:RFC3339,double,string\r\n"
    "#group,false,false,false,false,true\r\n"
    "#default,_result,,,,\r\n"
    ",result,table,_time,_value,path\r\n"
    ",,0,2027-01-15T08:00:00Z,21.5,line.temperature\r\n"
    ",,0,2027-01-15T08:00:01.5Z,21.75,line.temperature\r\n"
    "\r\n"
    "#datatype,string,long,dateTime:RFC3339,double,string\r\n"
    "#group,false,false,false,false,true\r\n"
    "#default,_result,,,,\r\n"
    ",result,table,_time,_value,path\r\n"
    ",,1,2027-01-15T08:00:00Z,3,line.rate\r\n"
    "\r\n"
)


@pytest.fixture
def flux_server() -> Iterator[ScriptedHTTPServer]:
    def answer(request: Request) -> tuple[int, dict[str, str], bytes]:
        if request.path != "/api/v2/query":
            return 404, {}, b'{"code":"not found"}'
        query = json.loads(request.body)["query"]
        if 'r._measurement == "sample"' not in query:
            return 200, {"Content-Type": "text/csv"}, b""
        return 200, {"Content-Type": "text/csv; charset=utf-8"}, FLUX_CSV.encode()

    server = ScriptedHTTPServer(respond=answer)
    yield server
    server.close()


def test_flux_query_and_csv(flux_server: ScriptedHTTPServer) -> None:
    found = read_flux_history(
        flux_server.url,
        "plant-org",
        "line1",
        ["line.temperature", "line.rate", "line.kpi_only"],
        start_s=1_800_000_000.0,
        end_s=1_800_000_100.0,
        token="secret",
    )
    assert sorted(found) == ["line.rate", "line.temperature"]
    times, values = found["line.temperature"]
    assert values.tolist() == [21.5, 21.75]
    assert times[1] - times[0] == pytest.approx(1.5)
    first, second = flux_server.requests[:2]
    assert first.query["org"] == ["plant-org"]
    assert first.headers["Authorization"] == "Token secret"
    query = json.loads(first.body)["query"]
    assert 'from(bucket: "line1")' in query
    assert "range(start: 2027-01-15T08:00:00.000000Z, stop: 2027-01-15T08:01:40.001000Z)" in query
    assert 'r.quality == "good"' in query and 'r._field == "value"' in query
    assert '"line.temperature", "line.rate", "line.kpi_only"' in query
    # what the first measurement lacked is asked of the KPI measurement, and only that
    assert 'r._measurement == "twin_kpi"' in json.loads(second.body)["query"]
    assert '"line.temperature"' not in json.loads(second.body)["query"]


def test_a_server_without_flux_is_told_apart_from_a_flux_error() -> None:
    vm_like = ScriptedHTTPServer(
        replies=[(400, {}, b'unsupported path requested: "/api/v2/query"\n')]
    )
    flux_error = ScriptedHTTPServer(
        replies=[(400, {}, b'{"code":"invalid","message":"compilation failed"}')]
    )
    try:
        with pytest.raises(FluxNotSupported):
            read_flux_history(vm_like.url, "o", "b", ["x"])
        with pytest.raises(SinkError, match="compilation failed") as raised:
            read_flux_history(flux_error.url, "o", "b", ["x"])
        assert not isinstance(raised.value, FluxNotSupported)
    finally:
        vm_like.close()
        flux_error.close()
