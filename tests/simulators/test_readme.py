"""simulators/README.md: its Python examples run, its tables list every node and register."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from simulators.modbus_devices import REGISTERS
from simulators.opcua_plc import NODES
from simulators.tags import TAGS

README = Path(__file__).resolve().parents[2] / "simulators" / "README.md"
TEXT = README.read_text()
EXAMPLES = re.findall(r"```python\n(.*?)```", TEXT, re.DOTALL)


@pytest.mark.parametrize("code", EXAMPLES, ids=[f"example{i + 1}" for i in range(len(EXAMPLES))])
def test_readme_example_runs(code: str) -> None:
    exec(compile(code, f"{README}", "exec"), {"__name__": "__readme_example__"})


def test_readme_documents_every_node_register_and_tag() -> None:
    assert len(EXAMPLES) >= 2
    for spec in NODES:
        assert f"| `{spec.node_id}` | {spec.variant.name} | `{spec.path}` |" in TEXT, spec
    for reg in REGISTERS:
        cells = (reg.unit, reg.table, reg.address, reg.size, reg.encoding, f"`{reg.path}`")
        row = "| " + " | ".join(str(cell) for cell in cells) + " |"
        assert row in TEXT, reg
    for path in TAGS:
        assert f"| `{path}` |" in TEXT, path
