"""Outputs recover in the running service: the time-series server and the events broker restarted.

`circman5 run` as a process, with a QoS 1 stream in and both outputs; per output the server goes
away and comes back. Asserted: data flows again (counted in the server), and the service
published one ``sink_unavailable`` and one ``sink_recovered`` event carrying the outage length.
The recovery time is measured by ``python -m benchmarks durability``.
"""

from __future__ import annotations

from pathlib import Path

from simulators.external import Mosquitto, VictoriaMetrics, free_port, wait_until
from tests.service.service_process import EventLog, SequencePublisher, ServiceProcess
from tests.service.test_durability import TOPIC, service_toml, stored

BASE = "circman5/dur/line1"


def test_both_outputs_come_back_with_one_lost_and_one_restored_event_each(
    tmp_path: Path, mosquitto: Mosquitto, victoria_metrics: VictoriaMetrics
) -> None:
    health_port = free_port()
    config = tmp_path / "edge.toml"
    config.write_text(
        service_toml(mosquitto.port, victoria_metrics.url, health_port, "3.1.1")
        + f"""
[outputs.mqtt]
port = {mosquitto.port}
topic_prefix = "circman5"
"""
    )
    service = ServiceProcess(config, tmp_path / "data", tmp_path / "service.log", health_port)
    events = EventLog(mosquitto.port, BASE)
    publisher = SequencePublisher(mosquitto.port, TOPIC, rate=200.0)
    service.start()
    try:
        service.wait_ready()
        publisher.start()
        wait_until(lambda: len(stored(victoria_metrics)) > 100, 30, "points in the server")
        # the time-series server away and back
        victoria_metrics.stop()
        wait_until(lambda: events.of_type("sink_unavailable", "influxdb"), 30, "the lost event")
        wait_until(lambda: "influxdb" in str(service.ready()["reasons"]), 30, "/ready to say so")
        victoria_metrics.start()
        wait_until(lambda: events.of_type("sink_recovered", "influxdb"), 30, "the restored event")
        since = publisher.sent
        wait_until(lambda: max(stored(victoria_metrics)) > since, 30, "new data in the server")
        # the events broker away and back (the connector's broker too: the same mosquitto)
        mosquitto.stop()
        mosquitto.start()
        wait_until(
            lambda: events.of_type("sink_recovered", "mqtt-events"), 60, "the broker's restored"
        )
        publisher.stop()
        lost_ts = events.of_type("sink_unavailable", "influxdb")
        restored_ts = events.of_type("sink_recovered", "influxdb")
        lost_mqtt = events.of_type("sink_unavailable", "mqtt-events")
        restored_mqtt = events.of_type("sink_recovered", "mqtt-events")
    finally:
        events.close()
        exit_code = service.stop()
    assert exit_code == 0, service.log_tail()
    assert (len(lost_ts), len(restored_ts)) == (1, 1), (lost_ts, restored_ts)
    assert restored_ts[0]["outage_s"] > 0
    # the outage of the broker is published once the broker is back (the outbox kept it)
    assert (len(lost_mqtt), len(restored_mqtt)) == (1, 1), (lost_mqtt, restored_mqtt)
    assert restored_mqtt[0]["outage_s"] > 0
