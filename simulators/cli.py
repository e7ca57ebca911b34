"""``circman5-sim`` / ``python -m simulators``: run the plant, the OPC UA PLC, the Modbus devices
and the MQTT MES until SIGINT/SIGTERM.

On start it writes one JSON line to stdout, ``{"event": "ready", "endpoints": {...}}`` (the
same data as :meth:`simulators.bench.SimulatorBench.endpoints`), and a readable table to
stderr; on stop ``{"event": "stopped"}``. Exit code 0 after a clean stop, 2 for bad arguments,
1 when a server cannot start (port taken, broker unreachable).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import signal
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from simulators.config import (
    BenchConfig,
    ModbusConfig,
    MqttConfig,
    OpcUaConfig,
    SparkplugConfig,
    security_policy_name,
)
from simulators.faults import MALFORMED_KINDS, Faults
from simulators.plant import PlantConfig, Setpoints, validate_setpoints
from simulators.tags import TAGS

log = logging.getLogger("simulators")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="circman5-sim",
        description="CIRCMAN5.0 device simulators: OPC UA PLC, Modbus devices, MQTT MES "
        "driven by one PV-module line model.",
    )
    g = p.add_argument_group("servers")
    g.add_argument("--host", default="127.0.0.1", help="address OPC UA and Modbus listen on")
    g.add_argument("--opcua-port", type=int, default=4840, help="0 = a free port")
    g.add_argument("--modbus-port", type=int, default=5020, help="Modbus TCP; 0 = a free port")
    g.add_argument(
        "--modbus-rtu-port", type=int, default=5021, help="Modbus RTU framing over TCP; 0 = free"
    )
    g.add_argument("--no-opcua", action="store_true")
    g.add_argument("--no-modbus", action="store_true")
    g.add_argument("--no-rtu", action="store_true", help="no RTU-over-TCP listener")
    g.add_argument("--no-mqtt", action="store_true", help="do not run the MES")
    g.add_argument("--mqtt-host", default="127.0.0.1")
    g.add_argument("--mqtt-port", type=int, default=1883)
    g.add_argument("--mqtt-client-id", default="circman5-sim-mes")
    g.add_argument("--mqtt-username")
    g.add_argument("--mqtt-password")
    g.add_argument(
        "--sparkplug",
        action="store_true",
        help="also publish the plant as a Sparkplug B edge node (broker: --mqtt-host/--mqtt-port)",
    )
    g.add_argument("--sparkplug-group", default="Plant1", help="Sparkplug group id")
    g.add_argument("--sparkplug-node", default="sim-line1", help="Sparkplug edge node id")
    g.add_argument("--line", default="line1", help="line id in the MES topics")
    g.add_argument(
        "--wait-broker",
        type=float,
        default=10.0,
        metavar="SECONDS",
        help="fail if the broker is not reachable within this time (0: do not wait)",
    )
    g.add_argument("--workdir", type=Path, help="certificates etc. (default: a temp dir)")

    g = p.add_argument_group("OPC UA")
    g.add_argument(
        "--security",
        default="none,sign,encrypt",
        help="comma list of endpoints: none, sign (Basic256Sha256 Sign), "
        "encrypt (Basic256Sha256 SignAndEncrypt)",
    )
    g.add_argument(
        "--user",
        action="append",
        metavar="NAME:PASSWORD",
        help="an OPC UA user (repeatable; default operator:circman5)",
    )
    g.add_argument("--no-anonymous", action="store_true", help="refuse anonymous sessions")
    g.add_argument(
        "--anonymous-read-only", action="store_true", help="anonymous may not write or call"
    )
    g.add_argument(
        "--opcua-trust",
        action="append",
        default=[],
        type=Path,
        metavar="CERT",
        help="trust this client certificate (DER/PEM; repeatable); others land in "
        "<workdir>/opcua/pki/rejected until moved to pki/trusted",
    )
    g.add_argument(
        "--opcua-trust-all", action="store_true", help="accept any client certificate (lab)"
    )
    g.add_argument("--opcua-rate", type=float, default=10.0, help="value updates per second")

    g = p.add_argument_group("plant")
    g.add_argument("--speed", type=float, default=1.0, help="simulated seconds per second")
    g.add_argument("--seed", type=int, default=0)
    g.add_argument("--batch-size", type=int, default=50, help="modules per batch")
    g.add_argument("--target-temperature", type=float, default=22.5)
    g.add_argument("--cycle-time", type=float, default=30.0)
    g.add_argument("--stopped", action="store_true", help="start with the line stopped")
    g.add_argument(
        "--inventory-interval", type=float, default=5.0, help="seconds between MES inventory"
    )

    g = p.add_argument_group("scale (load tests)")
    g.add_argument("--opcua-synthetic", type=int, default=0, metavar="N")
    g.add_argument("--opcua-synthetic-rate", type=float, default=1.0, metavar="HZ")
    g.add_argument("--mqtt-synthetic", type=int, default=0, metavar="N")
    g.add_argument("--mqtt-synthetic-rate", type=float, default=100.0, metavar="MSGS_PER_S")
    g.add_argument("--modbus-synthetic", type=int, default=0, metavar="N")
    g.add_argument("--modbus-synthetic-rate", type=float, default=1.0, metavar="HZ")

    g = p.add_argument_group("faults")
    g.add_argument(
        "--freeze", nargs="?", const="all", metavar="SERVERS", help="freeze values (all or list)"
    )
    g.add_argument("--stuck", action="append", default=[], metavar="PATH=VALUE")
    g.add_argument("--spike", action="append", default=[], metavar="PATH[=VALUE]")
    g.add_argument("--bad-quality", action="append", default=[], metavar="PATH[=bad|uncertain]")
    g.add_argument("--delay", metavar="SECONDS[:SERVERS]", help="answer requests late")
    g.add_argument("--modbus-exception", action="append", default=[], metavar="UNIT[=CODE]")
    g.add_argument("--mqtt-malformed", choices=MALFORMED_KINDS)
    g.add_argument(
        "--outage",
        action="append",
        default=[],
        metavar="SERVER:AFTER:DURATION",
        help="stop a server AFTER seconds from start for DURATION seconds (opcua, modbus, mqtt)",
    )
    g.add_argument(
        "--control-topic",
        metavar="TOPIC",
        help="accept JSON control commands on this MQTT topic (acks on TOPIC/ack)",
    )

    g = p.add_argument_group("output")
    g.add_argument("--quiet", action="store_true", help="no table on stderr")
    g.add_argument("--log-level", default="WARNING")
    return p


def _users(values: list[str] | None) -> dict[str, str]:
    if not values:
        return {"operator": "circman5"}
    users = {}
    for value in values:
        name, sep, password = value.partition(":")
        if not sep or not name:
            raise ValueError(f"--user wants NAME:PASSWORD, got {value!r}")
        users[name] = password
    return users


def _check_path(path: str) -> str:
    if path not in TAGS:
        raise ValueError(f"unknown tag {path!r}; known: {', '.join(TAGS)}")
    return path


def config_from_args(args: argparse.Namespace) -> BenchConfig:
    security = tuple(security_policy_name(s) for s in args.security.split(",") if s.strip())
    plant = PlantConfig(
        seed=args.seed,
        speed=args.speed,
        batch_size=args.batch_size,
        setpoints=Setpoints(args.target_temperature, args.cycle_time, not args.stopped),
    )
    opcua = (
        None
        if args.no_opcua
        else OpcUaConfig(
            host=args.host,
            port=args.opcua_port,
            security=security,
            users=_users(args.user),
            allow_anonymous=not args.no_anonymous,
            anonymous_write=not args.anonymous_read_only,
            rate_hz=args.opcua_rate,
            trust_all=args.opcua_trust_all,
            trusted_clients=tuple(args.opcua_trust),
            synthetic_tags=args.opcua_synthetic,
            synthetic_rate_hz=args.opcua_synthetic_rate,
        )
    )
    modbus = (
        None
        if args.no_modbus
        else ModbusConfig(
            host=args.host,
            tcp_port=args.modbus_port,
            rtu_port=args.modbus_rtu_port,
            rtu_enabled=not args.no_rtu,
            synthetic_registers=args.modbus_synthetic,
            synthetic_rate_hz=args.modbus_synthetic_rate,
        )
    )
    mqtt = (
        None
        if args.no_mqtt
        else MqttConfig(
            host=args.mqtt_host,
            port=args.mqtt_port,
            client_id=args.mqtt_client_id,
            username=args.mqtt_username,
            password=args.mqtt_password,
            line=args.line,
            inventory_interval=args.inventory_interval,
            synthetic_topics=args.mqtt_synthetic,
            synthetic_rate=args.mqtt_synthetic_rate,
            control_topic=args.control_topic,
        )
    )
    sparkplug = (
        SparkplugConfig(
            host=args.mqtt_host,
            port=args.mqtt_port,
            group_id=args.sparkplug_group,
            edge_node_id=args.sparkplug_node,
            username=args.mqtt_username,
            password=args.mqtt_password,
        )
        if args.sparkplug
        else None
    )
    return BenchConfig(
        workdir=args.workdir,
        plant=plant,
        opcua=opcua,
        modbus=modbus,
        mqtt=mqtt,
        sparkplug=sparkplug,
        broker_timeout=args.wait_broker,
    )


def faults_from_args(args: argparse.Namespace) -> Faults:
    faults = Faults()
    if args.freeze:
        faults.freeze(args.freeze)
    for item in args.stuck:
        path, sep, value = item.partition("=")
        if not sep:
            raise ValueError(f"--stuck wants PATH=VALUE, got {item!r}")
        faults.stuck_at(_check_path(path), value)
    for item in args.spike:
        path, sep, value = item.partition("=")
        faults.spike(_check_path(path), value if sep else None)
    for item in args.bad_quality:
        path, sep, quality = item.partition("=")
        faults.bad_quality(_check_path(path), (quality or "bad") if sep else "bad")
    if args.delay:
        seconds, _, servers = args.delay.partition(":")
        faults.set_delay(float(seconds), servers or None)
    for item in args.modbus_exception:
        unit, sep, code = item.partition("=")
        faults.modbus_exception(int(unit), code if sep else 6)
    if args.mqtt_malformed:
        faults.mqtt_malformed(args.mqtt_malformed)
    return faults


def _outages(args: argparse.Namespace) -> list[tuple[str, float, float]]:
    out = []
    for item in args.outage:
        parts = item.split(":")
        if len(parts) != 3:
            raise ValueError(f"--outage wants SERVER:AFTER:DURATION, got {item!r}")
        out.append((parts[0], float(parts[1]), float(parts[2])))
    return out


def _emit(event: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(event) + "\n")
    sys.stdout.flush()


def _print_table(endpoints: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title="CIRCMAN5.0 simulators", show_lines=False)
    table.add_column("server")
    table.add_column("endpoint")
    table.add_column("details")
    opcua = endpoints.get("opcua")
    if opcua:
        table.add_row(
            "OPC UA PLC",
            opcua["url"],
            f"ns {opcua['namespace']} (index {opcua['namespace_index']}); "
            f"security {', '.join(opcua['security'])}; users {', '.join(opcua['users'])}",
        )
    modbus = endpoints.get("modbus")
    if modbus:
        table.add_row(
            "Modbus TCP",
            f"{modbus['host']}:{modbus['tcp_port']}",
            "units " + ", ".join(f"{k}={v}" for k, v in modbus["units"].items()),
        )
        if modbus.get("rtu_over_tcp_port"):
            table.add_row(
                "Modbus RTU/TCP", f"{modbus['host']}:{modbus['rtu_over_tcp_port']}", "same units"
            )
    mqtt = endpoints.get("mqtt")
    if mqtt:
        table.add_row(
            "MQTT MES", f"mqtt://{mqtt['host']}:{mqtt['port']}", f"topics {mqtt['prefix']}/#"
        )
    spb = endpoints.get("sparkplug")
    if spb:
        table.add_row(
            "Sparkplug B node",
            f"mqtt://{spb['host']}:{spb['port']}",
            f"spBv1.0/{spb['group_id']}/+/{spb['edge_node_id']}/#",
        )
    table.add_row("plant", f"speed x{endpoints['speed']:g}", f"seed {endpoints['seed']}")
    Console(stderr=True).print(table)


async def run(
    config: BenchConfig,
    faults: Faults,
    outages: Sequence[tuple[str, float, float]],
    quiet: bool = False,
) -> int:
    from simulators.bench import SimulatorBench  # the protocol libraries load only now

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    bench = SimulatorBench(config, faults=faults)
    try:
        await bench.start()
    except TimeoutError:
        broker = config.mqtt or config.sparkplug
        where = f"{broker.host}:{broker.port}" if broker else "?"
        sys.stderr.write(f"circman5-sim: MQTT broker at {where} not reachable\n")
        return 1
    except OSError as err:
        sys.stderr.write(f"circman5-sim: cannot start: {err}\n")
        return 1
    try:
        for server, after, duration in outages:
            bench.schedule_outage(server, after, duration)
        endpoints = bench.endpoints()
        _emit({"event": "ready", "endpoints": endpoints})
        if not quiet:
            _print_table(endpoints)
        await stop.wait()
    finally:
        await bench.stop()
        _emit({"event": "stopped"})
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    root_level = logging.getLogger().level
    if root_level >= logging.WARNING:
        # asyncua logs refused client requests (wrong password, bad writes) as errors: they are
        # the bench working as intended, not problems of the simulator
        for noisy in ("asyncua", "pymodbus"):
            logging.getLogger(noisy).setLevel(logging.CRITICAL)
    try:
        config = config_from_args(args)
        faults = faults_from_args(args)
        outages = _outages(args)
        for server, _, _ in outages:
            if server not in ("opcua", "modbus", "mqtt"):
                raise ValueError(f"--outage: unknown server {server!r}")
        if config.plant.batch_size < 1:
            raise ValueError("--batch-size must be at least 1")
        if config.plant.speed <= 0:
            raise ValueError("--speed must be positive")
        validate_setpoints(config.plant.setpoints)
    except ValueError as err:
        parser.error(str(err))
    try:
        return asyncio.run(run(config, faults, outages, args.quiet))
    except KeyboardInterrupt:
        return 0
