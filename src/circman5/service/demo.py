"""``circman5 demo``: the twin on its embedded defaults, live in the terminal.

A simulated line (the bench's plant model, sped up so something happens) feeds the twin at
``rate`` updates per second; every update runs the threshold and forecast checks, and the view
shows the state, the active alarms and the latest events. The target temperature is stepped
above the alarm limit now and then, so the alarm and its recovery are visible. Ctrl-C stops it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any

from rich.console import Console
from rich.live import Live

from circman5.logging_setup import configure_logging
from circman5.manufacturing.digital_twin.core.twin_core import DigitalTwin
from circman5.manufacturing.digital_twin.event_notification.event_manager import event_manager
from circman5.paths import data_dir
from circman5.service.live_view import EventTape, render
from simulators.plant import Plant, PlantConfig

logger = logging.getLogger(__name__)

# (seconds into each cycle, target temperature): a normal run, an excursion, recovery
TARGET_PROFILE = ((0.0, 22.5), (8.0, 29.0), (25.0, 22.5))
CYCLE_S = 40.0


def _target_at(elapsed: float) -> float:
    t = elapsed % CYCLE_S
    target = TARGET_PROFILE[0][1]
    for start, value in TARGET_PROFILE:
        if t >= start:
            target = value
    return target


def run_demo(
    duration: float | None = None,
    rate: float = 10.0,
    plain: bool = False,
    log_level: str | None = None,
) -> int:
    configure_logging(log_level or "WARNING")
    return asyncio.run(_demo(duration, rate, plain))


async def _demo(duration: float | None, rate: float, plain: bool) -> int:
    console = Console(soft_wrap=True)
    twin = DigitalTwin()
    if not twin.initialize():
        console.print("[red]the twin did not initialize; see the log[/]")
        return 1
    tape = EventTape()
    event_manager.subscribe(tape)
    plant = Plant(PlantConfig(seed=7))
    plant.set_setpoints(running=True)
    plant.start_batch()
    started = time.monotonic()
    period = 1.0 / rate
    updates = 0

    def figures() -> dict[str, Any]:
        elapsed = time.monotonic() - started
        return {
            "updates": updates,
            "updates/s": updates / elapsed if elapsed > 0 else 0.0,
            "target temperature": plant.setpoints.target_temperature,
            "events": sum(tape.counts.values()),
            "data dir": str(data_dir()),
        }

    footer = "Ctrl-C to stop" if duration is None else f"stops after {duration:.0f} s"
    live = None if plain or not console.is_terminal else Live(console=console, auto_refresh=False)
    next_print = 0.0
    shown: set[str] = set()
    try:
        with live if live is not None else contextlib.nullcontext():
            while duration is None or time.monotonic() - started < duration:
                elapsed = time.monotonic() - started
                target = _target_at(elapsed)
                if target != plant.setpoints.target_temperature:
                    plant.set_setpoints(target_temperature=target)
                plant.step(period * 5.0)  # the line runs 5x faster than the wall clock
                state = plant.state()
                state.pop("timestamp", None)
                state["production_line"]["target_temperature"] = plant.setpoints.target_temperature
                twin.update(state)
                updates += 1
                if live is not None:
                    live.update(
                        render(twin.get_current_state(), twin.active_alarms, tape, figures, footer),
                        refresh=True,
                    )
                elif elapsed >= next_print:
                    next_print = elapsed + 1.0
                    line = twin.get_current_state()["production_line"]
                    console.print(
                        f"t={elapsed:5.1f}s temperature={line['temperature']:.2f} "
                        f"rate={line['production_rate']:.2f} "
                        f"energy={line['energy_consumption']:.1f} "
                        f"alarms={sorted(twin.active_alarms) or '-'}"
                    )
                    for event in tape.recent():
                        if event.event_id not in shown:
                            shown.add(event.event_id)
                            console.print(f"  {event.severity.value}: {event.message}")
                await asyncio.sleep(period)
    except (KeyboardInterrupt, asyncio.CancelledError):
        pass
    finally:
        event_manager.unsubscribe(tape)
        event_manager.flush()
    console.print(f"demo stopped after {updates} updates; events in {data_dir()}")
    return 0
