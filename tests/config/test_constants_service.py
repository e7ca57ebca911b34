"""ConstantsService and the configuration adapters: defaults, overrides and clear errors."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from circman5.adapters.config.adapters import DigitalTwinAdapter
from circman5.adapters.services.constants_service import ConstantsService
from circman5.errors import ConfigError

REPO_CONFIG = Path(__file__).resolve().parents[2] / "config"


@pytest.fixture(autouse=True)
def fresh_constants() -> Iterator[None]:
    ConstantsService._reset_instance()
    yield
    ConstantsService._reset_instance()


def write(directory: Path, name: str, data: object) -> Path:
    path = directory / name
    path.write_text(data if isinstance(data, str) else json.dumps(data))
    return path


def test_embedded_defaults_are_the_spec_defaults() -> None:
    config = ConstantsService().get_digital_twin_config()
    assert config["DIGITAL_TWIN_CONFIG"]["history_length"] == 1000
    assert config["SIMULATION_PARAMETERS"]["target_temperature"] == 22.5
    assert config["SIMULATION_PARAMETERS"]["temperature_regulation"] == 0.1
    assert config["EVENT_NOTIFICATION"]["max_events"] == 1000
    assert config["PARAMETER_THRESHOLDS"]["production_line.temperature"] == [18.0, 27.0]
    assert config["AI_INTEGRATION"]["PARAMETER_MAPPING"]["energy_consumption"] == "energy_used"
    factors = ConstantsService().get_impact_factors()
    assert factors["MATERIAL_IMPACT_FACTORS"]["silicon_wafer"] == 120.0
    assert factors["RECYCLING_BENEFIT_FACTORS"]["silver_paste"] == -180.0


def test_repository_config_directory_loads_and_matches_defaults() -> None:
    service = ConstantsService(config_dir=REPO_CONFIG)
    assert service.config_dir == REPO_CONFIG
    for getter, adapter_name in [
        (service.get_digital_twin_config, "digital_twin"),
        (service.get_impact_factors, "impact_factors"),
        (service.get_optimization_config, "optimization"),
    ]:
        on_disk = json.loads((REPO_CONFIG / f"{adapter_name}.json").read_text())
        assert getter() == on_disk


def test_environment_variable_selects_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write(tmp_path, "digital_twin.json", {"SIMULATION_PARAMETERS": {"target_temperature": 24.0}})
    monkeypatch.setenv("CIRCMAN5_CONFIG_DIR", str(tmp_path))
    config = ConstantsService().get_digital_twin_config()
    assert config["SIMULATION_PARAMETERS"]["target_temperature"] == 24.0
    # what the file leaves out keeps its default
    assert config["SIMULATION_PARAMETERS"]["temperature_regulation"] == 0.1


def test_getters_return_copies() -> None:
    service = ConstantsService()
    service.get_digital_twin_config()["DIGITAL_TWIN_CONFIG"]["history_length"] = 5
    assert service.get_digital_twin_config()["DIGITAL_TWIN_CONFIG"]["history_length"] == 1000


def test_both_threshold_forms_normalize(tmp_path: Path) -> None:
    write(
        tmp_path,
        "digital_twin.json",
        {
            "PARAMETER_THRESHOLDS": {
                "production_line.temperature": [18.0, 27.0],
                "production_line.defect_rate": {
                    "value": 0.1,
                    "comparison": "greater_than",
                    "severity": "critical",
                },
                "materials.silicon_wafer.inventory": {"value": 50, "comparison": "less_than"},
                "environment.humidity": {"min": 30, "max": 70, "deadband": 2.0},
            }
        },
    )
    rules = ConstantsService(config_dir=tmp_path).get_parameter_thresholds()
    temp = rules["production_line.temperature"]
    assert (temp.low, temp.high, temp.severity) == (18.0, 27.0, "warning")
    assert temp.deadband == pytest.approx(0.09)  # 1% of the range by default
    defect = rules["production_line.defect_rate"]
    assert (defect.low, defect.high, defect.severity) == (None, 0.1, "critical")
    assert defect.breach(0.2) == ("high", 0.1) and defect.breach(0.05) is None
    inventory = rules["materials.silicon_wafer.inventory"]
    assert inventory.breach(10) == ("low", 50.0)
    humidity = rules["environment.humidity"]
    assert humidity.deadband == 2.0
    assert humidity.cleared("high", 69.0) is False and humidity.cleared("high", 68.0) is True


@pytest.mark.parametrize(
    ("content", "key", "reason"),
    [
        (
            {"DIGITAL_TWIN_CONFIG": {"histroy_length": 5}},
            "DIGITAL_TWIN_CONFIG.histroy_length",
            "unknown key",
        ),
        (
            {"DIGITAL_TWIN_CONFIG": {"history_length": "many"}},
            "DIGITAL_TWIN_CONFIG.history_length",
            "integer",
        ),
        (
            {"PARAMETER_THRESHOLDS": {"production_line.temperature": [30.0, 20.0]}},
            "PARAMETER_THRESHOLDS",
            "min 30.0 > max 20.0",
        ),
        (
            {"PARAMETER_THRESHOLDS": {"production_line.temperature": {"min": 5, "max": 1}}},
            "PARAMETER_THRESHOLDS",
            "min 5.0 > max 1.0",
        ),
        (
            {"PARAMETER_THRESHOLDS": {"temperature": [1, 2]}},
            "PARAMETER_THRESHOLDS",
            "dotted twin path",
        ),
        (
            {"AI_INTEGRATION": {"OPTIMIZATION_CONSTRAINTS": {"cycle_time": [60, 20]}}},
            "AI_INTEGRATION.OPTIMIZATION_CONSTRAINTS",
            "min 60.0 > max 20.0",
        ),
        (
            {"SIMULATION_PARAMETERS": {"temperature_regulation": 2.0}},
            "SIMULATION_PARAMETERS.temperature_regulation",
            "less than or equal to 1",
        ),
        (
            {"SIMULATION_PARAMETERS": {"target_temperature": "NaN"}},
            "SIMULATION_PARAMETERS.target_temperature",
            "finite",
        ),
        ("{not json", "line 1 column 2", "invalid JSON"),
        ("[1, 2]", "(root)", "JSON object"),
    ],
)
def test_invalid_config_names_file_key_and_reason(
    tmp_path: Path, content: object, key: str, reason: str
) -> None:
    path = write(tmp_path, "digital_twin.json", content)
    with pytest.raises(ConfigError) as caught:
        ConstantsService(config_dir=tmp_path)
    err = caught.value
    assert err.file == str(path)
    assert err.key.startswith(key)
    assert reason in err.reason
    assert str(path) in str(err) and key in str(err)


def test_missing_directory_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="configuration directory not found"):
        ConstantsService(config_dir=tmp_path / "nope")


def test_invalid_impact_factor_names_its_file(tmp_path: Path) -> None:
    path = write(
        tmp_path, "impact_factors.json", {"MATERIAL_IMPACT_FACTORS": {"silicon_wafer": -1}}
    )
    with pytest.raises(ConfigError) as caught:
        ConstantsService(config_dir=tmp_path)
    assert caught.value.file == str(path)
    assert caught.value.key == "MATERIAL_IMPACT_FACTORS.silicon_wafer"


def test_adapter_validate_and_defaults() -> None:
    adapter = DigitalTwinAdapter()
    assert adapter.validate_config(adapter.get_defaults()) is True
    assert adapter.validate_config({"UNKNOWN": 1}) is False


def test_get_constant() -> None:
    service = ConstantsService()
    assert service.get_constant("impact_factors", "ENERGY_IMPACT_FACTOR") == 0.5
    with pytest.raises(KeyError):
        service.get_constant("impact_factors", "NOPE")
