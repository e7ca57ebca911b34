"""Config refuses an instance that would publish into (or read from) another namespace, and
gives every MQTT session a client id of its own line."""

from __future__ import annotations

from pathlib import Path

import pytest

from circman5.errors import ConfigError
from circman5.settings import load_settings

BASE = """
site = "plant"
line = "line2"

[outputs.mqtt]
host = "127.0.0.1"
port = 1883
"""

MES = """
[[connectors]]
type = "mqtt"
name = "mes"
host = "127.0.0.1"
port = 1883
{extra}

[[connectors.tags]]
address = "{topic}"
path = "batch.current.batch_id"
data_type = "str"
"""


def _load(tmp_path: Path, text: str) -> object:
    path = tmp_path / "edge.toml"
    path.write_text(text)
    return load_settings(path)


def _refused(tmp_path: Path, text: str) -> ConfigError:
    with pytest.raises(ConfigError) as caught:
        _load(tmp_path, text)
    assert str(tmp_path / "edge.toml") in str(caught.value)
    return caught.value


def test_connector_client_ids_carry_the_site_and_line(tmp_path: Path) -> None:
    path = tmp_path / "edge.toml"
    path.write_text(BASE + MES.format(extra="", topic="mes/line2/x"))
    settings = load_settings(path)
    (mes,) = settings.connectors
    assert mes.client_id == "circman5-plant-line2-mes"  # type: ignore[union-attr]
    assert settings.outputs.mqtt is not None
    assert settings.outputs.mqtt.effective_client_id == "circman5-plant-line2"
    other = tmp_path / "other.toml"
    other.write_text(BASE.replace("line2", "line1") + MES.format(extra="", topic="mes/line1/x"))
    (mes1,) = load_settings(other).connectors
    assert mes1.client_id != mes.client_id  # type: ignore[union-attr]
    # an explicit client id stays as it is
    kept = tmp_path / "kept.toml"
    kept.write_text(BASE + MES.format(extra='client_id = "mine"', topic="mes/line2/x"))
    (mine,) = load_settings(kept).connectors
    assert mine.client_id == "mine"  # type: ignore[union-attr]


def test_series_and_mqtt_naming_different_lines_is_refused(tmp_path: Path) -> None:
    error = _refused(tmp_path, BASE + '\n[outputs.series]\nline = "line3"\n')
    assert "plant/line3" in error.reason and "plant/line2" in error.reason


@pytest.mark.parametrize(
    "topic", ["circman5/plant/line2/events/#", "circman5/+/+/state", "#", "circman5/plant/#"]
)
def test_a_connector_reading_its_own_outputs_is_refused(tmp_path: Path, topic: str) -> None:
    error = _refused(tmp_path, BASE + MES.format(extra="", topic=topic))
    assert "own outputs" in error.reason and topic in error.reason


@pytest.mark.parametrize(
    "topic", ["circman5/plant/line1/state", "mes/line2/batch/end", "circman5/plant", "o/+/b"]
)
def test_other_lines_and_other_topics_are_allowed(tmp_path: Path, topic: str) -> None:
    settings = _load(tmp_path, BASE + MES.format(extra="", topic=topic))
    assert settings is not None


def test_a_connector_sharing_the_outputs_client_id_is_refused(tmp_path: Path) -> None:
    error = _refused(
        tmp_path, BASE + MES.format(extra='client_id = "circman5-plant-line2"', topic="a/b")
    )
    assert "client id" in error.reason and "session" in error.reason


def test_site_view_settings_are_checked(tmp_path: Path) -> None:
    good = _load(
        tmp_path,
        BASE
        + """
[site_view]
enabled = true
sites = ["plant", "plant2"]
key_values = ["production_line.temperature"]
dashboards = { "plant/line1" = "http://edge1:8080/hmi/" }
""",
    )
    assert good.site_view.sites == ["plant", "plant2"]  # type: ignore[attr-defined]
    for bad, key in [
        ('dashboards = { "line1" = "http://x/" }', "dashboards"),
        ('dashboards = { "plant/line1" = "ftp://x/" }', "dashboards"),
        ('sites = ["a/b"]', "sites"),
        ('key_values = ["a..b"]', "key_values"),
        ('topic_prefix = "a/+/b"', "topic_prefix"),
    ]:
        error = _refused(tmp_path, BASE + f"\n[site_view]\n{bad}\n")
        assert key in error.key, (bad, error)


def test_two_connectors_sharing_a_client_id_are_refused(tmp_path: Path) -> None:
    second = (
        MES.replace('name = "mes"', 'name = "mes2"')
        .format(extra='client_id = "shared"', topic="b/c")
        .replace('path = "batch.current.batch_id"', 'path = "batch.other"')
    )
    error = _refused(
        tmp_path, BASE + MES.format(extra='client_id = "shared"', topic="a/b") + second
    )
    assert "connectors[1].client_id" in str(error) and "connectors[0]" in error.reason
