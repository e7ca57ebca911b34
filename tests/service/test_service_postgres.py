"""``circman5 run`` as a real process on PostgreSQL (``[database] url``): its events, the API's
users and scenarios are rows another client (psql) reads, and it stops cleanly."""

from __future__ import annotations

import io
from pathlib import Path

import httpx
import pytest

from circman5.cli import main
from simulators.external import PostgreSQL, free_port, http_status, wait_until
from tests.service.service_process import ServiceProcess


def test_the_service_keeps_events_users_and_scenarios_in_postgresql(
    postgresql_server: PostgreSQL,
    postgres_dsn: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    api_port, health_port = free_port(), free_port()
    config = tmp_path / "edge.toml"
    config.write_text(
        f'data_dir = "{tmp_path / "data"}"\n'
        f"[health]\nport = {health_port}\n"
        f'[api]\nport = {api_port}\njwt_secret = "{"s" * 40}"\n'
        f'[database]\nurl = "{postgres_dsn}"\n'
    )
    database = postgres_dsn.rsplit("/", 1)[1]
    monkeypatch.setattr("sys.stdin", io.StringIO("admin-password\n"))
    argv = ["--config", str(config), "user", "add", "boss", "--role", "admin", "--password-stdin"]
    assert main(argv) == 0

    service = ServiceProcess(config, tmp_path / "data", tmp_path / "service.log", health_port)
    service.start()
    try:
        api = f"http://127.0.0.1:{api_port}"
        wait_until(lambda: http_status(f"{api}/api/health") == 200, 60, "the API to answer")
        login = httpx.post(
            f"{api}/api/auth/login",
            json={"username": "boss", "password": "admin-password"},
            timeout=30,
        )
        assert login.status_code == 200, login.text  # the user is read from PostgreSQL
        headers = {"Authorization": f"Bearer {login.json()['access_token']}"}
        created = httpx.post(
            f"{api}/api/scenarios",
            json={"name": "from the api", "parameters": {}},
            headers=headers,
            timeout=30,
        )
        assert created.status_code == 201, created.text
        scenario_id = created.json()["id"]
        assert postgresql_server.psql("SELECT name FROM scenarios", database) == "from the api"
        listed = httpx.get(f"{api}/api/scenarios", headers=headers, timeout=30).json()
        assert [s["id"] for s in listed] == [scenario_id]
        # the twin's start-up event reached the events table
        wait_until(
            lambda: int(postgresql_server.psql("SELECT count(*) FROM events", database)) > 0,
            60,
            "the service's events in PostgreSQL",
        )
    finally:
        code = service.stop()
    assert code == 0, service.log_tail()
    assert not (tmp_path / "data" / "events" / "events.db").exists()
    assert not (tmp_path / "data" / "twin" / "scenarios.db").exists()
