"""The README's main job: `circman5 demo` brings up broker, simulators and service, live."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
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


def test_ctrl_c_stops_the_demo_in_reverse_start_order(tmp_path: Path) -> None:
    """Ctrl-C reaches the whole foreground process group, as a terminal sends it.

    The service must stop before the simulators and the broker it depends on, so the demo ends
    without a single disconnect warning.
    """
    env = dict(os.environ, CIRCMAN5_DATA_DIR=str(tmp_path / "data"), PYTHONUNBUFFERED="1")
    demo = subprocess.Popen(
        [sys.executable, "-m", "circman5", "demo", "--plain"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # its own process group, like a job in a terminal
    )
    seen: list[str] = []
    try:
        assert demo.stdout is not None
        deadline = time.monotonic() + 90
        for line in demo.stdout:
            seen.append(line)
            if "mes (mqtt): connected" in line or time.monotonic() > deadline:
                break
        assert any("mes (mqtt): connected" in line for line in seen), "".join(seen)[-3000:]
        os.killpg(demo.pid, signal.SIGINT)
        rest, _ = demo.communicate(timeout=60)
    finally:
        if demo.poll() is None:
            os.killpg(demo.pid, signal.SIGKILL)
            demo.wait()
    output = "".join(seen) + rest
    assert demo.returncode == 0, output[-3000:]
    assert "demo stopped" in output
    noisy = [
        line
        for line in output.splitlines()
        if "WARNING" in line or "ERROR" in line or "Traceback" in line
    ]
    assert noisy == [], "\n".join(noisy)
