"""The examples of the README and docs/ are what the code accepts and produces.

Every ```python block runs, as written, against fresh singletons; every ```toml block is a valid
service settings file (``load_settings``); every ```json block parses, and the event example of
docs/outputs.md is what the twin publishes for that breach.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from circman5.settings import load_settings
from tests.conftest import reset_singletons

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
BLOCK = re.compile(r"```python\n(.*?)```", re.DOTALL)


def examples(language: str = "python") -> list[tuple[str, str]]:
    block = re.compile(rf"```{language}\n(.*?)```", re.DOTALL)
    found = []
    for doc in DOCS:
        for index, match in enumerate(block.finditer(doc.read_text())):
            found.append((f"{doc.relative_to(ROOT)}#{language}{index + 1}", match.group(1)))
    return found


@pytest.mark.parametrize(("where", "text"), examples("toml"), ids=[w for w, _ in examples("toml")])
def test_doc_toml_is_a_valid_settings_file(where: str, text: str, tmp_path: Path) -> None:
    settings_file = tmp_path / "edge.toml"
    settings_file.write_text(text)
    load_settings(settings_file)  # raises ConfigError naming the key and the reason


@pytest.mark.parametrize(("where", "text"), examples("json"), ids=[w for w, _ in examples("json")])
def test_doc_json_parses(where: str, text: str) -> None:
    assert json.loads(text)


def test_event_example_is_what_the_twin_publishes() -> None:
    """docs/outputs.md's event is the twin's ThresholdEvent, as the MQTT output sends it."""
    from circman5.manufacturing.digital_twin.core.twin_core import DigitalTwin
    from circman5.manufacturing.digital_twin.event_notification.event_manager import (
        event_manager,
    )
    from circman5.manufacturing.digital_twin.event_notification.event_types import Event

    documented: dict[str, Any] = next(
        json.loads(text)
        for where, text in examples("json")
        if where.startswith("docs/outputs.md") and '"ThresholdEvent"' in text
    )
    reset_singletons()
    published: list[Event] = []
    event_manager.subscribe(published.append)
    twin = DigitalTwin()
    twin.initialize()
    twin.set_units({"production_line.temperature": "°C"})
    twin.update({"production_line": {"temperature": documented["details"]["actual_value"]}})
    produced = next(e.to_dict() for e in published if e.category.value == "threshold")
    volatile = {"event_id", "timestamp"}
    assert produced.keys() == documented.keys()
    assert {k: v for k, v in produced.items() if k not in volatile and k != "details"} == {
        k: v for k, v in documented.items() if k not in volatile and k != "details"
    }
    produced_details = dict(produced["details"])
    documented_details = dict(documented["details"])
    assert produced_details.pop("state_timestamp") and documented_details.pop("state_timestamp")
    assert produced_details == documented_details


@pytest.mark.parametrize(("where", "code"), examples(), ids=[w for w, _ in examples()])
def test_doc_example_runs(where: str, code: str) -> None:
    reset_singletons()
    exec(compile(code, where, "exec"), {"__name__": "__doc_example__"})


def test_there_are_examples() -> None:
    assert len(examples()) >= 1
