"""``circman5 demo``: the whole edge service against the bundled simulators, live in the terminal.

It starts an MQTT broker (mosquitto when installed, else the embedded amqtt broker), the device
simulators in-process (OPC UA PLC, Modbus meters, MQTT MES, all driven by one plant model) and
the edge service on embedded defaults (the demo tag map of ``config/demo.toml``, the embedded
time-series store, events and state back out over MQTT, the web HMI). Now and then the demo
pushes the plant's target temperature above its alarm limit, so the forecast warning, the alarm
and its recovery can be watched. Ctrl-C stops everything cleanly.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import signal
import time
from typing import Any

from rich.console import Console
from rich.live import Live

from circman5.adapters.services.constants_service import ConstantsService
from circman5.logging_setup import configure_logging
from circman5.manufacturing.digital_twin.event_notification.event_manager import event_manager
from circman5.paths import data_dir, data_path
from circman5.service.app import EdgeService, RunningService
from circman5.service.broker import demo_broker
from circman5.service.demo_config import DemoPorts, demo_settings_toml
from circman5.service.live_view import EventTape, render
from circman5.settings import load_settings
from simulators.external import free_port, port_open

logger = logging.getLogger(__name__)

# (seconds into each cycle, plant target temperature): normal, an upset above 27 °C, recovery
UPSET_PROFILE = ((0.0, 22.5), (30.0, 29.0), (50.0, 22.5))
CYCLE_S = 80.0
DEMO_USER = "admin"


def target_at(elapsed: float) -> float:
    t = elapsed % CYCLE_S
    target = UPSET_PROFILE[0][1]
    for start, value in UPSET_PROFILE:
        if t >= start:
            target = value
    return target


def _port(preferred: int) -> int:
    return preferred if not port_open(preferred) else free_port()


def ensure_demo_user() -> str | None:
    """Create the demo's admin user on first run; returns its new password (else None)."""
    from circman5.api.users import UserStore

    store = UserStore()
    if store.count():
        return None
    password = secrets.token_urlsafe(9)
    store.add(DEMO_USER, password, "admin")
    data_path("demo", "admin-password.txt").write_text(password + "\n")
    return password


def run_demo(
    duration: float | None = None,
    rate: float = 10.0,
    plain: bool = False,
    log_level: str | None = None,
) -> int:
    configure_logging(log_level or "WARNING")
    return asyncio.run(_demo(duration, rate, plain))


