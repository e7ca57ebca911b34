"""``workers`` on an MQTT connector: checked at load, naming the file, the key and the reason."""

from __future__ import annotations

from pathlib import Path

import pytest

from circman5.errors import ConfigError
from circman5.settings import load_settings

INFLUXDB = """
[outputs.influxdb]
url = "http://127.0.0.1:8086"
org = "plant"
bucket = "line1"
token = "t"
"""


def config(tmp_path: Path, connector: str, outputs: str = INFLUXDB) -> Path:
    path = tmp_path / "edge.toml"
    path.write_text(
        f"""{outputs}
[[connectors]]
type = "mqtt"
name = "mes"
{connector}

[[connectors.tags]]
address = "plant/+/temperature"
path = "line.{{1}}.temperature"
"""
    )
    return path


def load_error(path: Path) -> str:
    with pytest.raises(ConfigError) as info:
        load_settings(path)
    return str(info.value)


def test_zero_workers_fail_at_load_naming_the_key(tmp_path: Path) -> None:
    path = config(tmp_path, 'protocol = "5"\nworkers = 0')
    message = load_error(path)
    assert str(path) in message
    assert "connectors[0].workers" in message
    assert "greater than or equal to 1" in message


def test_workers_with_mqtt_3_1_1_fail_at_load_naming_the_key(tmp_path: Path) -> None:
    path = config(tmp_path, "workers = 2")  # protocol defaults to 3.1.1
    message = load_error(path)
    assert str(path) in message
    assert "connectors[0].workers" in message
    assert 'protocol = "5"' in message


def test_workers_on_mqtt_3_1_1_need_the_brokers_extension_said_out_loud(tmp_path: Path) -> None:
    message = load_error(config(tmp_path, "workers = 2"))
    assert "shared_subscriptions_on_3_1_1 = true" in message
    settings = load_settings(config(tmp_path, "workers = 2\nshared_subscriptions_on_3_1_1 = true"))
    mqtt = settings.connectors[0]
    assert mqtt.type == "mqtt" and (mqtt.protocol, mqtt.workers) == ("3.1.1", 2)


def test_workers_without_an_influxdb_output_fail_at_load(tmp_path: Path) -> None:
    path = config(tmp_path, 'protocol = "5"\nworkers = 2', outputs="")
    message = load_error(path)
    assert "connectors[0].workers" in message
    assert "[outputs.influxdb]" in message


def test_workers_load_and_share_one_group(tmp_path: Path) -> None:
    settings = load_settings(config(tmp_path, 'protocol = "5"\nworkers = 3'))
    mqtt = settings.connectors[0]
    assert mqtt.type == "mqtt" and mqtt.workers == 3
    assert mqtt.subscription("plant/+/temperature") == "plant/+/temperature"  # not yet shared
    shared = mqtt.model_copy(update={"share_group": mqtt.effective_share_group})
    assert shared.subscription("plant/+/temperature") == "$share/circman5-mes/plant/+/temperature"


def test_one_worker_is_the_default(tmp_path: Path) -> None:
    settings = load_settings(config(tmp_path, ""))
    assert settings.connectors[0].workers == 1


@pytest.mark.parametrize("group", ["a/b", "x+", "#", "$sys"])
def test_a_share_group_with_topic_characters_fails_at_load(tmp_path: Path, group: str) -> None:
    message = load_error(config(tmp_path, f'protocol = "5"\nshare_group = "{group}"'))
    assert "connectors[0].share_group" in message
