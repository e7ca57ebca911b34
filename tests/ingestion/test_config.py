"""The tag map in TOML: valid configs load; every mistake fails at load, naming the entry."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import Field, ValidationError
from pydantic_settings import SettingsConfigDict

from circman5.adapters.base.config_adapter import describe_validation_error
from circman5.connectors.config import (
    ConnectorList,
    ConnectorsFile,
    ModbusConnectorSettings,
    MqttConnectorSettings,
    OpcUaConnectorSettings,
    load_connectors,
)
from circman5.errors import ConfigError
from circman5.settings import Settings

VALID = """
[[connectors]]
type = "opcua"
name = "plc"
url = "opc.tcp://127.0.0.1:4840/circman5/plc"
namespace_uri = "urn:circman5:sim:plc"
publishing_interval_ms = 50

[[connectors.tags]]
address = "s=Line1.Laminator.Temperature"
path = "production_line.temperature"
unit = "°C"
deadband = 0.05

[[connectors.tags]]
address = "nsu=urn:circman5:sim:plc;s=Line1.Laminator.TargetTemperature"
path = "production_line.target_temperature"
writable = true

[[connectors]]
type = "mqtt"
name = "mes"
port = 1883
protocol = "3.1.1"

[[connectors.tags]]
address = "mes/line1/+/consumption"
path = "materials.{1}.consumption"
field = "consumption"
timestamp_field = "ts"

[[connectors]]
type = "modbus"
name = "meter"
host = "127.0.0.1"
port = 5020
unit_id = 1

[[connectors.tags]]
address = "ir:0"
path = "energy_meter.active_power"
data_type = "float32"
unit = "kW"

