"""`circman5 calibrate` on the history `circman5 run` recorded from the simulators: the service
runs against the simulator processes (plant at 20x speed) while the test changes the line's
target temperature over OPC UA; the calibration then finds the plant's time constant."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from asyncua import Client, ua

from circman5.cli import main
from circman5.manufacturing.digital_twin.simulation.calibration import load_active_calibration
from circman5.service.demo_config import DemoPorts, demo_settings_toml
from simulators.external import Mosquitto, free_port, http_status, wait_until

SPEED = 20.0
PLANT_TAU_S = 30.0  # simulated seconds (simulators/plant.py)
TARGETS = (25.0, 20.0, 24.0, 19.5, 23.0, 26.0, 21.0)
HOLD_S = 5.0  # wall seconds per setpoint: more than three time constants at 20x


async def _step_targets(url: str) -> None:
    async with Client(url, timeout=10) as client:
        idx = await client.get_namespace_index("urn:circman5:sim:plc")
        target = client.get_node(f"ns={idx};s=Line1.Laminator.TargetTemperature")
        for value in TARGETS:
            await target.write_value(ua.Variant(value, ua.VariantType.Double))
            await asyncio.sleep(HOLD_S)


def test_calibrate_on_history_recorded_by_the_service(
    tmp_path: Path,
    isolated_data_dir: Path,
    mosquitto: Mosquitto,
    sim_process_factory,  # type: ignore[no-untyped-def]
    capsys: pytest.CaptureFixture[str],
) -> None:
    sim = sim_process_factory(extra_args=("--speed", str(SPEED)), broker=mosquitto)
    endpoints = sim.endpoints
    ports = DemoPorts(
        opcua_port=endpoints["opcua"]["port"],
        modbus_port=endpoints["modbus"]["tcp_port"],
        mqtt_port=mosquitto.port,
        api_port=free_port(),
        health_port=free_port(),
    )
    config = tmp_path / "edge.toml"
    config.write_text(f'data_dir = "{isolated_data_dir}"\n' + demo_settings_toml(ports))
    log_path = tmp_path / "service.log"
    with log_path.open("w") as log:
        service = subprocess.Popen(
            [sys.executable, "-m", "circman5", "run", "--config", str(config)],
            env=dict(os.environ),
            stderr=log,
        )
    try:
        ready = f"http://127.0.0.1:{ports.health_port}/ready"
        wait_until(lambda: http_status(ready) == 200, 30, "/ready to turn true")
        asyncio.run(_step_targets(sim.opcua_url))
    finally:
        service.send_signal(signal.SIGTERM)
        exit_code = service.wait(30)
    assert exit_code == 0, log_path.read_text()[-3000:]

    code = main(["calibrate", "--config", str(config), "--source", "embedded", "--step", "0.2"])
    output = capsys.readouterr().out
    assert code == 0, output
    calibration = load_active_calibration(isolated_data_dir)
    assert calibration is not None and calibration.source == "embedded"
    fit = calibration.fit("production_line.temperature")
    assert fit is not None and fit.accepted, output
    # the plant's 30 s (simulated) at 20x: 1.5 s of wall time; the hall coupling adds a little
    assert fit.time_constant_s is not None
    assert 0.6 * PLANT_TAU_S / SPEED < fit.time_constant_s < 1.6 * PLANT_TAU_S / SPEED, output
