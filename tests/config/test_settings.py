"""Service settings: TOML plus CIRCMAN5_* environment, secrets masked, errors that point."""

from __future__ import annotations

from pathlib import Path

import pytest

from circman5.errors import ConfigError
from circman5.settings import load_settings, masked

PLANT = """
site = "vilnius"
line = "L2"

[api]
port = 8443
jwt_secret = "super-secret-signing-key"

[outputs.influxdb]
url = "http://influx:8086"
org = "plant"
bucket = "line2"
token = "influx-token-value"

[outputs.mqtt]
host = "broker"
password = "mqtt-password-value"
username = "edge"

[[connectors]]
type = "opcua"
name = "plc"
url = "opc.tcp://127.0.0.1:4840/circman5/plc"
namespace_uri = "urn:circman5:sim:plc"

[[connectors.tags]]
address = "s=Line1.Laminator.Temperature"
path = "production_line.temperature"

[[connectors.tags]]
address = "s=Line1.Laminator.TargetTemperature"
path = "production_line.target_temperature"
writable = true

[[setpoints]]
path = "production_line.target_temperature"
min = 18.0
max = 27.0
unit = "°C"
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "edge.toml"
    path.write_text(text)
    return path


def test_plant_settings_resolve_and_mask_secrets(tmp_path: Path) -> None:
    settings = load_settings(write(tmp_path, PLANT))
    assert settings.api.port == 8443
    assert settings.connectors[0].name == "plc"
    assert settings.setpoint_owner("production_line.target_temperature") == "plc"
    # one site/line for every output
    assert settings.outputs.series.site == "vilnius" and settings.outputs.series.line == "L2"
    assert settings.outputs.mqtt is not None and settings.outputs.mqtt.site == "vilnius"
    text = str(masked(settings))
    for secret in ("super-secret-signing-key", "influx-token-value", "mqtt-password-value"):
        assert secret not in text
    assert "**********" in text
    assert settings.outputs.influxdb is not None
    assert settings.outputs.influxdb.token.get_secret_value() == "influx-token-value"


def test_environment_overrides_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CIRCMAN5_API__PORT", "9000")
    monkeypatch.setenv("CIRCMAN5_SITE", "kaunas")
    settings = load_settings(write(tmp_path, PLANT))
    assert settings.api.port == 9000
    assert settings.site == "kaunas"


def test_defaults_without_file() -> None:
    settings = load_settings()
    assert settings.connectors == [] and settings.outputs.influxdb is None
    assert settings.api.port == 8080 and settings.health.port == 9108


@pytest.mark.parametrize(
    ("text", "key", "reason"),
    [
        ("[api]\nprot = 1\n", "api.prot", "unknown key"),
        ("[api]\nport = 'eighty'\n", "api.port", "integer"),
        ("site = 'has space'\n", "site", "pattern"),
        ("[outputs.influxdb]\nurll = 'x'\n", "outputs.influxdb.urll", "unknown key"),
        (
            PLANT.replace("min = 18.0", "min = 30.0"),
            "setpoints.0",
            "min 30.0 > max 27.0",
        ),
        (
            PLANT.replace("writable = true\n", ""),
            "setpoints[0].path",
            "not a writable tag",
        ),
        (
            PLANT.replace('type = "opcua"', 'type = "profibus"'),
            "connectors",
            "profibus",
        ),
        ("site = \n", "(syntax)", "invalid TOML"),
    ],
)
def test_bad_settings_name_file_key_reason(
    tmp_path: Path, text: str, key: str, reason: str
) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        load_settings(path)
    err = caught.value
    assert err.file == str(path)
    assert err.key.startswith(key), err
    assert reason in err.reason, err


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="file not found"):
        load_settings(tmp_path / "nope.toml")