[[connectors.tags]]
address = "ir:0"
path = "environment.temperature"
data_type = "int16"
unit_id = 2
scale = 0.1
"""


def test_valid_tag_map_loads() -> None:
    connectors = load_connectors(VALID)
    assert [type(c) for c in connectors] == [
        OpcUaConnectorSettings,
        MqttConnectorSettings,
        ModbusConnectorSettings,
    ]
    plc, mes, meter = connectors
    assert isinstance(plc, OpcUaConnectorSettings)
    assert plc.tags[0].deadband == 0.05 and plc.tags[1].writable
    assert isinstance(mes, MqttConnectorSettings)
    assert mes.effective_client_id == "circman5-mes" and mes.clean_start is False
    assert isinstance(meter, ModbusConnectorSettings)
    assert meter.tags[1].unit_id == 2 and meter.tags[1].scale == 0.1


def test_load_from_a_file(tmp_path: Path) -> None:
    path = tmp_path / "service.toml"
    path.write_text(VALID.replace('name = "mes"', 'name = "mes"\nbogus = 1'), encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_connectors(path)
    assert info.value.file == str(path)
    assert info.value.key == "connectors[1].bogus"
    assert info.value.reason == "unknown key"


def error(toml: str) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        load_connectors(toml)
    return info.value


@pytest.mark.parametrize(
    ("old", "new", "key", "reason"),
    [
        (
            'address = "nsu=urn:circman5:sim:plc;s=Line1.Laminator.TargetTemperature"',
            'address = "ns=2;s=Line1.Laminator.TargetTemperature"',
            "connectors[0].tags[1].address",
            "uses a namespace index",
        ),
        (
            'address = "s=Line1.Laminator.Temperature"',
            'address = "Line1.Laminator.Temperature"',
            "connectors[0].tags[0].address",
            "is not an OPC UA node id",
        ),
        ('type = "modbus"', 'type = "profibus"', "connectors[2]", "unknown connector type"),
        (
            'address = "ir:0"\npath = "energy',
            'address = "ir0"\npath = "energy',
            "connectors[2].tags[0].address",
            "not a Modbus address",
        ),
        (
            'data_type = "float32"',
            'data_type = "float128"',
            "connectors[2].tags[0].data_type",
            "Input should be",
        ),
        (
            'address = "mes/line1/+/consumption"',
            'address = "mes/#/consumption"',
            "connectors[1].tags[0].address",
            "'#' must be the whole last level",
        ),
        (
            'path = "materials.{1}.consumption"',
            'path = "materials.{3}.consumption"',
            "connectors[1].tags[0].path",
            "placeholder {3}",
        ),
        (
            'path = "energy_meter.active_power"',
            'path = "production_line.temperature"',
            "connectors[2].tags[0].path",
            "duplicate twin path 'production_line.temperature' (also connectors[0].tags[0].path)",
        ),
        (
            'path = "energy_meter.active_power"',
            'path = "materials.silicon_wafer.consumption"',
            "connectors[2].tags[0].path",
            "also produced by 'materials.{1}.consumption'",
        ),
        (
            'path = "energy_meter.active_power"',
            'path = "production_line.temperature.raw"',
            "connectors[2].tags[0].path",
            "inside 'production_line.temperature'",
        ),
        ('name = "meter"', 'name = "plc"', "connectors[2].name", "duplicate connector name"),
        ("scale = 0.1", "scale = 0", "connectors[2].tags[1].scale", "must not be 0"),
        (
            "deadband = 0.05",
            "deadband = -1",
            "connectors[0].tags[0].deadband",
            "greater than or equal to 0",
        ),
        (
            'path = "environment.temperature"',
            'path = "temperature"',
            "connectors[2].tags[1].path",
            "is not a twin path",
        ),
        (
            'url = "opc.tcp://127.0.0.1:4840/circman5/plc"',
            'url = "http://plc"',
            "connectors[0].url",
            "should match pattern",
        ),
        (
            'data_type = "int16"',
            'data_type = "string"',
            "connectors[2].tags[1].length",
            "needs 'length'",
        ),
    ],
)
def test_errors_name_the_entry(old: str, new: str, key: str, reason: str) -> None:
    assert old in VALID
    problem = error(VALID.replace(old, new, 1))
    assert problem.key == key
    assert reason in problem.reason


def test_modbus_rules() -> None:
    base = '[[connectors]]\ntype = "modbus"\nname = "m"\nhost = "h"\n[[connectors.tags]]\n'
    cases = [
        (
            'address = "coil:1"\npath = "a.b"\ndata_type = "uint16"',
            "tags[0].data_type",
            "holds bits",
        ),
        ('address = "hr:1"\npath = "a.b"\ndata_type = "bit"', "tags[0].bit", "needs bit"),
        (
            'address = "ir:1"\npath = "a.b"\nwritable = true',
            "tags[0].writable",
            "only coils and holding registers",
        ),
        (
            'address = "hr:65535"\npath = "a.b"\ndata_type = "float32"',
            "tags[0].address",
            "pass 65535",
        ),
        (
            'address = "hr:1"\npath = "a.b"\ndata_type = "string"\nlength = 10\nscale = 2.0',
            "tags[0]",
            "do not apply to string",
        ),
    ]
    for body, key, reason in cases:
        problem = error(base + body)
        assert problem.key == f"connectors[0].{key}", body
        assert reason in problem.reason, body
    serial = error('[[connectors]]\ntype = "modbus"\nname = "m"\ntransport = "rtu"\n')
    assert serial.key == "connectors[0]" and "serial_port" in serial.reason
    limit = error(
        base.replace('host = "h"', 'host = "h"\nmax_registers_per_request = 10')
        + 'address = "hr:1"\npath = "a.b"\ndata_type = "string"\nlength = 20'
    )
    assert limit.key == "connectors[0].tags[0].length"


def test_opcua_security_rules(tmp_path: Path) -> None:
    base = (
        '[[connectors]]\ntype = "opcua"\nname = "p"\nurl = "opc.tcp://h:4840"\n'
        "[connectors.security]\n"
    )
    no_trust = error(
        base + 'policy = "Basic256Sha256"\nmode = "SignAndEncrypt"\n'
        'certificate = "c.der"\nprivate_key = "k.pem"\n'
    )
    assert no_trust.key == "connectors[0].security"
    assert "server certificate must be trusted" in no_trust.reason
    no_mode = error(base + 'policy = "Basic256Sha256"\n')
    assert "needs mode" in no_mode.reason
    pinned = load_connectors(
        base + 'policy = "Basic256Sha256"\nmode = "Sign"\ncertificate = "c.der"\n'
        'private_key = "k.pem"\nserver_certificate = "server.der"\n'
    )
    assert isinstance(pinned[0], OpcUaConnectorSettings)
    assert pinned[0].security.server_certificate == Path("server.der")
    half_login = error(base.replace("[connectors.security]\n", 'username = "u"\n'))
    assert "both 'username' and 'password'" in half_login.reason


def test_mqtt_rules() -> None:
    base = '[[connectors]]\ntype = "mqtt"\nname = "m"\n[[connectors.tags]]\naddress = "a/b"\n'
    assert (
        "do not apply to str" in error(base + 'path = "a.b"\ndata_type = "str"\nscale = 2.0').reason
    )
    assert error(base + 'path = "a.b"\nfield = "x..y"').key == "connectors[0].tags[0].field"
    assert error(base + 'path = "a.b"\nqos = 3').key == "connectors[0].tags[0].qos"
    tls = error('[[connectors]]\ntype = "mqtt"\nname = "m"\n[connectors.tls]\ncert_file = "c"\n')
    assert tls.key == "connectors[0].tls" and "key_file" in tls.reason


def test_model_validates_directly() -> None:
    model = ConnectorsFile.model_validate(
        {
            "connectors": [
                {"type": "mqtt", "name": "m", "tags": [{"address": "a/+", "path": "x.{1}"}]}
            ]
        }
    )
    assert isinstance(model.connectors[0], MqttConnectorSettings)
    with pytest.raises(ValidationError) as info:
        ConnectorsFile.model_validate({"connectors": [{"type": "nope", "name": "m"}]})
    assert "connectors[0]: unknown connector type 'nope'" in str(info.value)


class ServiceSettings(Settings):
    """How the lead wires it: ``connectors: ConnectorList`` in the service settings."""

    connectors: ConnectorList = Field(default_factory=list)


def load_service_settings(path: Path) -> ServiceSettings:
    """What ``circman5.settings.load_settings`` does for a file, with the extended model."""

    class FileSettings(ServiceSettings):
        model_config = SettingsConfigDict(toml_file=path)

    try:
        return FileSettings()
    except ValidationError as err:
        raise describe_validation_error(str(path), err) from err


def test_service_settings_with_connectors(tmp_path: Path) -> None:
    path = tmp_path / "circman5.toml"
    path.write_text('site = "plant7"\n' + VALID, encoding="utf-8")
    settings = load_service_settings(path)
    assert settings.site == "plant7"
    assert [c.name for c in settings.connectors] == ["plc", "mes", "meter"]
    path.write_text(VALID.replace('address = "ir:0"', 'address = "ir:x"', 1), encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_service_settings(path)
    assert info.value.key == "connectors[2].tags[0].address"
    assert "is not a non-negative integer" in info.value.reason


def test_plain_settings_still_load(tmp_path: Path) -> None:
    from circman5.settings import load_settings

    path = tmp_path / "plain.toml"
    path.write_text('site = "plant7"\n', encoding="utf-8")
    assert load_settings(path).site == "plant7"
