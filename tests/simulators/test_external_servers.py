"""The bench's third-party servers start, answer and restart on the same port."""

from __future__ import annotations

import subprocess
import urllib.request

from simulators.external import InfluxDB1, Mosquitto, VictoriaMetrics, port_open


def test_mosquitto_round_trip_and_restart(mosquitto: Mosquitto) -> None:
    sub = subprocess.Popen(
        ["mosquitto_sub", "-p", str(mosquitto.port), "-t", "bench/#", "-C", "1", "-W", "10"],
        stdout=subprocess.PIPE,
        text=True,
    )
    # publish until the subscriber has subscribed and received one message
    for _ in range(100):
        subprocess.run(
            ["mosquitto_pub", "-p", str(mosquitto.port), "-t", "bench/x", "-m", "42"], check=True
        )
        try:
            out, _ = sub.communicate(timeout=0.1)
            break
        except subprocess.TimeoutExpired:
            continue
    assert out.strip() == "42"
    port = mosquitto.port
    mosquitto.restart()
    assert mosquitto.port == port and port_open(port)


def test_victoria_metrics_accepts_line_protocol(victoria_metrics: VictoriaMetrics) -> None:
    body = b"bench,line=l1 temperature=22.5 1700000000000000000\n"
    req = urllib.request.Request(
        f"{victoria_metrics.url}/api/v2/write?bucket=b&precision=ns", data=body
    )
    with urllib.request.urlopen(req, timeout=5) as resp:
        assert resp.status == 204
    victoria_metrics.force_flush()
    url = f"{victoria_metrics.url}/api/v1/export?match[]=bench_temperature"
    with urllib.request.urlopen(url, timeout=5) as resp:
        exported = resp.read().decode()
    assert '"values":[22.5]' in exported
    assert '"timestamps":[1700000000000]' in exported


def test_influxdb1_write_and_query(influxdb1: InfluxDB1) -> None:
    create = urllib.request.Request(f"{influxdb1.url}/query", data=b"q=CREATE DATABASE bench")
    urllib.request.urlopen(create, timeout=5).close()
    body = b"bench,line=l1 temperature=22.5 1700000000000000000\n"
    req = urllib.request.Request(f"{influxdb1.url}/write?db=bench&precision=ns", data=body)
    with urllib.request.urlopen(req, timeout=5) as resp:
        assert resp.status == 204
    url = f"{influxdb1.url}/query?db=bench&q=SELECT+temperature+FROM+bench"
    with urllib.request.urlopen(url, timeout=5) as resp:
        assert "22.5" in resp.read().decode()
