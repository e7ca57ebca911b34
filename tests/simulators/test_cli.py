"""``circman5-sim`` / ``python -m simulators`` as a real child process."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

from asyncua.client.client import Client
from pymodbus.client import AsyncModbusTcpClient

from simulators.external import Mosquitto, port_open, wait_until
from simulators.modbus_devices import UNIT_LINE
from simulators.opcua_plc import NAMESPACE_URI
from tests.fixtures.simulators import ProcessFactory
from tests.simulators.helpers import Subscriber

TEMPERATURE = "Line1.Laminator.Temperature"


def _events(log: Path) -> list[dict[str, object]]:
    return [
        json.loads(line) for line in log.read_text().splitlines() if line.startswith('{"event"')
    ]


async def test_cli_prints_endpoints_serves_and_stops_on_sigterm(
    mosquitto: Mosquitto, sim_process_factory: ProcessFactory
) -> None:
    async with Subscriber(mosquitto.port, "mes/line1/status") as sub:
        sim = sim_process_factory(broker=mosquitto)
        endpoints = sim.endpoints
        opcua, modbus, mqtt = endpoints["opcua"], endpoints["modbus"], endpoints["mqtt"]
        assert opcua["port"] == sim.port and opcua["url"] == sim.opcua_url
        assert opcua["namespace"] == NAMESPACE_URI
        assert modbus["tcp_port"] == sim.modbus_port and modbus["rtu_over_tcp_port"] == sim.rtu_port
        assert mqtt["port"] == mosquitto.port and mqtt["prefix"] == "mes/line1"

        async with Client(sim.opcua_url, timeout=5) as client:
            idx = await client.get_namespace_index(NAMESPACE_URI)
            value = await client.get_node(f"ns={idx};s={TEMPERATURE}").read_value()
            assert 15.0 < value < 30.0
        modbus_client = AsyncModbusTcpClient("127.0.0.1", port=sim.modbus_port, timeout=3)
        assert await modbus_client.connect()
        response = await modbus_client.read_holding_registers(0, count=2, device_id=UNIT_LINE)
        modbus_client.close()
        assert (
            modbus_client.convert_from_registers(response.registers, modbus_client.DATATYPE.FLOAT32)
            == 22.5
        )
        await sub.wait_for("the MES online", 1)

        assert sim.process is not None
        process = sim.process
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=15) == 0
        await sub.wait_for("the MES offline", 2)
    assert [m["state"] for m in sub.json("mes/line1/status")] == ["online", "offline"]
    assert [e["event"] for e in _events(sim.log_path)] == ["ready", "stopped"]
    wait_until(lambda: not port_open(sim.port), 5, "the OPC UA port to close")
    assert not port_open(sim.modbus_port)


async def test_cli_fault_flags_and_kill_restart_on_the_same_ports(
    mosquitto: Mosquitto, sim_process_factory: ProcessFactory
) -> None:
    sim = sim_process_factory(
        ["--stuck", "production_line.temperature=33.5", "--modbus-exception", "1=DEVICE_BUSY"],
        broker=mosquitto,
    )
    ports = (sim.port, sim.modbus_port, sim.rtu_port)

    async def check() -> None:
        async with Client(sim.opcua_url, timeout=5) as client:
            idx = await client.get_namespace_index(NAMESPACE_URI)
            assert await client.get_node(f"ns={idx};s={TEMPERATURE}").read_value() == 33.5
        mb = AsyncModbusTcpClient("127.0.0.1", port=sim.modbus_port, timeout=3, retries=0)
        assert await mb.connect()
        busy = await mb.read_input_registers(0, count=2, device_id=1)
        mb.close()
        assert busy.isError() and busy.exception_code == 6

    await check()
    async with Subscriber(mosquitto.port, "mes/line1/status") as sub:
        await sub.wait_for("online", 1)
        sim.kill()  # SIGKILL: the broker publishes the MES's last will
        await sub.wait_for("the last will", 2)
        assert sub.json("mes/line1/status")[-1]["state"] == "offline"
        sim.start()
        await sub.wait_for("online after the restart", 3)
    assert (sim.port, sim.modbus_port, sim.rtu_port) == ports
    assert sim.endpoints["opcua"]["port"] == ports[0]
    await check()


def test_bad_arguments_exit_with_2() -> None:
    bad = (["--speed", "-1"], ["--stuck", "no.such.tag=1"], ["--security", "tls"])
    runs = [
        subprocess.Popen(
            [sys.executable, "-m", "simulators", "--no-mqtt", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for args in bad
    ]
    for args, run in zip(bad, runs, strict=True):
        _, err = run.communicate(timeout=30)
        assert run.returncode == 2, (args, err)
        assert "error" in err


def test_console_script_is_installed() -> None:
    script = Path(sys.executable).parent / "circman5-sim"
    assert script.exists(), "reinstall the project: pip install -e ."
    result = subprocess.run([str(script), "--help"], capture_output=True, text=True, timeout=30)
    assert result.returncode == 0
    assert "--opcua-port" in result.stdout and "--mqtt-malformed" in result.stdout
