"""``[outputs.sparkplug]`` in the service TOML: checked at load, errors name the file and key."""

from __future__ import annotations

from pathlib import Path

import pytest

from circman5.connectors.sparkplug.edge_config import PathSelection
from circman5.errors import ConfigError
from circman5.settings import load_settings

PLC = """
[[connectors]]
type = "opcua"
name = "plc"
url = "opc.tcp://127.0.0.1:4840"

[[connectors.tags]]
address = "nsu=urn:plant;s=Target"
path = "production_line.target_temperature"
writable = true

[[setpoints]]
path = "production_line.target_temperature"
min = 18.0
max = 32.0
"""


def load(tmp_path: Path, text: str):  # type: ignore[no-untyped-def]
    config = tmp_path / "edge.toml"
    config.write_text(text)
    return load_settings(config)


def test_a_valid_section_loads_with_its_defaults(tmp_path: Path) -> None:
    settings = load(
        tmp_path,
        PLC
        + """
[outputs.sparkplug]
group_id = "CIRCMAN5"
edge_node_id = "line1"
writable = ["production_line.target_temperature"]
""",
    )
    spb = settings.outputs.sparkplug
    assert spb is not None
    assert (spb.devices, spb.deadband, spb.effective_client_id) == (
        "none",
        0.0,
        "circman5-spb-CIRCMAN5-line1",
    )
    select = spb.selection()
    assert select("production_line.temperature")
    assert not select("quality.production_line.temperature")
    assert not select("timestamp")


@pytest.mark.parametrize(
    ("section", "key", "reason"),
    [
        (
            'group_id = "G"\nedge_node_id = "n"\nwritable = ["production_line.speed"]',
            "outputs.sparkplug.writable[0]",
            "not one of the [[setpoints]]",
        ),
        ('group_id = "G/1"\nedge_node_id = "n"', "outputs.sparkplug.group_id", "'/', '+' or '#'"),
        ('edge_node_id = "n"', "outputs.sparkplug.group_id", "required"),
        ('group_id = "G"\nedge_node_id = "n"\ndevices = "all"', "outputs.sparkplug.devices", ""),
        ('group_id = "G"\nedge_node_id = "n"\ndeadband = -1', "outputs.sparkplug.deadband", ""),
    ],
)
def test_bad_sections_fail_at_load_naming_the_key(
    tmp_path: Path, section: str, key: str, reason: str
) -> None:
    with pytest.raises(ConfigError) as failed:
        load(tmp_path, PLC + "\n[outputs.sparkplug]\n" + section + "\n")
    message = str(failed.value)
    assert "edge.toml" in message and key in message and reason in message


def test_globs_span_dots() -> None:
    select = PathSelection(["production_line.*", "materials.*.inventory"], ["*.secret"])
    assert select("production_line.a.b")
    assert select("materials.silicon_wafer.inventory")
    assert not select("materials.silicon_wafer.quality")
    assert not select("production_line.secret")
    assert not PathSelection([], [])("anything")
