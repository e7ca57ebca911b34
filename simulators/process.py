"""The simulators as a child process (``python -m simulators``), for restart and kill tests.

Built on :class:`simulators.external.ServerProcess`: free ports, a work directory, start / stop
(SIGTERM) / kill (SIGKILL) / restart on the same ports. Readiness is the ``{"event": "ready"}``
line the command prints; :attr:`SimulatorProcess.endpoints` is its data.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, Self

from simulators.external import ServerProcess, free_port

READY_PREFIX = '{"event": "ready"'


class SimulatorProcess(ServerProcess):
    """``circman5-sim`` on fixed free ports. ``port`` is the OPC UA port.

    Without ``mqtt_port`` the MES is left out (``--no-mqtt``). ``extra_args`` go to the
    command line as they are (``["--speed", "60", "--freeze"]``).
    """

    name = "circman5-sim"

    def __init__(
        self,
        workdir: Path,
        *,
        mqtt_port: int | None = None,
        mqtt_host: str = "127.0.0.1",
        extra_args: tuple[str, ...] | list[str] = (),
        opcua_port: int | None = None,
        modbus_port: int | None = None,
        rtu_port: int | None = None,
        ready_timeout: float = 30.0,
    ) -> None:
        super().__init__(workdir, opcua_port, ready_timeout)
        self.modbus_port = modbus_port or free_port()
        self.rtu_port = rtu_port or free_port()
        self.mqtt_port = mqtt_port
        self.mqtt_host = mqtt_host
        self.extra_args = list(extra_args)
        self._ready_before = 0

    def command(self) -> list[str]:
        cmd = [
            sys.executable,
            "-m",
            "simulators",
            "--opcua-port",
            str(self.port),
            "--modbus-port",
            str(self.modbus_port),
            "--modbus-rtu-port",
            str(self.rtu_port),
            "--workdir",
            str(self.workdir / "sim"),
            "--quiet",
        ]
        if self.mqtt_port is None:
            cmd.append("--no-mqtt")
        else:
            cmd += ["--mqtt-host", self.mqtt_host, "--mqtt-port", str(self.mqtt_port)]
        return cmd + self.extra_args

    def _ready_events(self) -> list[dict[str, Any]]:
        if not self.log_path.exists():
            return []
        events = []
        for line in self.log_path.read_text(errors="replace").splitlines():
            if line.startswith(READY_PREFIX):
                try:
                    events.append(json.loads(line))
                except ValueError:
                    continue
        return events

    def start(self) -> Self:
        self._ready_before = len(self._ready_events())
        return super().start()

    def is_ready(self) -> bool:
        return len(self._ready_events()) > self._ready_before

    @property
    def endpoints(self) -> dict[str, Any]:
        """The endpoints of the last start (the ``ready`` line's data)."""
        events = self._ready_events()
        if not events:
            raise RuntimeError(f"{self.name} has not reported ready; log:\n{self.log_tail()}")
        endpoints: dict[str, Any] = events[-1]["endpoints"]
        return endpoints

    @property
    def opcua_url(self) -> str:
        return f"opc.tcp://127.0.0.1:{self.port}/circman5/plc"
