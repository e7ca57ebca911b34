"""Every TOML example in docs/tag_mapping.md loads and means what the guide says."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from circman5.connectors.config import (
    ModbusConnectorSettings,
    MqttConnectorSettings,
    OpcUaConnectorSettings,
    load_connectors,
)
from circman5.connectors.modbus.client import ModbusConnector
from circman5.connectors.mqtt.topics import TopicPattern
from circman5.connectors.sparkplug.config import SparkplugConnectorSettings
from circman5.errors import ConfigError

GUIDE = Path(__file__).resolve().parents[2] / "docs" / "tag_mapping.md"


def blocks(language: str) -> list[str]:
    text = GUIDE.read_text(encoding="utf-8")
    return re.findall(rf"```{language}\n(.*?)```", text, flags=re.DOTALL)


def test_the_guide_has_examples_for_every_protocol() -> None:
    types = {c.type for block in blocks("toml") for c in load_connectors(block)}
    assert types == {"opcua", "mqtt", "modbus", "sparkplug"}
    assert len(blocks("toml")) >= 6


@pytest.mark.parametrize("index", range(len(blocks("toml"))))
def test_every_toml_block_loads(index: int) -> None:
    connectors = load_connectors(blocks("toml")[index], f"tag_mapping.md block {index}")
    assert connectors
    assert all(c.tags or getattr(c, "discover", None) for c in connectors)


def test_the_complete_example_covers_the_three_simulators() -> None:
    complete = blocks("toml")[-1]
    plc, meters, mes = load_connectors(complete)
    assert isinstance(plc, OpcUaConnectorSettings) and plc.url.endswith(":4840/circman5/plc")
    assert isinstance(meters, ModbusConnectorSettings) and meters.port == 5020
    assert isinstance(mes, MqttConnectorSettings) and mes.port == 1883
    paths = {t.path for c in (plc, meters, mes) for t in c.tags}
    assert "production_line.temperature" in paths and "materials.{1}.inventory" in paths


def test_the_mqtt_example_maps_topics_as_described() -> None:
    mes = next(c for b in blocks("toml") for c in load_connectors(b) if c.type == "mqtt")
    assert isinstance(mes, MqttConnectorSettings)
    patterns = [TopicPattern(t.address, t.path) for t in mes.tags]
    captures = patterns[0].match("mes/line1/silicon_wafer/inventory")
    assert captures is not None
    assert patterns[0].path_for(captures) == "materials.silicon_wafer.inventory"


def test_the_sparkplug_example_maps_metrics_as_described() -> None:
    plant = next(c for b in blocks("toml") for c in load_connectors(b) if c.type == "sparkplug")
    assert isinstance(plant, SparkplugConnectorSettings)
    assert plant.all_groups == ["Plant1"] and plant.primary_host_id == "circman5-edge"
    furnace, energy, cycle = plant.tags
    assert furnace.parsed.metric == "Zone1/Temperature"
    assert energy.parsed.device == "" and energy.parsed.metric == "Energy/Total"
    pattern = TopicPattern(cycle.parsed.scope, cycle.path)
    captures = pattern.match("Plant1/Line2Gateway/Laminator")
    assert captures is not None
    assert pattern.path_for(captures) == "stations.Line2Gateway.Laminator.cycle_time"


def test_the_modbus_example_merges_requests() -> None:
    meters = next(c for b in blocks("toml") for c in load_connectors(b) if c.type == "modbus")
    assert isinstance(meters, ModbusConnectorSettings)
    connector = ModbusConnector(meters)
    shape = [(r.unit_id, r.table, r.address, r.count) for r in connector.requests]
    assert (1, "input_register", 0, 4) in shape  # active power and energy total in one read


def test_the_error_examples_are_real() -> None:
    text = blocks("text")[0]
    bad_index = (
        '[[connectors]]\ntype = "opcua"\nname = "p"\nurl = "opc.tcp://h:4840"\n'
        + "".join(f'[[connectors.tags]]\naddress = "i={i}"\npath = "a.t{i}"\n' for i in range(3))
        + '[[connectors.tags]]\naddress = "ns=2;s=Line1.X"\npath = "a.x"\n'
    )
    with pytest.raises(ConfigError) as info:
        load_connectors(bad_index, "circman5.toml")
    assert str(info.value).split(" address")[0] in text.replace("\n", " ")
    assert "connectors[0].tags[3].address: 'ns=2;s=Line1.X' uses a namespace index" in str(
        info.value
    )


def test_the_json_example_is_valid() -> None:
    state = json.loads(blocks("json")[0])
    assert set(state["quality"].values()) <= {"good", "uncertain", "bad", "stale"}


def test_the_readme_example_loads_and_maps_every_protocol() -> None:
    readme = (GUIDE.parents[1] / "README.md").read_text(encoding="utf-8")
    (block,) = re.findall(r"```toml\n(.*?)```", readme, flags=re.DOTALL)
    connectors = load_connectors(block, "README.md")
    assert {c.type for c in connectors} == {"opcua", "mqtt", "modbus"}
    assert block == blocks("toml")[-1]  # the README shows the guide's complete example
