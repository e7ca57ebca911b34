"""``circman5 calibrate`` against the simulators' recorded history: from the embedded store, from
VictoriaMetrics (written through the service's InfluxDB v2 sink, read by its export API) and
from a real InfluxDB 1.x (InfluxQL), and the simulation then uses what it saved."""

from __future__ import annotations

import datetime
import json
import math
from pathlib import Path

import pytest

from circman5.cli import main
from circman5.manufacturing.digital_twin.simulation.calibration import load_active_calibration
from circman5.manufacturing.digital_twin.simulation.simulation_engine import SimulationEngine
from circman5.sinks.config import InfluxDB1Settings, InfluxDB2Settings
from circman5.sinks.embedded_store import EmbeddedStore
from circman5.sinks.influxdb import InfluxDB1Sink, InfluxDB2Sink
from circman5.sinks.line_protocol import LineEncoder
from simulators.external import InfluxDB1, VictoriaMetrics
from tests.calibration.plant_history import PLANT_TAU_S, record_plant
from tests.simulation.conftest import spec_state
from tests.sinks.helpers import influx1_create_db

START = datetime.datetime.now(datetime.UTC).replace(microsecond=0) - datetime.timedelta(hours=2)


def _settings(tmp_path: Path, data_dir: Path, extra: str = "") -> Path:
    toml = tmp_path / "service.toml"
    toml.write_text(f'site = "s1"\nline = "l1"\ndata_dir = "{data_dir}"\n{extra}')
    return toml


def _check_plant_calibration(output: str, data_dir: Path, source: str) -> None:
    assert "production_line.temperature" in output and "accepted" in output
    calibration = load_active_calibration(data_dir)
    assert calibration is not None and calibration.version == 1
    assert calibration.source == source
    temperature = calibration.fit("production_line.temperature")
    assert temperature is not None and temperature.accepted
    assert temperature.points >= 1000
    # the plant regulates with a 30 s time constant (the built-in model: about 10 s)
    assert temperature.time_constant_s == pytest.approx(PLANT_TAU_S, rel=0.25)
    assert "production_line.temperature" in calibration.accepted_paths
    # the plant's power equation is not the model's: not forced into it
    energy = calibration.fit("production_line.energy_consumption")
    assert energy is not None and energy.status == "not explained"
    assert "energy_per_module" not in calibration.parameters
    # the simulation uses the saved parameters from now on
    engine = SimulationEngine(None)
    assert engine.parameter_set == "calibration 1"
    regulation = calibration.parameters["temperature_regulation"]
    assert engine.parameters.temperature_regulation == regulation
    states = engine.run_simulation(
        steps=30, initial_state=spec_state(temperature=20.0, target_temperature=25.0), seed=1
    )
    expected_gap = 5.0 * (1 - regulation) ** 30
    assert 25.0 - states[-1]["production_line"]["temperature"] == pytest.approx(
        expected_gap, abs=0.6
    )
    assert math.exp(-30 / 10) * 5.0 < expected_gap  # slower than the built-in defaults


async def test_calibrate_from_the_embedded_store(
    tmp_path: Path, isolated_data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    async with EmbeddedStore(path=isolated_data_dir / "timeseries.sqlite3") as store:
        store.write_samples(record_plant(START))
        await store.flush()
    toml = _settings(tmp_path, isolated_data_dir)
    assert main(["calibrate", "--config", str(toml), "--source", "embedded"]) == 0
    _check_plant_calibration(capsys.readouterr().out, isolated_data_dir, "embedded")


async def test_calibrate_from_victoria_metrics(
    tmp_path: Path,
    isolated_data_dir: Path,
    victoria_metrics: VictoriaMetrics,
    capsys: pytest.CaptureFixture[str],
) -> None:
    payload, _ = LineEncoder("s1", "l1").encode_samples(record_plant(START))
    settings = InfluxDB2Settings(url=victoria_metrics.url, bucket="b", org="o")
    async with InfluxDB2Sink(settings) as sink:
        await sink.write([payload])
    victoria_metrics.force_flush()
    toml = _settings(
        tmp_path,
        isolated_data_dir,
        f'[outputs.influxdb]\nurl = "{victoria_metrics.url}"\norg = "o"\nbucket = "b"\n',
    )
    assert main(["calibrate", "--config", str(toml)]) == 0  # influxdb: the default source
    _check_plant_calibration(capsys.readouterr().out, isolated_data_dir, "influxdb")


async def test_calibrate_from_influxdb_1_with_influxql(
    tmp_path: Path,
    isolated_data_dir: Path,
    influxdb1: InfluxDB1,
    capsys: pytest.CaptureFixture[str],
) -> None:
    payload, _ = LineEncoder("s1", "l1").encode_samples(record_plant(START))
    settings = InfluxDB1Settings(url=influxdb1.url, database="plant")
    influx1_create_db(influxdb1.url, "plant")
    async with InfluxDB1Sink(settings) as sink:
        await sink.write([payload])
    toml = _settings(
        tmp_path,
        isolated_data_dir,
        f'[outputs.influxdb1]\nurl = "{influxdb1.url}"\ndatabase = "plant"\n',
    )
    assert main(["calibrate", "--config", str(toml)]) == 0  # influxdb: the default source
    _check_plant_calibration(capsys.readouterr().out, isolated_data_dir, "influxdb")


def test_window_and_dry_run(
    tmp_path: Path, isolated_data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import asyncio

    async def record() -> None:
        async with EmbeddedStore(path=isolated_data_dir / "timeseries.sqlite3") as store:
            store.write_samples(record_plant(START, segments=4))
            await store.flush()

    asyncio.run(record())
    toml = _settings(tmp_path, isolated_data_dir)
    start = (START + datetime.timedelta(seconds=100)).isoformat()
    end = (START + datetime.timedelta(seconds=400)).isoformat()
    code = main(
        ["calibrate", "--config", str(toml), "--start", start, "--end", end, "--dry-run", "--json"]
    )
    out = capsys.readouterr().out
    report = json.loads(out)
    assert code in (0, 1)
    temperature = next(p for p in report["paths"] if p["path"] == "production_line.temperature")
    assert temperature["points"] == 301
    assert report["window"]["start"].startswith(start[:19])
    assert load_active_calibration(isolated_data_dir) is None  # --dry-run saved nothing


def test_bad_window_fails_with_the_reason(
    tmp_path: Path, isolated_data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    toml = _settings(tmp_path, isolated_data_dir)
    code = main(["calibrate", "--config", str(toml), "--start", "yesterday"])
    assert code == 2
    assert "neither ISO 8601 nor Unix seconds" in capsys.readouterr().err
