"""The simulator fixtures themselves: started, ready, and consistent with what they report."""

from __future__ import annotations

from simulators.bench import SimulatorBench
from simulators.external import port_open
from simulators.process import SimulatorProcess


async def test_sim_bench_is_ready_on_free_ports(sim_bench: SimulatorBench) -> None:
    endpoints = sim_bench.endpoints()
    assert endpoints["mqtt"] is None
    opcua, modbus = endpoints["opcua"], endpoints["modbus"]
    assert port_open(opcua["port"]) and opcua["url"].endswith(f":{opcua['port']}/circman5/plc")
    assert port_open(modbus["tcp_port"]) and port_open(modbus["rtu_over_tcp_port"])
    assert sim_bench.workdir.is_dir()
    assert sim_bench.opcua is not None and sim_bench.opcua.certificate is not None
    assert sim_bench.opcua.certificate.cert_der.is_relative_to(sim_bench.workdir)
    assert sim_bench.runner.running


def test_sim_process_reports_its_ports_and_stops(sim_process: SimulatorProcess) -> None:
    endpoints = sim_process.endpoints
    assert endpoints["opcua"]["port"] == sim_process.port
    assert endpoints["modbus"]["tcp_port"] == sim_process.modbus_port
    assert endpoints["mqtt"] is None
    assert port_open(sim_process.port) and port_open(sim_process.modbus_port)
    sim_process.stop()
    assert not sim_process.running
    assert not port_open(sim_process.modbus_port)
