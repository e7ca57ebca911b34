"""``circman5 run --role``: the table of parts, the roles that need PostgreSQL refuse to start
without it, the ``edge`` role serves no HMI, the ``api`` role starts no connector and shows the
lines from their MQTT topics (published here by a plain paho client, not by our own service)."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from circman5.adapters.services.constants_service import ConstantsService
from circman5.api.users import UserStore
from circman5.cli import main
from circman5.errors import ConfigError
from circman5.service.app import EdgeService
from circman5.service.roles import ROLE_PARTS, ROLES, role_parts
from circman5.settings import load_settings
from circman5.storage.postgres import PostgresDatabase
from simulators.external import Mosquitto, free_port, http_status, wait_until
from tests.service.service_process import ServiceProcess

SECRET = "s" * 40


def test_one_table_says_what_each_role_starts() -> None:
    assert set(ROLE_PARTS) == set(ROLES) == {"all", "edge", "api", "processing"}
    edge, api, everything = ROLE_PARTS["edge"], ROLE_PARTS["api"], ROLE_PARTS["all"]
    assert everything.ingestion and everything.api
    assert edge.ingestion and not edge.api and edge.health
    assert api.api and not api.ingestion and api.wants_site_view(enabled=False)
    assert ROLE_PARTS["processing"].jobs and not ROLE_PARTS["processing"].api
    needs = {role for role, parts in ROLE_PARTS.items() if parts.database_needed}
    assert needs == {"api", "processing"}


@pytest.mark.parametrize("role", ["api", "processing"])
def test_a_role_on_postgresql_refuses_to_start_without_it(
    role: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "edge.toml"
    config.write_text('site = "plant"\n')
    with pytest.raises(ConfigError, match=r"database\.url") as raised:
        role_parts(role, load_settings(config), str(config))
    assert raised.value.file == str(config)
    assert main(["--config", str(config), "run", "--role", role]) == 2
    err = capsys.readouterr().err
    assert str(config) in err and "database.url" in err and f"{role} role" in err
    if role == "api":
        with pytest.raises(ConfigError, match="set \\[database\\] url"):
            settings = load_settings(config)
            EdgeService(
                settings,
                ConstantsService(settings.config_dir),
                role="api",
                settings_file=str(config),
            )


def _listening(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def test_the_edge_role_keeps_health_and_metrics_but_serves_no_hmi(tmp_path: Path) -> None:
    api_port, health_port = free_port(), free_port()
    config = tmp_path / "edge.toml"
    config.write_text(
        f"[health]\nport = {health_port}\n[api]\nenabled = true\nport = {api_port}\n"
        f'jwt_secret = "{SECRET}"\n'
    )
    service = ServiceProcess(
        config, tmp_path / "data", tmp_path / "edge.log", health_port, role="edge"
    )
    service.start()
    try:
        service.wait_ready(120)  # a loaded 2-core machine imports slowly
        assert service.ready() == {"ready": True, "reasons": []}
        assert "circman5_" in service.metrics()
        assert not _listening(api_port)  # ready means every part started: no API among them
    finally:
        code = service.stop()
    assert code == 0, service.log_tail()


class RetainedLine:
    """A line as a plain paho client publishes it: retained status and state."""

    def __init__(self, port: int) -> None:
        self.client = paho.Client(CallbackAPIVersion.VERSION2, client_id="fake-line")
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()

    def publish(self, topic: str, payload: Any) -> None:
        data = payload if isinstance(payload, str) else json.dumps(payload)
        self.client.publish(topic, data, qos=1, retain=True).wait_for_publish(30)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture
def fake_line(mosquitto: Mosquitto) -> Iterator[RetainedLine]:
    line = RetainedLine(mosquitto.port)
    yield line
    line.close()


def test_the_api_role_reads_postgresql_and_the_lines_topics_and_starts_no_connector(
    tmp_path: Path, postgres_dsn: str, mosquitto: Mosquitto, fake_line: RetainedLine
) -> None:
    fake_line.publish("circman5/plant/line7/status", "online")
    fake_line.publish(
        "circman5/plant/line7/state",
        {"timestamp": "2026-01-01T00:00:00", "production_line": {"temperature": 23.5}},
    )
    api_port, health_port = free_port(), free_port()
    config = tmp_path / "api.toml"
    # a connector in the file (the same file as the line's): the api role must not start it
    config.write_text(
        f'site = "plant"\nline = "hmi"\n[health]\nport = {health_port}\n'
        f'[api]\nport = {api_port}\njwt_secret = "{SECRET}"\n'
        f'[database]\nurl = "{postgres_dsn}"\n'
        f'[site_view]\nport = {mosquitto.port}\nkey_values = ["production_line.temperature"]\n'
        '[[connectors]]\ntype = "mqtt"\nname = "mes"\nhost = "127.0.0.1"\n'
        f'port = {mosquitto.port}\nclient_id = "must-not-connect"\n'
        '[[connectors.tags]]\naddress = "mes/line7/temperature"\n'
        'path = "production_line.temperature"\n'
    )
    with PostgresDatabase(postgres_dsn) as database:
        UserStore(records=database.users).add("eve", "eve-password", "viewer")
    service = ServiceProcess(config, tmp_path / "data", tmp_path / "api.log", health_port, "api")
    service.start()
    api = f"http://127.0.0.1:{api_port}"
    try:
        wait_until(lambda: http_status(f"{api}/api/health") == 200, 120, "the API to answer")
        service.wait_ready(60)
        login = httpx.post(
            f"{api}/api/auth/login",
            json={"username": "eve", "password": "eve-password"},  # a user of PostgreSQL
            timeout=30,
        )
        assert login.status_code == 200, login.text
        headers = {"Authorization": f"Bearer {login.json()['access_token']}"}
        assert httpx.get(f"{api}/api/connectors", headers=headers, timeout=30).json() == []
        lines: dict[str, Any] = {}

        def line7() -> dict[str, Any]:
            body = httpx.get(f"{api}/api/site", headers=headers, timeout=30).json()
            lines.update({ln["line"]: ln for ln in body["sites"][0]["lines"]})
            return dict(lines.get("line7", {}))

        wait_until(lambda: line7().get("online") is True, 60, "line 7 online on the site page")
        assert lines["line7"]["values"] == {"production_line.temperature": 23.5}
        jobs = httpx.get(f"{api}/api/jobs", headers=headers, timeout=30)
        assert jobs.status_code == 200 and jobs.json() == []
    finally:
        code = service.stop()
    assert code == 0, service.log_tail()
