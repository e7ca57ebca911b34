"""Two lines on one broker and one VictoriaMetrics: two simulators, two ``circman5 run``
processes (site ``plant``, lines ``line1`` and ``line2``). Each line's series and topics carry
only its own values; line 1's API serves the site page over both lines, and killing line 2's
instance turns it offline there through its last will."""

from __future__ import annotations

import json
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from circman5.api.users import UserStore
from circman5.service.demo_config import DemoPorts, demo_settings_toml
from simulators.external import Mosquitto, VictoriaMetrics, free_port, wait_until
from tests.service.service_process import ServiceProcess
from tests.service.test_service_run import TopicLog

TEMPERATURE = "production_line.temperature"
#: Each line's simulator holds the laminator temperature at its own value (line 2 above the
#: 27 °C limit, so it raises an alarm): a value of one line found in the other would show.
STUCK = {"line1": 21.25, "line2": 29.5}


def _line_config(line: str, ports: DemoPorts, vm: VictoriaMetrics, site_view: bool) -> str:
    text = demo_settings_toml(ports)
    text = text.replace('site = "demo"', 'site = "plant"').replace(
        'line = "line1"', f'line = "{line}"'
    )
    text = text.replace("mes/line1/", f"mes/{line}/")
    # one Sparkplug edge node per line (the same node id twice would take each other's session)
    text = text.replace('group_id = "demo"', 'group_id = "plant"').replace(
        'edge_node_id = "line1"', f'edge_node_id = "{line}"'
    )
    text += f"""
[outputs.influxdb]
url = "{vm.url}"
org = "plant"
bucket = "lines"
token = "not-needed-by-victoria-metrics"
"""
    if site_view:
        text += f"""
[site_view]
enabled = true
port = {ports.mqtt_port}
key_values = ["{TEMPERATURE}"]
"""
    return text


def start_line_simulator(
    sim_process_factory: Any, mosquitto: Mosquitto, line: str, api_port: int
) -> DemoPorts:
    """The line's simulator (its MES on the broker, the temperature stuck at the line's own
    value) and the ports of its edge instance."""
    sim = sim_process_factory(
        extra_args=(
            "--line",
            line,
            "--mqtt-client-id",
            f"sim-mes-{line}",
            "--stuck",
            f"{TEMPERATURE}={STUCK[line]}",
        ),
        broker=mosquitto,
    )
    return DemoPorts(
        opcua_port=sim.endpoints["opcua"]["port"],
        modbus_port=sim.endpoints["modbus"]["tcp_port"],
        mqtt_port=mosquitto.port,
        api_port=api_port,
        health_port=free_port(),
    )


def _series(vm: VictoriaMetrics, selector: str) -> list[dict[str, Any]]:
    vm.force_flush()
    query = urllib.parse.quote(selector)
    with urllib.request.urlopen(f"{vm.url}/api/v1/export?match[]={query}", timeout=10) as resp:
        return [json.loads(line) for line in resp.read().decode().splitlines() if line]


def _request(url: str, body: dict[str, Any] | None = None, token: str | None = None) -> Any:
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, headers=headers)
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


@pytest.fixture
def topic_log(mosquitto: Mosquitto) -> Iterator[TopicLog]:
    log = TopicLog(mosquitto.port, "circman5/#")
    yield log
    log.close()


