"""The circman5 command: check-config on the shipped examples, init-config, users, errors."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from circman5.cli import main
from circman5.service.demo_config import demo_settings_toml

ROOT = Path(__file__).resolve().parents[2]


def test_demo_config_is_the_rendered_template() -> None:
    assert (ROOT / "config" / "demo.toml").read_text() == demo_settings_toml()


@pytest.mark.parametrize("example", ["demo.toml", "plant.toml"])
def test_shipped_configs_pass_check_config(
    example: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # the plant config points at /etc paths; the constants come from the repo here
    monkeypatch.setenv("CIRCMAN5_CONFIG_DIR", str(ROOT / "config"))
    monkeypatch.setenv("CIRCMAN5_OUTPUTS__INFLUXDB__TOKEN", "token-from-the-environment")
    assert main(["check-config", str(ROOT / "config" / example)]) == 0
    captured = capsys.readouterr()
    resolved = json.loads(captured.out)
    assert "configuration OK" in captured.err
    assert resolved["settings"]["connectors"]
    assert "token-from-the-environment" not in captured.out
    if example == "plant.toml":
        assert resolved["settings"]["outputs"]["influxdb"]["token"] == "**********"
        security = resolved["settings"]["connectors"][0]["security"]
        assert security["mode"] == "SignAndEncrypt"
        assert resolved["settings"]["connectors"][0]["password"] == "**********"


def test_check_config_error_names_file_key_and_reason(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "edge.toml"
    bad.write_text(
        '[[connectors]]\ntype = "modbus"\nname = "m"\nhost = "h"\n'
        '[[connectors.tags]]\naddress = "xx:1"\npath = "a.b"\n'
    )
    assert main(["check-config", str(bad)]) == 2
    err = capsys.readouterr().err
    assert str(bad) in err and "connectors[0].tags[0].address" in err


def test_init_config_writes_the_defaults(tmp_path: Path) -> None:
    target = tmp_path / "constants"
    assert main(["init-config", str(target)]) == 0
    written = sorted(p.name for p in target.iterdir())
    assert "digital_twin.json" in written and "impact_factors.json" in written
    twin = json.loads((target / "digital_twin.json").read_text())
    assert twin["PARAMETER_THRESHOLDS"]["production_line.temperature"] == [18.0, 27.0]
    # the written directory is a valid configuration directory
    assert main(["--constants", str(target), "check-config"]) == 0


def test_config_flag_takes_the_settings_file_everywhere(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``--config`` is the service TOML for every command; its data_dir is where users live."""
    data = tmp_path / "data"
    settings_file = tmp_path / "edge.toml"
    settings_file.write_text(f'data_dir = "{data}"\n')
    assert main(["--config", str(settings_file), "check-config"]) == 0
    assert json.loads(capsys.readouterr().out)["settings_file"] == str(settings_file)
    # a directory given to --config is refused with the flag that takes it
    assert main(["--config", str(tmp_path), "check-config"]) == 2
    assert "--constants DIR" in capsys.readouterr().err


def test_user_commands_use_the_data_dir_of_the_settings_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("CIRCMAN5_DATA_DIR", raising=False)
    data = tmp_path / "edge-data"
    settings_file = tmp_path / "edge.toml"
    settings_file.write_text(f'data_dir = "{data}"\n')
    monkeypatch.setattr("sys.stdin", io.StringIO("a-long-enough-password\n"))
    args = ["--config", str(settings_file), "user", "add", "olga", "--role", "operator"]
    assert main([*args, "--password-stdin"]) == 0
    assert "olga" in (data / "api" / "users.json").read_text()


def test_user_commands(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO("a-long-enough-password\n"))
    assert main(["user", "add", "erika", "--role", "engineer", "--password-stdin"]) == 0
    assert main(["user", "list"]) == 0
    listing = capsys.readouterr().out
    assert "erika" in listing and "engineer" in listing
    assert main(["user", "remove", "erika"]) == 0
    capsys.readouterr()
    assert main(["user", "list"]) == 0
    assert "erika" not in capsys.readouterr().out


def test_the_garbage_collector_is_back_on_after_every_command(tmp_path: Path) -> None:
    """main() starts with the collector off (start-up speed); no return path leaves it off."""
    import gc

    bad = tmp_path / "bad.toml"
    bad.write_text("[api]\nport = 'not a port'\n")
    assert gc.isenabled()
    assert main(["run", "--config", str(tmp_path / "missing.toml")]) == 2
    assert gc.isenabled()
    assert main(["check-config", str(bad)]) == 2
    assert gc.isenabled()
    with pytest.raises(SystemExit):
        main(["no-such-command"])
    assert gc.isenabled()