async def _demo(duration: float | None, refresh_hz: float, plain: bool) -> int:
    from simulators.bench import SimulatorBench
    from simulators.config import BenchConfig, MqttConfig
    from simulators.plant import PlantConfig

    console = Console(soft_wrap=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    workdir = data_path("demo", "run")
    workdir.mkdir(parents=True, exist_ok=True)
    console.print("starting the broker, the simulators and the edge service ...")
    async with demo_broker(workdir) as broker:
        bench_config = BenchConfig(
            workdir=workdir / "simulators",
            plant=PlantConfig(seed=7, speed=10.0, batch_size=20),
            mqtt=MqttConfig(port=broker.port),
        )
        async with SimulatorBench(bench_config) as bench:
            assert bench.opcua is not None and bench.modbus is not None
            ports = DemoPorts(
                opcua_port=bench.opcua.port,
                modbus_port=bench.modbus.tcp_port,
                mqtt_port=broker.port,
                api_port=_port(8080),
                health_port=_port(9108),
                mqtt_protocol=broker.protocol,
            )
            settings_file = data_path("demo", "edge.toml")
            settings_file.write_text(demo_settings_toml(ports))
            settings = load_settings(settings_file)
            service = EdgeService(settings, ConstantsService(settings.config_dir))
            runner = asyncio.create_task(service.run(), name="edge-service")
            await asyncio.wait(
                {runner, asyncio.create_task(service.ready.wait())},
                return_when=asyncio.FIRST_COMPLETED,
            )
            if runner.done():
                runner.result()  # raises what went wrong
            running = service.running
            assert running is not None
            password = ensure_demo_user()
            header = _header(running, broker.kind, password)
            console.print(header)
            try:
                await _show(running, bench, console, header, duration, refresh_hz, plain, stop)
            finally:
                service.stop()
                await asyncio.wait_for(runner, service.settings.shutdown_timeout_s)
    console.print(f"demo stopped; its files are in {data_dir()}")
    return 0


def _header(running: RunningService, broker: str, password: str | None) -> str:
    password_file = data_path("demo", "admin-password.txt")
    lines = [f"broker: {broker}"]
    if running.api_url:
        lines.append(f"web HMI: {running.api_url}  (user '{DEMO_USER}')")
        if password:
            lines.append(f"  first run: password '{password}' (also in {password_file})")
        else:
            lines.append(f"  password: see {password_file} or 'circman5 user passwd'")
    if running.health:
        lines.append(f"health/metrics: http://127.0.0.1:{running.health.port}/metrics")
    lines.append("Sparkplug B: the twin is edge node spBv1.0/demo/+/line1 on the broker")
    return "\n".join(lines)


async def _show(
    running: RunningService,
    bench: Any,
    console: Console,
    header: str,
    duration: float | None,
    refresh_hz: float,
    plain: bool,
    stop: asyncio.Event,
) -> None:
    tape = EventTape()
    event_manager.subscribe(tape)
    started = time.monotonic()
    previous: dict[str, int] = {}
    previous_t = started
    rates: dict[str, float] = {}
    shown: set[str] = set()
    next_print = 0.0

    def figures() -> dict[str, Any]:
        out: dict[str, Any] = {}
        for connector in running.connectors:
            status = connector.status
            state = "connected" if status.connected else "DOWN"
            out[f"{connector.name} ({status.protocol})"] = (
                f"{state}, {rates.get(connector.name, 0.0):.0f} samples/s"
            )
        for outbox in running.outboxes():
            out[f"outbox {outbox.name}"] = f"{outbox.depth_batches} batches waiting"
        if running.series is not None and running.series.store is not None:
            out["embedded store rows"] = running.series.store.rows
        if running.engine is not None:
            out["twin updates"] = running.engine.stats.updates
        out["plant target temperature"] = bench.plant.setpoints.target_temperature
        return out

    live = None if plain or not console.is_terminal else Live(console=console, auto_refresh=False)
    footer = "Ctrl-C to stop" if duration is None else f"stops after {duration:.0f} s"
    try:
        with live if live is not None else contextlib.nullcontext():
            while not stop.is_set() and (duration is None or time.monotonic() - started < duration):
                now = time.monotonic()
                elapsed = now - started
                target = target_at(elapsed)
                if target != bench.plant.setpoints.target_temperature:
                    bench.plant.set_setpoints(target_temperature=target)
                dt = now - previous_t
                if dt >= 1.0:
                    for connector in running.connectors:
                        count = connector.status.samples_in
                        rates[connector.name] = (count - previous.get(connector.name, 0)) / dt
                        previous[connector.name] = count
                    previous_t = now
                state = running.twin.get_current_state()
                if live is not None:
                    view = render(state, running.twin.active_alarms, tape, figures, footer)
                    live.update(view, refresh=True)
                elif elapsed >= next_print:
                    next_print = elapsed + 2.0
                    line = state.get("production_line", {})
                    console.print(
                        f"t={elapsed:5.1f}s temperature={line.get('temperature', 0):.2f} "
                        f"rate={line.get('production_rate', 0):.2f} "
                        f"energy={line.get('energy_consumption', 0):.1f} "
                        f"alarms={sorted(running.twin.active_alarms) or '-'} "
                        + " ".join(f"{k}: {v}" for k, v in figures().items() if "(" in k)
                    )
                    for event in tape.recent():
                        if event.event_id not in shown:
                            shown.add(event.event_id)
                            console.print(f"  {event.severity.value}: {event.message}")
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), 1.0 / refresh_hz)
    finally:
        event_manager.unsubscribe(tape)
    console.print(header)


__all__ = ["ensure_demo_user", "run_demo", "target_at"]