def test_two_lines_never_cross_and_the_site_page_sees_both(
    tmp_path: Path,
    mosquitto: Mosquitto,
    victoria_metrics: VictoriaMetrics,
    sim_process_factory,  # type: ignore[no-untyped-def]
    topic_log: TopicLog,
) -> None:
    services: dict[str, ServiceProcess] = {}
    api_port = free_port()
    for line in ("line1", "line2"):
        ports = start_line_simulator(
            sim_process_factory, mosquitto, line, api_port if line == "line1" else free_port()
        )
        config = tmp_path / f"{line}.toml"
        config.write_text(_line_config(line, ports, victoria_metrics, site_view=line == "line1"))
        data = tmp_path / f"data-{line}"
        if line == "line1":
            UserStore(data / "api" / "users.json").add("watcher", "watcher-password", "viewer")
        services[line] = ServiceProcess(config, data, tmp_path / f"{line}.log", ports.health_port)
    try:
        for service in services.values():
            service.start()
        for service in services.values():
            service.wait_ready()
        # a stuck value is reported once (OPC UA reports changes): wait for it, and for the
        # line's other values flowing
        for line in STUCK:
            wait_until(
                lambda line=line: _series(
                    victoria_metrics,
                    f'{{__name__="sample_value",path="{TEMPERATURE}",line="{line}"}}',
                ),
                60,
                f"{line}'s temperature in VictoriaMetrics",
            )
            wait_until(
                lambda line=line: (
                    sum(
                        len(s["values"])
                        for s in _series(
                            victoria_metrics, f'{{__name__="sample_value",line="{line}"}}'
                        )
                    )
                    >= 50
                ),
                60,
                f"{line}'s samples in VictoriaMetrics",
            )
        for line, value in STUCK.items():
            wait_until(
                lambda line=line, value=value: (
                    json.loads(topic_log.on(f"circman5/plant/{line}/state")[-1])["production_line"][
                        "temperature"
                    ]
                    == value
                ),
                30,
                f"{line}'s state with its own temperature",
            )
        wait_until(
            lambda: topic_log.on("circman5/plant/line2/events/threshold"), 30, "line 2's alarm"
        )

        # every series names one of the two lines of site plant, and holds only that line's values
        everything = _series(victoria_metrics, '{__name__=~"sample_value|twin_kpi_value"}')
        assert everything
        assert {(s["metric"].get("site"), s["metric"].get("line")) for s in everything} == {
            ("plant", "line1"),
            ("plant", "line2"),
        }
        for line, value in STUCK.items():
            temperatures = [
                v
                for s in everything
                if s["metric"].get("path") == TEMPERATURE and s["metric"]["line"] == line
                for v in s["values"]
            ]
            # the simulator's first value is its start temperature (22.5 °C), then the stuck one;
            # the other line's value never appears
            other = next(v for other_line, v in STUCK.items() if other_line != line)
            assert value in temperatures and other not in temperatures, (line, temperatures)

        # each line's topics carry only its own state and events
        for line, value in STUCK.items():
            states = [
                json.loads(payload)["production_line"]["temperature"]
                for payload in topic_log.on(f"circman5/plant/{line}/state")
            ]
            other = next(v for other_line, v in STUCK.items() if other_line != line)
            assert value in states and other not in states, (line, states)
        alarms = [
            json.loads(p)
            for t, p in list(topic_log.messages)
            if t.endswith("/events/threshold")
            and json.loads(p)["details"].get("parameter") == TEMPERATURE
        ]
        assert alarms
        assert {t for t, _ in topic_log.messages if t.endswith("/events/threshold")} == {
            "circman5/plant/line2/events/threshold"
        }
        assert all(a["details"]["actual_value"] == STUCK["line2"] for a in alarms)
        # the two MQTT connectors named "mes" keep their own sessions: both instances ready
        assert services["line1"].ready() == {"ready": True, "reasons": []}
        assert services["line2"].ready() == {"ready": True, "reasons": []}

        # the site page of line 1's API shows both lines; line 2's alarm; then its will
        api = f"http://127.0.0.1:{api_port}"
        token = _request(
            f"{api}/api/auth/login", {"username": "watcher", "password": "watcher-password"}
        )["access_token"]
        view: dict[str, Any] = {}

        def site_lines() -> dict[str, Any]:
            body = _request(f"{api}/api/site", token=token)
            view.clear()
            view.update({ln["line"]: ln for ln in body["sites"][0]["lines"]})
            return view

        wait_until(
            lambda: (
                set(site_lines()) == {"line1", "line2"}
                and all(ln["online"] for ln in view.values())
                and view["line2"]["alarms"]
            ),
            30,
            "both lines online on the site page, line 2 with its alarm",
        )
        assert view["line1"]["values"][TEMPERATURE] == STUCK["line1"]
        assert view["line2"]["values"][TEMPERATURE] == STUCK["line2"]
        assert view["line1"]["alarms"] == []
        assert [a["parameter"] for a in view["line2"]["alarms"]] == [TEMPERATURE]

        services["line2"].kill()
        wait_until(
            lambda: site_lines()["line2"]["status"] == "offline", 30, "line 2 offline (its will)"
        )
        assert view["line1"]["online"]
    finally:
        logs = {line: s.log_tail() for line, s in services.items()}
        for service in services.values():
            service.stop()
    assert "already connected" not in json.dumps(logs)
