"""docs/outputs.md: its settings examples load, its JSON parses and its Python examples run."""

from __future__ import annotations

import json
import re
import runpy
import tomllib
from pathlib import Path

import pytest

from circman5.settings import ServiceOutputSettings

DOC = Path(__file__).resolve().parents[2] / "docs" / "outputs.md"


def blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", DOC.read_text(), flags=re.DOTALL)


def test_settings_examples_load() -> None:
    examples = blocks("toml")
    loaded = [ServiceOutputSettings.model_validate(tomllib.loads(b)["outputs"]) for b in examples]
    assert len(loaded) == 3
    full, v1, sparkplug = loaded
    assert full.influxdb is not None and full.influxdb.token.get_secret_value() == "my-token"
    assert full.mqtt is not None and full.mqtt.base_topic == "circman5/site1/line1"
    assert full.mqtt.outbox.batch_max_points == 100
    assert v1.influxdb1 is not None and v1.influxdb1.retention_policy == "autogen"
    assert sparkplug.sparkplug is not None
    assert sparkplug.sparkplug.writable == ["production_line.target_temperature"]


def test_json_examples_parse() -> None:
    payloads = [json.loads(b) for b in blocks("json")]
    assert payloads[0]["category"] == "threshold"
    assert payloads[1]["production_line"]["temperature"] == 22.5


@pytest.mark.parametrize("number", [0, 1])
def test_python_examples_run(
    number: int, tmp_path: Path, capsys: pytest.CaptureFixture[str], isolated_data_dir: Path
) -> None:
    runnable = [b for b in blocks("python") if "asyncio.run(main())" in b]
    script = tmp_path / "example.py"
    script.write_text(runnable[number])
    runpy.run_path(str(script), run_name="__main__")
    out = capsys.readouterr().out
    assert "production_line.temperature" in out
    if number == 0:
        assert "[22.0, 22.1, 22.2, 22.3, 22.4]" in out
    assert (isolated_data_dir / "timeseries.sqlite3").exists()
