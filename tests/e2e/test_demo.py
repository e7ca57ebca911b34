"""The README's main job: `circman5 demo` brings up broker, simulators and service, live."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def test_demo_runs_and_stops_cleanly(tmp_path: Path) -> None:
    env = dict(os.environ, CIRCMAN5_DATA_DIR=str(tmp_path / "data"))
    result = subprocess.run(
        [sys.executable, "-m", "circman5", "demo", "--duration", "12", "--plain"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    out = result.stdout
    assert result.returncode == 0, result.stderr[-3000:]
    assert "web HMI: http://127.0.0.1:" in out
    assert "plc (opcua): connected" in out
    assert "meters (modbus): connected" in out
    assert "mes (mqtt): connected" in out
    assert "demo stopped" in out
    # the first run created the HMI's admin user and told where its password is
    assert (tmp_path / "data" / "demo" / "admin-password.txt").read_text().strip()
    assert (tmp_path / "data" / "timeseries.sqlite3").exists()
