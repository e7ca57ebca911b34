"""``circman5 run`` with ``[outputs.sparkplug]``, as a real process, read by an independent host:
the birth from the TOML, the will when the process is killed, the next session's bdSeq after a
restart, and the explicit death on a clean stop."""

from __future__ import annotations

import re
from pathlib import Path

from simulators.external import Mosquitto, free_port
from tests.ingestion.sparkplug_host import SparkplugHost, bd_seq_of, metrics_by_name
from tests.service.service_process import ServiceProcess


def edge_toml(broker_port: int, health_port: int) -> str:
    return f"""
[health]
port = {health_port}

[api]
enabled = false

[outputs.sparkplug]
port = {broker_port}
group_id = "Twins"
edge_node_id = "line1"
publish = ["production_line.*", "environment.*"]
deadband = 0.1
"""


def test_the_service_is_born_dies_by_will_and_stops_cleanly(
    tmp_path: Path, mosquitto: Mosquitto
) -> None:
    config = tmp_path / "edge.toml"
    health_port = free_port()
    config.write_text(edge_toml(mosquitto.port, health_port))
    host = SparkplugHost(mosquitto.url, "Twins")
    service = ServiceProcess(config, tmp_path / "data", tmp_path / "service.log", health_port)
    try:
        host.wait_for(lambda m: m.get("event") == "subscribed", what="the host's subscription")
        service.start()
        index, birth = host.wait_message("NBIRTH", node="line1", within=60)
        metrics = metrics_by_name(birth)
        assert {"production_line.temperature", "environment.humidity"} <= set(metrics)
        assert not any(name.startswith("materials.") for name in metrics)
        assert metrics["production_line.temperature"]["type"] == "Double"
        first = bd_seq_of(birth)
        service.wait_ready()
        scraped = service.metrics()
        assert "circman5_sparkplug_connected 1.0" in scraped
        births = re.search(r"^circman5_sparkplug_births_total (\S+)$", scraped, re.MULTILINE)
        assert births is not None and float(births.group(1)) >= 1

        service.kill()  # no clean stop: the broker publishes the will
        index, will = host.wait_message("NDEATH", start=index, node="line1", within=60)
        assert bd_seq_of(will) == first

        service.start()  # the same data directory: the next bdSeq
        index, reborn = host.wait_message("NBIRTH", start=index, node="line1", within=60)
        assert bd_seq_of(reborn) == (first + 1) % 256
        service.wait_ready()
        assert service.stop() == 0
        _, death = host.wait_message("NDEATH", start=index, node="line1", within=30)
        assert bd_seq_of(death) == bd_seq_of(reborn)
    finally:
        service.kill()
        host.close()
    assert "Sparkplug edge node Twins/line1 online" in service.log_tail(20_000)
