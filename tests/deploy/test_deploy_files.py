"""The deployment files in ``deploy/`` agree with the code and with each other.

The compose file, the image, the service config, the broker config, the Grafana dashboard, the
systemd unit and the alert rules are checked against the real settings models, the real line
protocol encoder, the twin's state, the health server and a real mosquitto. Docker itself is
not needed (nothing is built or pulled).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import shlex
import subprocess
import sys
import threading
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any, get_args

import paho.mqtt.client as mqtt
import pytest
import yaml
from pydantic import BaseModel, Field
from pydantic_settings import SettingsConfigDict

from circman5.connectors.config import load_connectors
from circman5.manufacturing.digital_twin.core.twin_core import DigitalTwin
from circman5.manufacturing.lifecycle import batch_footprint
from circman5.manufacturing.lifecycle.batch_footprint import BatchFootprint
from circman5.samples import Sample
from circman5.service.health import HealthServer
from circman5.service.roles import role_parts
from circman5.settings import HealthSettings, Settings, load_settings
from circman5.sinks.config import OutputSettings, SeriesSettings
from circman5.sinks.line_protocol import LineEncoder
from simulators.external import ServerBinaryMissing, ServerProcess, find_binary

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
COMPOSE = DEPLOY / "compose.yaml"
ENV_EXAMPLE = DEPLOY / ".env.example"
EDGE_TOML = DEPLOY / "edge.toml"
DOCKERFILE = DEPLOY / "Dockerfile"
UNIT = DEPLOY / "systemd" / "circman5.service"
DASHBOARD = DEPLOY / "grafana" / "dashboards" / "circman5.json"
DATASOURCES = DEPLOY / "grafana" / "provisioning" / "datasources" / "influxdb.yaml"
DASHBOARD_PROVIDERS = DEPLOY / "grafana" / "provisioning" / "dashboards" / "circman5.yaml"
MOSQUITTO_CONF = DEPLOY / "mosquitto" / "mosquitto.conf"
MOSQUITTO_ENTRYPOINT = DEPLOY / "mosquitto" / "entrypoint.sh"
ALERTS = DEPLOY / "prometheus" / "alerts.yml"
OPERATIONS = ROOT / "docs" / "operations.md"

SECRET_NAME = re.compile(r"PASSWORD|TOKEN|SECRET", re.IGNORECASE)
VARIABLE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])([^}]*))?\}")
EXPORTED_METRICS = {
    "circman5_opcua_certificate_days_left",
    "circman5_outbox_depth_batches",
    "circman5_outbox_dropped_points_total",
    "circman5_outbox_oldest_age_seconds",
    "circman5_samples_in_total",
    "circman5_stale_tags",
}


# -- helpers -----------------------------------------------------------------------------------


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data = load_yaml(COMPOSE)
    assert isinstance(data, dict)
    return data


def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return compose["services"]


def strings(node: Any) -> Iterator[str]:
    """Every string (keys and values) in a parsed YAML/JSON document."""
    if isinstance(node, str):
        yield node
    elif isinstance(node, dict):
        for key, value in node.items():
            yield from strings(key)
            yield from strings(value)
    elif isinstance(node, list):
        for item in node:
            yield from strings(item)


def published_ports(service: dict[str, Any]) -> dict[int, tuple[str, int]]:
    """target port -> (host address, published port) of ``HOST:PUBLISHED:TARGET`` entries."""
    ports: dict[int, tuple[str, int]] = {}
    for entry in service.get("ports", []):
        match = re.fullmatch(r"(?P<host>.+):(?P<published>\d+):(?P<target>\d+)", entry)
        assert match, f"port {entry!r} is not HOST:PUBLISHED:TARGET"
        ports[int(match["target"])] = (match["host"], int(match["published"]))
    return ports


def mounts(service: dict[str, Any]) -> dict[str, tuple[str, str]]:
    """container path -> (source, options) of the short volume syntax."""
    found: dict[str, tuple[str, str]] = {}
    for entry in service.get("volumes", []):
        source, target, *options = entry.split(":")
        found[target] = (source, options[0] if options else "rw")
    return found


def env_example() -> dict[str, str]:
    values: dict[str, str] = {}
    for raw in ENV_EXAMPLE.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        assert sep, f".env.example: {raw!r} is not KEY=VALUE"
        assert key not in values, f".env.example: {key} twice"
        values[key] = value
    return values


def settings_model() -> type[Settings]:
    """The service settings with ``outputs``, whether or not ``Settings`` has it wired yet."""
    if "outputs" in Settings.model_fields:
        return Settings

    class WithOutputs(Settings):
        outputs: OutputSettings = Field(default_factory=OutputSettings)

    return WithOutputs


def load_edge_settings(path: Path) -> Any:
    """``path`` through the same sources as ``load_settings`` (TOML file + CIRCMAN5_* env)."""

    class FromFile(settings_model()):  # type: ignore[misc]
        model_config = SettingsConfigDict(toml_file=path)

    return FromFile()


def nested_models(annotation: Any) -> list[type[BaseModel]]:
    candidates = [annotation, *get_args(annotation)]
    return [c for c in candidates if isinstance(c, type) and issubclass(c, BaseModel)]


def settings_field_exists(env_name: str) -> bool:
    """Whether ``CIRCMAN5_A__B__C`` names a field of the service settings."""
    parts = env_name.removeprefix("CIRCMAN5_").lower().split("__")
    models: list[type[BaseModel]] = [settings_model()]
    for index, part in enumerate(parts):
        field = next((m.model_fields[part] for m in models if part in m.model_fields), None)
        if field is None:
            return False
        if index == len(parts) - 1:
            return True
        models = nested_models(field.annotation)
    return False


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    logical: list[str] = []
    buffer = ""
    for raw in DOCKERFILE.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            buffer += line[:-1].strip() + " "
            continue
        logical.append(buffer + line)
        buffer = ""
    assert not buffer, "Dockerfile ends inside a continuation line"
    result = []
    for line in logical:
        instruction, _, arguments = line.partition(" ")
        result.append((instruction.upper(), arguments.strip()))
    return result


def final_stage() -> list[tuple[str, str]]:
    instructions = dockerfile_instructions()
    last_from = max(i for i, (name, _) in enumerate(instructions) if name == "FROM")
    return instructions[last_from:]


def dockerfile_env() -> dict[str, str]:
    env: dict[str, str] = {}
    for name, arguments in final_stage():
        if name == "ENV":
            for pair in shlex.split(arguments):
                key, _, value = pair.partition("=")
                env[key] = value
    return env


def unit_entries() -> dict[str, list[tuple[str, str]]]:
    sections: dict[str, list[tuple[str, str]]] = {}
    current: list[tuple[str, str]] | None = None
    for raw in UNIT.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("[") and line.endswith("]"):
            current = sections.setdefault(line[1:-1], [])
            continue
        key, sep, value = line.partition("=")
        assert sep and current is not None, f"unit line {raw!r}"
        current.append((key.strip(), value.strip()))
    return sections


def unit_values(section: str, key: str) -> list[str]:
    return [value for k, value in unit_entries()[section] if k == key]


def unit_value(section: str, key: str) -> str:
    values = unit_values(section, key)
    assert len(values) == 1, f"[{section}] {key}: {values}"
    return values[0]


def seconds(text: str) -> float:
    match = re.fullmatch(r"(\d+(?:\.\d+)?)\s*(s|min|m)?", str(text))
    assert match, f"not a duration: {text!r}"
    factor = {None: 1, "s": 1, "m": 60, "min": 60}[match[2]]
    return float(match[1]) * factor


def parse_line_protocol(line: str) -> tuple[str, dict[str, str], set[str]]:
    """measurement, tags, field names of one line (no spaces in the values used here)."""
    head, fields, _timestamp = line.strip().split(" ")
    measurement, *tag_pairs = head.split(",")
    tags = dict(pair.split("=", 1) for pair in tag_pairs)
    return measurement, tags, {pair.split("=", 1)[0] for pair in fields.split(",")}


# -- compose -----------------------------------------------------------------------------------


DISTRIBUTED = {f"{kind}-line{n}" for kind in ("sim", "edge") for n in (1, 2, 3)} | {
    "site-api",
    "postgres",
    "processing",
}


def test_compose_services_and_profiles(compose: dict[str, Any]) -> None:
    assert (
        set(services(compose))
        == {
            "circman5",
            "mosquitto",
            "influxdb",
            "grafana",
            "simulators",
        }
        | DISTRIBUTED
    )
    assert services(compose)["simulators"]["profiles"] == ["bench"]
    for name in DISTRIBUTED:
        assert services(compose)[name]["profiles"] == ["distributed"], name
    for name in ("circman5", "mosquitto", "influxdb", "grafana"):
        assert "profiles" not in services(compose)[name], f"{name} must start by default"
    assert services(compose)["mosquitto"]["image"] == "eclipse-mosquitto:2"
    assert services(compose)["influxdb"]["image"] == "influxdb:2"
    assert "grafana/" in services(compose)["grafana"]["image"]


def test_compose_ports_are_published_on_the_bind_address(compose: dict[str, Any]) -> None:
    expected = {
        "circman5": {8080, 9108},
        "mosquitto": {1883},
        "influxdb": {8086},
        "grafana": {3000},
        "simulators": {4840, 5020, 5021},
    }
    for name, targets in expected.items():
        ports = published_ports(services(compose)[name])
        assert set(ports) == targets, name
        for target, (host, published) in ports.items():
            assert published == target, f"{name}: {target} published as {published}"
            assert host == "${BIND_ADDRESS:-127.0.0.1}", f"{name}: {target} on {host}"


def test_compose_volumes(compose: dict[str, Any]) -> None:
    declared = set(compose["volumes"])
    for name, service in services(compose).items():
        for target, (source, _options) in mounts(service).items():
            if source.startswith("."):
                assert (DEPLOY / source).exists(), f"{name}: {source} -> {target} is missing"
            else:
                assert source in declared, f"{name}: volume {source} is not declared"
    circman5 = mounts(services(compose)["circman5"])
    assert circman5["/data"] == ("circman5-data", "rw")
    assert circman5["/config/edge.toml"] == ("./edge.toml", "ro")
    assert mounts(services(compose)["mosquitto"])["/mosquitto/config"] == ("./mosquitto", "ro")
    assert mounts(services(compose)["influxdb"])["/var/lib/influxdb2"][0] == "influxdb-data"
    assert mounts(services(compose)["grafana"])["/var/lib/grafana"][0] == "grafana-data"


def test_compose_builds_the_image_from_the_repository(compose: dict[str, Any]) -> None:
    circman5 = services(compose)["circman5"]
    simulators = services(compose)["simulators"]
    build = circman5["build"]
    assert (DEPLOY / build["context"]).resolve() == ROOT
    assert (ROOT / build["dockerfile"]).resolve() == DOCKERFILE
    assert simulators["build"] == build and simulators["image"] == circman5["image"]
    assert circman5["command"] == ["run", "--config", "/config/edge.toml"]
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert simulators["entrypoint"] == ["circman5-sim"] and "circman5-sim" in scripts
    assert circman5["environment"]["CIRCMAN5_DATA_DIR"] == "/data"
    assert circman5["environment"]["CIRCMAN5_CONFIG_DIR"] == "/config"


def test_influxdb_is_set_up_from_the_env_file(compose: dict[str, Any]) -> None:
    env = services(compose)["influxdb"]["environment"]
    assert env["DOCKER_INFLUXDB_INIT_MODE"] == "setup"
    for key in ("ORG", "BUCKET", "ADMIN_TOKEN", "PASSWORD"):
        assert VARIABLE.fullmatch(env[f"DOCKER_INFLUXDB_INIT_{key}"]), key
    assert env["DOCKER_INFLUXDB_INIT_ADMIN_TOKEN"].startswith("${INFLUXDB_ADMIN_TOKEN:?")
    healthcheck = services(compose)["influxdb"]["healthcheck"]["test"]
    assert healthcheck == ["CMD", "influx", "ping"]
    depends = services(compose)["circman5"]["depends_on"]
    assert depends["influxdb"]["condition"] == "service_healthy"
    assert "mosquitto" in depends


def test_every_compose_variable_is_in_the_env_example_and_back(compose: dict[str, Any]) -> None:
    used = {m[1] for text in strings(compose) for m in VARIABLE.finditer(text)}
    example = env_example()
    assert used - set(example) == set(), "variables compose uses that .env.example lacks"
    assert set(example) - used == set(), "variables of .env.example nothing uses"


def test_secrets_come_only_from_the_env_file(compose: dict[str, Any]) -> None:
    required_secrets = set()
    for name, service in services(compose).items():
        for key, value in (service.get("environment") or {}).items():
            if SECRET_NAME.search(key):
                match = VARIABLE.fullmatch(str(value))
                assert match, f"{name}: {key} must come from .env, not {value!r}"
                if match[2] == ":?":
                    required_secrets.add(match[1])
    assert not any("change-me" in text for text in strings(compose))
    assert {
        "INFLUXDB_ADMIN_TOKEN",
        "INFLUXDB_ADMIN_PASSWORD",
        "CIRCMAN5_INFLUXDB_TOKEN",
        "MQTT_PASSWORD",
        "GRAFANA_ADMIN_PASSWORD",
        "GRAFANA_INFLUXDB_TOKEN",
    } <= required_secrets


def test_env_example_holds_no_real_secret() -> None:
    example = env_example()
    secrets = {key: value for key, value in example.items() if SECRET_NAME.search(key)}
    assert len(secrets) >= 7
    for key, value in secrets.items():
        assert re.fullmatch(r"change-me-[a-z0-9-]+", value), f"{key}={value!r} is not a placeholder"
    for key, value in example.items():
        if key not in secrets:
            assert not re.search(r"[A-Za-z0-9+/_-]{24,}", value), f"{key} looks like a secret"
    ignored = (DEPLOY / ".gitignore").read_text().splitlines()
    assert ".env" in ignored


def test_compose_environment_names_real_settings(compose: dict[str, Any]) -> None:
    names = [k for k in services(compose)["circman5"]["environment"] if k.startswith("CIRCMAN5_")]
    names += [
        value.split("=", 1)[0]
        for value in unit_values("Service", "Environment")
        if value.startswith("CIRCMAN5_")
    ]
    assert "CIRCMAN5_OUTPUTS__INFLUXDB__TOKEN" in names
    for name in names:
        assert settings_field_exists(name), f"{name} is no setting"
    assert not settings_field_exists("CIRCMAN5_OUTPUTS__INFLUXDB__TOKN")


def test_graceful_stop_budget_is_the_same_everywhere(compose: dict[str, Any]) -> None:
    grace = seconds(services(compose)["circman5"]["stop_grace_period"])
    assert grace == seconds(unit_value("Service", "TimeoutStopSec")) == 30
    assert dict(final_stage())["STOPSIGNAL"] == "SIGTERM"
    assert unit_value("Service", "KillSignal") == "SIGTERM"
    budget = Settings.model_fields.get("shutdown_timeout_s")
    if budget is not None:  # the service's own graceful-stop budget must fit inside
        assert isinstance(budget.default, float | int) and budget.default < grace


# -- edge.toml ---------------------------------------------------------------------------------


def test_edge_toml_loads_with_secrets_from_the_environment(
    compose: dict[str, Any], monkeypatch: pytest.MonkeyPatch, isolated_data_dir: Path
) -> None:
    monkeypatch.setenv("CIRCMAN5_OUTPUTS__INFLUXDB__TOKEN", "token-from-env")
    monkeypatch.setenv("CIRCMAN5_OUTPUTS__MQTT__PASSWORD", "password-from-env")
    settings = load_edge_settings(EDGE_TOML)

    influx = settings.outputs.influxdb
    assert influx.token.get_secret_value() == "token-from-env"
    assert influx.url == "http://influxdb:8086"  # the file's value survives the env merge
    mqtt_out = settings.outputs.mqtt
    assert mqtt_out.password.get_secret_value() == "password-from-env"
    assert (mqtt_out.host, mqtt_out.port) == ("mosquitto", 1883)
    assert settings.data_dir == isolated_data_dir  # CIRCMAN5_DATA_DIR beats data_dir

    # the hosts are compose services, the ports the ones compose publishes
    assert {"influxdb", "mosquitto"} <= set(services(compose))
    assert 8086 in published_ports(services(compose)["influxdb"])
    assert 1883 in published_ports(services(compose)["mosquitto"])
    circman5_ports = published_ports(services(compose)["circman5"])
    assert {settings.api.port, settings.health.port} == set(circman5_ports)
    assert settings.api.host == settings.health.host == "0.0.0.0"
    assert (settings.outputs.series.site, settings.outputs.series.line) == (
        settings.site,
        settings.line,
    )
    assert (mqtt_out.site, mqtt_out.line) == (settings.site, settings.line)

    raw = tomllib.loads(EDGE_TOML.read_text())
    for table in raw["outputs"].values():
        assert not {"token", "password"} & set(table), "secrets belong in the environment"


def test_edge_toml_loads_with_load_settings(tmp_path: Path) -> None:
    path = EDGE_TOML
    if "outputs" not in Settings.model_fields:  # until the service settings compose the outputs
        raw = EDGE_TOML.read_text()
        path = tmp_path / "edge.toml"
        path.write_text(raw[: raw.index("\n[outputs.")] + "\n")
        assert "outputs" not in tomllib.loads(path.read_text())
    settings = load_settings(path)
    assert settings.log.format == "json"
    assert (settings.api.port, settings.health.port) == (8080, 9108)
    assert (settings.site, settings.line) == ("site1", "line1")


def test_commented_connectors_example_validates(compose: dict[str, Any]) -> None:
    lines = EDGE_TOML.read_text().splitlines()
    start = lines.index("# [[connectors]]")
    block = [line.removeprefix("#").removeprefix(" ") for line in lines[start:]]
    assert all(line.startswith("#") for line in lines[start:])
    connectors = load_connectors("\n".join(block), "edge.toml (connectors example)")

    assert {c.type for c in connectors} == {"opcua", "modbus", "mqtt"}
    by_type = {c.type: c for c in connectors}
    simulator_ports = published_ports(services(compose)["simulators"])
    assert by_type["opcua"].url.startswith("opc.tcp://simulators:4840/")
    assert 4840 in simulator_ports
    assert (by_type["modbus"].host, by_type["modbus"].port) == ("simulators", 5020)
    assert 5020 in simulator_ports
    assert (by_type["mqtt"].host, by_type["mqtt"].port) == ("mosquitto", 1883)
    assert "docs/tag_mapping.md" in EDGE_TOML.read_text()


# -- Dockerfile --------------------------------------------------------------------------------


def test_dockerfile_is_multi_stage_on_python_311_slim() -> None:
    instructions = dockerfile_instructions()
    args = [a for name, a in instructions if name == "ARG"]
    assert "PYTHON_IMAGE=python:3.11-slim" in args
    froms = [a for name, a in instructions if name == "FROM"]
    assert froms == ["${PYTHON_IMAGE} AS build", "${PYTHON_IMAGE} AS runtime"]
    copies = [a for name, a in final_stage() if name == "COPY"]
    assert "--from=build /opt/circman5 /opt/circman5" in copies


def test_dockerfile_installs_the_package_with_constraints() -> None:
    instructions = dockerfile_instructions()
    runs = " ".join(a for name, a in instructions if name == "RUN")
    assert re.search(r"pip install -c constraints\.txt \.(\s|$)", runs)
    assert "[dev]" not in runs and "pip install -e" not in runs
    sources = []
    for name, arguments in instructions:
        if name == "COPY" and not arguments.startswith("--from"):
            sources += arguments.split()[:-1]
    assert "constraints.txt" in sources and "pyproject.toml" in sources
    ignore = (DEPLOY / "Dockerfile.dockerignore").read_text().splitlines()
    for source in sources:
        assert (ROOT / source).exists(), source
        assert f"!{source}" in ignore or f"!{source}/" in ignore, f"{source} is dockerignored"
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    for script, target in scripts.items():
        package = target.split(".")[0]
        assert any((ROOT / s / package).is_dir() or s == package for s in sources), script


def test_dockerfile_runs_as_a_non_root_user() -> None:
    stage = final_stage()
    users = [(i, a) for i, (name, a) in enumerate(stage) if name == "USER"]
    assert users, "no USER in the final stage"
    index, user = users[-1]
    name = user.split(":")[0]
    assert name not in {"root", "0", ""}
    entrypoint = next(i for i, (n, _) in enumerate(stage) if n == "ENTRYPOINT")
    assert index < entrypoint
    runs = " ".join(a for n, a in stage if n == "RUN")
    assert re.search(rf"useradd .*\b{name}\b", runs)
    assert re.search(rf"chown {name}:{name} /data", runs)


def test_dockerfile_environment_ports_and_command() -> None:
    stage = dict(final_stage())
    env = dockerfile_env()
    assert env["CIRCMAN5_DATA_DIR"] == "/data"
    assert env["CIRCMAN5_CONFIG_DIR"] == "/config"
    assert json.loads(stage["VOLUME"]) == ["/data"]
    assert stage["EXPOSE"].split() == ["8080", "9108"]
    assert json.loads(stage["ENTRYPOINT"]) == ["circman5"]
    assert json.loads(stage["CMD"]) == ["run", "--config", "/config/edge.toml"]
    assert "/health" in stage["HEALTHCHECK"]
    default_port = re.search(r"'CIRCMAN5_HEALTH__PORT', '(\d+)'", stage["HEALTHCHECK"])
    assert default_port and int(default_port[1]) == HealthSettings().port


async def run_healthcheck(port: int) -> int:
    command = dict(final_stage())["HEALTHCHECK"].split(" CMD ", 1)[1]
    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        "CIRCMAN5_HEALTH__PORT": str(port),
    }
    process = await asyncio.create_subprocess_shell(
        command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    return await asyncio.wait_for(process.wait(), timeout=30)


async def test_dockerfile_healthcheck_probes_the_health_server() -> None:
    server = HealthServer(readiness=lambda: ["connector plc: disconnected"], metrics=lambda: b"")
    task = asyncio.create_task(server.run())
    try:
        await asyncio.wait_for(server.started.wait(), timeout=10)
        # alive but not ready: the container is healthy (liveness), /ready is for orchestrators
        assert await run_healthcheck(server.port) == 0
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    assert await run_healthcheck(server.port) != 0


# -- systemd -----------------------------------------------------------------------------------


def test_unit_has_the_hardening_keys() -> None:
    expected = {
        "NoNewPrivileges": "yes",
        "ProtectSystem": "strict",
        "ProtectHome": "yes",
        "PrivateTmp": "yes",
        "Restart": "on-failure",
        "StateDirectory": "circman5",
        "ConfigurationDirectory": "circman5",
        "CapabilityBoundingSet": "",
        "RestrictSUIDSGID": "yes",
        "ProtectKernelTunables": "yes",
    }
    for key, value in expected.items():
        assert unit_value("Service", key) == value, key
    user = unit_value("Service", "User")
    assert user not in {"root", "0", ""}
    assert "@system-service" in unit_values("Service", "SystemCallFilter")
    assert unit_value("Install", "WantedBy") == "multi-user.target"
    sysusers = (DEPLOY / "systemd" / "circman5.sysusers").read_text()
    assert re.search(rf"^u\s+{user}\s", sysusers, re.MULTILINE)


def test_unit_runs_circman5_with_its_directories() -> None:
    environment = dict(v.split("=", 1) for v in unit_values("Service", "Environment"))
    state = unit_value("Service", "StateDirectory")
    config = unit_value("Service", "ConfigurationDirectory")
    assert environment["CIRCMAN5_DATA_DIR"] == f"%S/{state}"
    assert environment["CIRCMAN5_CONFIG_DIR"] == f"%E/{config}"

    start = shlex.split(unit_value("Service", "ExecStart"))
    assert Path(start[0]).name == "circman5" and start[0].startswith("/")
    assert start[1:3] == ["run", "--config"] and len(start) == 4
    settings_file = start[3]
    assert settings_file.startswith(f"%E/{config}/")

    pre = shlex.split(unit_value("Service", "ExecStartPre"))
    assert pre == [start[0], "check-config", settings_file]
    assert f"{Path(start[0]).parent.parent}" in OPERATIONS.read_text()


# -- Grafana -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def dashboard() -> dict[str, Any]:
    data = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


def panels(node: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for panel in node.get("panels", []):
        yield panel
        yield from panels(panel)


def queries(dashboard: dict[str, Any]) -> list[tuple[str, str]]:
    """(where, Flux text) of every panel target and query variable."""
    found = []
    for panel in panels(dashboard):
        for target in panel.get("targets", []):
            found.append((f"panel {panel['title']!r}", target["query"]))
    for variable in dashboard["templating"]["list"]:
        if variable["type"] == "query":
            found.append((f"variable {variable['name']}", variable["query"]))
    return found


def measurements_in(query: str) -> set[str]:
    return set(re.findall(r'_measurement\s*==\s*"([^"]+)"', query)) | set(
        re.findall(r'\bmeasurement:\s*"([^"]+)"', query)
    )


@pytest.fixture
def written_schema() -> dict[str, tuple[set[str], set[str], set[str]]]:
    """measurement -> (tag keys, field keys, path tag values) as the service writes them."""
    encoder = LineEncoder.from_settings(SeriesSettings())
    samples = [
        Sample("plc", "ns=2;s=T", "production_line.temperature", 22.5),
        Sample("plc", "coil:0", "production_line.running", True),
        Sample("mes", "mes/line1/batch/start", "batch.id", "L1-00001"),
    ]
    DigitalTwin._reset_instance()
    twin = DigitalTwin()
    assert twin.initialize()
    state = twin.get_current_state()
    DigitalTwin._reset_instance()
    lines = [encoder.encode_sample(s) for s in samples]
    lines += encoder.encode_state(state, 1)[0].decode().splitlines()

    schema: dict[str, tuple[set[str], set[str], set[str]]] = {}
    for line in lines:
        assert line is not None
        measurement, tags, fields = parse_line_protocol(line)
        tag_keys, field_keys, paths = schema.setdefault(measurement, (set(), set(), set()))
        tag_keys |= set(tags)
        field_keys |= fields
        paths.add(tags["path"])

    written: list[tuple[str, dict[str, float], dict[str, str]]] = []
    footprint = BatchFootprint(
        lambda measurement, fields, tags, _ts: written.append((measurement, fields, tags)),
        lambda _event: None,
    )
    footprint.on_batch_end(
        {
            "batch_id": "B-1",
            "modules_produced": 50,
            "energy_kwh": 13.1,
            "line_id": "line1",
            "materials": {"silicon_wafer": {"consumption": 25.0, "waste": 1.2, "recycled": 0.7}},
        }
    )
    assert len(written) == 1
    measurement, fields, tags = written[0]
    schema[measurement] = (set(tags), set(fields), set())
    return schema


def test_every_query_references_existing_measurements(
    dashboard: dict[str, Any], written_schema: dict[str, tuple[set[str], set[str], set[str]]]
) -> None:
    known = {
        SeriesSettings().sample_measurement,
        SeriesSettings().kpi_measurement,
        batch_footprint.MEASUREMENT,
    }
    assert known == set(written_schema)
    used: set[str] = set()
    for where, query in queries(dashboard):
        names = measurements_in(query)
        assert names, f"{where}: no measurement"
        assert names <= known, f"{where}: unknown measurements {names - known}"
        used |= names
    assert used == known


def test_queries_use_tags_and_fields_the_service_writes(
    dashboard: dict[str, Any], written_schema: dict[str, tuple[set[str], set[str], set[str]]]
) -> None:
    for where, query in queries(dashboard):
        tag_keys: set[str] = set()
        field_keys: set[str] = set()
        for measurement in measurements_in(query):
            tags, fields, _paths = written_schema[measurement]
            tag_keys |= tags
            field_keys |= fields
        columns = set(re.findall(r"\br\.([A-Za-z]\w*)", query))
        columns |= set(re.findall(r'\btag:\s*"([^"]+)"', query))
        for listed in re.findall(r"columns:\s*\[([^\]]*)\]", query):
            columns |= set(re.findall(r'"([A-Za-z]\w*)"', listed))
        fields = set(re.findall(r'_field\s*==\s*"([^"]+)"', query))
        assert columns or fields, f"{where}: uses no tag or field"
        assert columns <= tag_keys | field_keys, f"{where}: {columns - tag_keys - field_keys}"
        assert fields <= field_keys, f"{where}: fields {fields - field_keys}"
        for pattern in re.findall(r"_field\s*=~\s*/([^/]+)/", query):
            assert any(re.search(pattern, f) for f in field_keys), f"{where}: /{pattern}/"


def test_twin_kpi_panels_show_paths_of_the_twin(
    dashboard: dict[str, Any], written_schema: dict[str, tuple[set[str], set[str], set[str]]]
) -> None:
    paths = written_schema[SeriesSettings().kpi_measurement][2]
    shown: set[str] = set()
    for where, query in queries(dashboard):
        if SeriesSettings().kpi_measurement not in measurements_in(query):
            continue
        literals = set(re.findall(r'r\.path\s*==\s*"([^"]+)"', query))
        for listed in re.findall(r"set:\s*\[([^\]]*)\]", query):
            literals |= set(re.findall(r'"([^"]+)"', listed))
        assert literals <= paths, f"{where}: {literals - paths} are no twin paths"
        shown |= literals
        for pattern in re.findall(r"r\.path\s*=~\s*/([^/]+)/", query):
            matched = {p for p in paths if re.search(pattern, p)}
            assert matched, f"{where}: /{pattern}/ matches no twin path"
            shown |= matched
    required = {
        "production_line.temperature",
        "production_line.energy_consumption",
        "production_line.production_rate",
        "production_line.efficiency",
        "production_line.defect_rate",
        "materials.silicon_wafer.inventory",
        "materials.solar_glass.inventory",
    }
    assert required <= shown


def test_dashboard_structure(dashboard: dict[str, Any]) -> None:
    datasource = load_yaml(DATASOURCES)["datasources"][0]
    ids = [p["id"] for p in panels(dashboard)]
    assert len(ids) == len(set(ids)) >= 8
    titles = " ".join(p["title"].lower() for p in panels(dashboard))
    for topic in ("temperature", "energy", "production rate", "efficiency", "inventory", "batch"):
        assert topic in titles, topic
    defined = {v["name"] for v in dashboard["templating"]["list"]}
    for where, query in queries(dashboard):
        used = set(re.findall(r"\$\{(\w+)\}", query))
        assert used <= defined, f"{where}: undefined variables {used - defined}"
        assert 'from(bucket: "${bucket}")' in query or "schema." in query, where
    for panel in panels(dashboard):
        assert panel["datasource"]["uid"] == datasource["uid"], panel["title"]
        for target in panel["targets"]:
            assert target["datasource"]["uid"] == datasource["uid"]


def test_grafana_provisioning_matches_compose(compose: dict[str, Any]) -> None:
    grafana = services(compose)["grafana"]
    datasource = load_yaml(DATASOURCES)["datasources"][0]
    assert datasource["type"] == "influxdb"
    assert datasource["jsonData"]["version"] == "Flux"
    assert datasource["url"] == "http://influxdb:8086"
    env_refs = {
        m[1]
        for text in strings([datasource["jsonData"], datasource["secureJsonData"]])
        for m in VARIABLE.finditer(text)
    }
    assert env_refs == {"INFLUXDB_ORG", "INFLUXDB_BUCKET", "INFLUXDB_READ_TOKEN"}
    assert env_refs <= set(grafana["environment"])

    grafana_mounts = mounts(grafana)
    assert grafana_mounts["/etc/grafana/provisioning"] == ("./grafana/provisioning", "ro")
    provider = load_yaml(DASHBOARD_PROVIDERS)["providers"][0]
    dashboards_dir = provider["options"]["path"]
    assert grafana_mounts[dashboards_dir] == ("./grafana/dashboards", "ro")
    home = Path(grafana["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"])
    assert home.parent == Path(dashboards_dir)
    assert (DEPLOY / "grafana" / "dashboards" / home.name).is_file()


# -- mosquitto ---------------------------------------------------------------------------------


class DeployedMosquitto(ServerProcess):
    """mosquitto with deploy/mosquitto/mosquitto.conf, moved to a free port and a temp dir."""

    name = "mosquitto-deploy"

    def __init__(self, workdir: Path, data_dir: Path) -> None:
        super().__init__(workdir)
        self.binary = find_binary("mosquitto", "mosquitto")
        self.data_dir = data_dir

    def command(self) -> list[str]:
        text = MOSQUITTO_CONF.read_text()
        for old, new in (
            ("\nlistener 1883\n", f"\nlistener {self.port} 127.0.0.1\n"),
            ("password_file /mosquitto/data/passwd", f"password_file {self.data_dir}/passwd"),
            ("persistence_location /mosquitto/data/", f"persistence_location {self.data_dir}/"),
        ):
            assert text.count(old) == 1, f"mosquitto.conf has no {old.strip()!r}"
            text = text.replace(old, new)
        if os.geteuid() == 0:  # stay root: mosquitto's user cannot enter pytest's temp dir
            text = "user root\n" + text
        conf = self.workdir / "mosquitto.conf"
        conf.write_text(text)
        return [self.binary, "-c", str(conf)]


def run_entrypoint(
    data_dir: Path, env: dict[str, str], *command: str
) -> subprocess.CompletedProcess[str]:
    try:
        find_binary("mosquitto_passwd", "mosquitto")
    except ServerBinaryMissing as err:
        pytest.fail(str(err), pytrace=False)
    return subprocess.run(
        ["sh", str(MOSQUITTO_ENTRYPOINT), *command],
        env={
            "PATH": f"/usr/sbin:/usr/bin:/bin:{os.environ.get('PATH', '')}",
            "MOSQUITTO_DATA_DIR": str(data_dir),
            **env,
        },
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def connack(port: int, username: str | None, password: str | None) -> mqtt.ReasonCode:
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    if username is not None:
        client.username_pw_set(username, password)
    codes: list[mqtt.ReasonCode] = []
    answered = threading.Event()

    def on_connect(_c: Any, _u: Any, _flags: Any, reason_code: Any, _props: Any) -> None:
        codes.append(reason_code)
        answered.set()

    client.on_connect = on_connect
    client.connect("127.0.0.1", port)
    client.loop_start()
    try:
        assert answered.wait(15), "no CONNACK from mosquitto"
    finally:
        client.disconnect()
        client.loop_stop()
    return codes[0]


def test_broker_config_and_entrypoint_require_the_env_users(tmp_path: Path) -> None:
    data = tmp_path / "data"
    users = {
        "MQTT_USERNAME": "circman5",
        "MQTT_PASSWORD": "s3cret-service",
        "MQTT_SIM_USERNAME": "mes-sim",
        "MQTT_SIM_PASSWORD": "s3cret-sim",
    }
    result = run_entrypoint(data, users, "echo", "exec'd")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "exec'd"
    passwd = data / "passwd"
    assert passwd.stat().st_mode & 0o077 == 0
    entries = dict(line.split(":", 1) for line in passwd.read_text().splitlines())
    assert set(entries) == {"circman5", "mes-sim"}
    assert "s3cret" not in passwd.read_text()  # hashed

    broker = DeployedMosquitto(tmp_path / "broker", data)
    with broker:
        assert not connack(broker.port, "circman5", "s3cret-service").is_failure
        assert not connack(broker.port, "mes-sim", "s3cret-sim").is_failure
        assert connack(broker.port, "circman5", "wrong").is_failure
        assert connack(broker.port, None, None).is_failure


def test_entrypoint_refuses_missing_and_placeholder_passwords(tmp_path: Path) -> None:
    data = tmp_path / "data"
    placeholder = run_entrypoint(
        data, {"MQTT_USERNAME": "circman5", "MQTT_PASSWORD": "change-me-mqtt-password"}, "true"
    )
    assert placeholder.returncode != 0
    assert "change-me" in placeholder.stderr
    missing = run_entrypoint(data, {"MQTT_USERNAME": "circman5"}, "true")
    assert missing.returncode != 0
    assert "MQTT_PASSWORD" in missing.stderr
    assert not (data / "passwd").exists()


# -- Prometheus and the operations guide ---------------------------------------------------------


def test_alert_rules_use_the_exported_metrics() -> None:
    rules = [rule for group in load_yaml(ALERTS)["groups"] for rule in group["rules"]]
    metrics: set[str] = set()
    jobs: set[str] = set()
    for rule in rules:
        assert rule["labels"]["severity"] in {"warning", "critical"}, rule["alert"]
        assert rule["annotations"]["summary"], rule["alert"]
        metrics |= set(re.findall(r"\bcircman5_[a-z_]+", rule["expr"]))
        jobs |= set(re.findall(r'job="([^"]+)"', rule["expr"]))
    assert metrics == EXPORTED_METRICS
    assert any("probe_success" in rule["expr"] for rule in rules)  # /ready via blackbox

    text = OPERATIONS.read_text()
    scrape = next(
        yaml.safe_load(block)
        for block in re.findall(r"```yaml\n(.*?)```", text, re.DOTALL)
        if "scrape_configs" in block
    )
    assert {job["job_name"] for job in scrape["scrape_configs"]} == jobs
    ready_job = next(j for j in scrape["scrape_configs"] if j["job_name"] != "circman5")
    assert ready_job["static_configs"][0]["targets"][0].endswith(":9108/ready")


def test_operations_guide_names_existing_deploy_files() -> None:
    text = OPERATIONS.read_text()
    named = set(re.findall(r"`deploy/([^`\s]+)`", text))
    assert {"edge.toml", "prometheus/alerts.yml", "grafana"} <= named
    for name in named - {".env"}:
        assert (DEPLOY / name).exists(), f"docs/operations.md names deploy/{name}"
    assert "```python" not in text


# -- the "distributed" profile: a site of three lines ------------------------------------------

LINES = DEPLOY / "lines"


def _distributed_settings(
    path: Path, monkeypatch: pytest.MonkeyPatch, environment: dict[str, str]
) -> Any:
    for key in environment:
        assert settings_field_exists(key), f"{key} is no setting"
        monkeypatch.setenv(key, f"from-env-{key.lower()}")
    try:
        return load_edge_settings(path)
    finally:
        for key in environment:
            monkeypatch.delenv(key)


def test_distributed_lines_each_own_their_namespace(
    compose: dict[str, Any], monkeypatch: pytest.MonkeyPatch, isolated_data_dir: Path
) -> None:
    namespaces = set()
    texts = {}
    for n in (1, 2, 3):
        edge = services(compose)[f"edge-line{n}"]
        sim = services(compose)[f"sim-line{n}"]
        assert edge["command"] == ["run", "--role", "edge", "--config", "/config/line.toml"]
        assert mounts(edge)["/config/line.toml"] == (f"./lines/line{n}.toml", "ro")
        assert mounts(edge)["/data"] == (f"edge-line{n}-data", "rw")
        assert edge["depends_on"]["influxdb"]["condition"] == "service_healthy"
        assert edge["depends_on"]["postgres"]["condition"] == "service_healthy"
        assert "mosquitto" in edge["depends_on"]
        assert f"--line=line{n}" in sim["command"] and "--no-mqtt" in sim["command"]
        assert sim["entrypoint"] == ["circman5-sim"]
        assert published_ports(edge) == {}  # the edge role serves no HMI
        for hardening in ("read_only", "cap_drop", "security_opt"):
            assert hardening in edge and hardening in sim, (n, hardening)

        settings = _distributed_settings(LINES / f"line{n}.toml", monkeypatch, edge["environment"])
        assert (settings.site, settings.line) == ("plant1", f"line{n}")
        mqtt_out, series = settings.outputs.mqtt, settings.outputs.series
        assert (
            (series.site, series.line) == (mqtt_out.site, mqtt_out.line) == ("plant1", f"line{n}")
        )
        assert (mqtt_out.host, mqtt_out.port) == ("mosquitto", 1883)
        assert settings.outputs.influxdb.url == "http://influxdb:8086"
        assert mqtt_out.password.get_secret_value().startswith("from-env-")
        assert settings.database.url == POSTGRES_URL
        assert settings.database.password.get_secret_value().startswith("from-env-")
        namespaces.add(mqtt_out.base_topic)
        # each line reads its own simulator, a service of the profile
        hosts = {
            c.url.split("/")[2].split(":")[0] if c.type == "opcua" else c.host
            for c in settings.connectors
        }
        assert hosts == {f"sim-line{n}"}
        texts[n] = (LINES / f"line{n}.toml").read_text()
    assert namespaces == {f"circman5/plant1/line{n}" for n in (1, 2, 3)}
    # the three files differ only in the line's number
    for n in (2, 3):
        same = texts[n].replace(f"line{n}", "line1").replace(f"808{n}", "8081")
        assert same.replace(f"Line {n}", "Line 1") == texts[1]


def test_distributed_site_api_shows_every_line(
    compose: dict[str, Any], monkeypatch: pytest.MonkeyPatch, isolated_data_dir: Path
) -> None:
    api = services(compose)["site-api"]
    assert api["command"] == ["run", "--role", "api", "--config", "/config/site-api.toml"]
    assert api["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert mounts(api)["/config/site-api.toml"] == ("./lines/site-api.toml", "ro")
    assert published_ports(api) == {8080: ("${BIND_ADDRESS:-127.0.0.1}", 8090)}
    settings = _distributed_settings(LINES / "site-api.toml", monkeypatch, api["environment"])
    view = settings.site_view
    assert view.enabled and (view.host, view.port) == ("mosquitto", 1883)
    assert view.password.get_secret_value().startswith("from-env-")
    assert settings.connectors == [] and settings.outputs.mqtt is None  # not a line itself
    assert view.sites == ["plant1"]
    # the edge lines serve no HMI: the site page links each line to its own live view
    assert view.dashboards == {}
    assert settings.database.url == POSTGRES_URL
    assert role_parts("api", settings, "site-api.toml").api  # it has what the role needs


POSTGRES_URL = "postgresql://circman5@postgres:5432/circman5"


def test_distributed_postgresql_and_the_processing_worker(
    compose: dict[str, Any], monkeypatch: pytest.MonkeyPatch, isolated_data_dir: Path
) -> None:
    postgres = services(compose)["postgres"]
    assert postgres["image"].startswith("postgres:")
    assert mounts(postgres)["/var/lib/postgresql/data"] == ("postgres-data", "rw")
    assert postgres["healthcheck"]["test"][:2] == ["CMD", "pg_isready"]
    assert published_ports(postgres) == {}  # reached by the profile's services only
    env = postgres["environment"]
    assert (env["POSTGRES_DB"], env["POSTGRES_USER"]) == ("circman5", "circman5")
    worker = services(compose)["processing"]
    assert worker["command"][:3] == ["run", "--role", "processing"]
    assert worker["command"][3:] == ["--config", "/config/processing.toml"]
    assert worker["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert mounts(worker)["/config/processing.toml"] == ("./lines/processing.toml", "ro")
    assert worker["healthcheck"] == {"disable": True}  # no health port: the image's check
    # every circman5 service of the profile logs in with the password PostgreSQL was set up with
    password = env["POSTGRES_PASSWORD"]
    for name in ("processing", "site-api", "edge-line1", "edge-line2", "edge-line3"):
        assert services(compose)[name]["environment"]["CIRCMAN5_DATABASE__PASSWORD"] == password
    settings = _distributed_settings(LINES / "processing.toml", monkeypatch, worker["environment"])
    assert settings.database.url == POSTGRES_URL
    assert role_parts("processing", settings, "processing.toml").jobs
