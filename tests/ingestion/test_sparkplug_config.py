"""The Sparkplug tag map: the sample TOML loads; bad entries fail naming file, key and reason."""

from __future__ import annotations

from pathlib import Path

import pytest

from circman5.connectors.config import load_connectors
from circman5.connectors.factory import create_connector
from circman5.connectors.mqtt.topics import TopicPattern
from circman5.connectors.sparkplug.client import SparkplugConnector
from circman5.connectors.sparkplug.config import SparkplugConnectorSettings, parse_address
from circman5.errors import ConfigError

SAMPLE = Path(__file__).resolve().parents[2] / "src/circman5/connectors/sparkplug/sample.toml"


def test_the_sample_loads_and_builds_a_connector() -> None:
    (entry,) = load_connectors(SAMPLE)
    assert isinstance(entry, SparkplugConnectorSettings)
    assert entry.all_groups == ["Plant1"] and entry.primary_host_id == "circman5-edge"
    furnace, energy, cycle = entry.tags
    assert furnace.parsed.metric == "Zone1/Temperature" and furnace.parsed.device == "Furnace"
    assert energy.parsed.device == "" and energy.parsed.metric == "Energy/Total"
    pattern = TopicPattern(cycle.parsed.scope, cycle.path)
    captures = pattern.match("Plant1/Line2Gateway/Laminator")
    assert captures is not None
    assert pattern.path_for(captures) == "stations.Line2Gateway.Laminator.cycle_time"
    connector = create_connector(entry)
    assert isinstance(connector, SparkplugConnector)
    assert connector.paths() == [
        "production_line.temperature",
        "production_line.energy_consumption",
    ]


def entry(tags: list[str], **extra: str) -> str:
    lines = ["[[connectors]]", 'type = "sparkplug"', 'name = "sp"']
    lines += [f"{key} = {value}" for key, value in extra.items()]
    for tag in tags:
        lines += ["[[connectors.tags]]", tag]
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize(
    ("toml", "key", "reason"),
    [
        (
            entry(['address = "Plant1/gw/Temp"\npath = "a.b"']),
            "connectors[0].tags[0].address",
            "is not 'group/edge_node/device/metric name'",
        ),
        (
            entry(['address = "+/gw/dev/Temp"\npath = "a.b"']),
            "connectors[0].tags[0].address",
            "the group id must be given",
        ),
        (
            entry(['address = "Plant1/g#w/dev/Temp"\npath = "a.b"']),
            "connectors[0].tags[0].address",
            "contains '/', '+' or '#'",
        ),
        (
            entry(['address = "Plant1/gw/dev/Temp"\npath = "a.{1}"']),
            "connectors[0].tags[0].path",
            "placeholder {1}",
        ),
        (
            entry(['address = "Plant1/gw/dev/Temp"\npath = "notapath"']),
            "connectors[0].tags[0].path",
            "is not a twin path",
        ),
        (
            entry(['address = "Plant1/gw/dev/S"\npath = "a.s"\ndata_type = "str"\nscale = 2.0']),
            "connectors[0].tags[0]",
            "do not apply to str tags",
        ),
        (entry([]), "connectors[0]", "set 'groups' or map at least one tag"),
        (
            entry(['address = "P/gw/dev/T"\npath = "a.b"'], rebirth_interval_s="-1"),
            "connectors[0].rebirth_interval_s",
            "greater than or equal to 0",
        ),
        (
            entry(['address = "P/gw/dev/T"\npath = "a.b"'], color='"red"'),
            "connectors[0].color",
            "unknown key",
        ),
    ],
)
def test_bad_entries_name_file_key_and_reason(toml: str, key: str, reason: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_connectors(toml, "edge.toml")
    assert caught.value.file == "edge.toml"
    assert caught.value.key == key, caught.value
    assert reason in caught.value.reason


def test_twin_paths_are_unique_across_sparkplug_and_mqtt() -> None:
    toml = entry(['address = "P/gw/dev/T"\npath = "line.temperature"']) + (
        '[[connectors]]\ntype = "mqtt"\nname = "mes"\n'
        '[[connectors.tags]]\naddress = "t"\npath = "line.temperature"\n'
    )
    with pytest.raises(ConfigError, match=r"duplicate twin path 'line\.temperature'"):
        load_connectors(toml)


def test_metric_names_keep_their_slashes() -> None:
    address = parse_address("G/node//Node Control/Rebirth")
    assert (address.group, address.edge_node, address.device) == ("G", "node", "")
    assert address.metric == "Node Control/Rebirth"
