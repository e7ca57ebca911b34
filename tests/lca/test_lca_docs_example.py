"""The runnable example of docs/ai_and_lca.md runs as written."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

DOC = Path(__file__).resolve().parents[2] / "docs" / "ai_and_lca.md"


def test_the_documented_example_runs(capsys: pytest.CaptureFixture[str]) -> None:
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(encoding="utf-8"), re.S)
    assert len(blocks) == 1
    namespace: dict[str, Any] = {"__name__": "docs_example"}
    exec(compile(blocks[0], str(DOC), "exec"), namespace)
    assert namespace["applied"] is True
    assert namespace["params"]["temperature"] == 25.5
    assert namespace["line"]["target_temperature"] == namespace["proposal"]["temperature"]
    assert namespace["impact"].manufacturing_impact > 0
    output = capsys.readouterr().out
    assert "applied: True" in output and "kg CO2-eq" in output
