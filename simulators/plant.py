"""The plant model: one PV-module line (laminator, material stores, hall climate, energy meter).

The model is a plain object advanced in fixed time steps (:meth:`Plant.step`,
:meth:`Plant.advance`); :class:`PlantRunner` advances it in real time, ``speed`` times faster
than the wall clock. Given the same seed, speed and sequence of calls it produces the same
values. One instance is shared by the OPC UA, Modbus and MQTT servers, so all of them report
the same plant.

Model summary (units in :mod:`simulators.tags`):

* ``production_line.temperature`` regulates toward the target setpoint (first order, time
  constant 30 s while running, 120 s while idle) with a little hall-temperature coupling and
  noise.
* ``production_line.production_rate`` = 4 modules per laminator cycle * 60 / cycle time
  (8 modules/min at the default 30 s), zero when stopped or out of material.
* ``production_line.efficiency`` and ``production_line.defect_rate`` worsen with the square of
  the distance of the temperature from the optimum (22.5 °C, the default target), with short
  cycle times (< 30 s) and with poor material quality; humidity above 60 % adds defects.
* ``production_line.energy_consumption`` (kW) = 35 kW base + 60 kW + 3.5 kW per module/min
  while running + 4 kW per kelvin between the target and the hall temperature.
* Each module consumes material (0.5 kg silicon wafer, 0.2 kg solar glass, the spec's rates);
  scrap (3 %) and failed modules are waste, part of the waste is recycled. A store below its
  reorder level gets a delivery after a lead time; the lot quality mixes into the stock.
* The hall climate follows a daily cycle with slow random drift.
* Modules are grouped in batches (``batch_size`` modules, ids ``L1-00001``, ...); a batch can
  also be started and ended explicitly.

Timestamps (``updated_at``, batch start/end times, events) come from the wall clock; ``speed``
compresses the process dynamics, not the calendar.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

import numpy as np

from simulators.lifecycle import Lifecycle
from simulators.tags import Value

log = logging.getLogger(__name__)

SETPOINT_LIMITS: dict[str, tuple[float, float]] = {
    "target_temperature": (15.0, 35.0),
    "cycle_time": (20.0, 60.0),
}
"""Accepted setpoint ranges; writes outside are refused (ValueError, Modbus ILLEGAL_VALUE,
OPC UA BadOutOfRange)."""

TEMPERATURE_ALARM = (18.0, 27.0)
HUMIDITY_ALARM = (30.0, 70.0)
DEFECT_RATE_ALARM = 0.1
DEFECT_TYPES = ("microcrack", "delamination", "bubble", "soldering")
MAX_BATCH_ID_LENGTH = 64


def validate_setpoints(setpoints: Setpoints) -> None:
    """ValueError naming the setpoint if one is not a finite number inside its range."""
    for name, (low, high) in SETPOINT_LIMITS.items():
        value = getattr(setpoints, name)
        if isinstance(value, bool) or not (isinstance(value, int | float) and math.isfinite(value)):
            raise ValueError(f"{name} must be a finite number, got {value!r}")
        if not low <= value <= high:
            raise ValueError(f"{name} {value} outside {low}..{high}")


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class Setpoints:
    """Operator setpoints of the line."""

    target_temperature: float = 22.5
    cycle_time: float = 30.0
    running: bool = True


@dataclass(frozen=True, slots=True)
class MaterialConfig:
    """A material store: consumption per module, stock, reorder policy and waste handling."""

    name: str
    per_module_kg: float
    initial_kg: float
    initial_quality: float
    reorder_level_kg: float
    delivery_kg: float
    lead_time_s: float = 120.0
    scrap_fraction: float = 0.03
    recycle_fraction: float = 0.7


DEFAULT_MATERIALS: tuple[MaterialConfig, ...] = (
    MaterialConfig("silicon_wafer", 0.5, 850.0, 0.95, 150.0, 700.0, recycle_fraction=0.6),
    MaterialConfig("solar_glass", 0.2, 420.0, 0.98, 80.0, 350.0, recycle_fraction=0.9),
)


@dataclass(frozen=True, slots=True)
class PlantConfig:
    """Model parameters. ``step_seconds`` defaults to ``0.1 * max(1, speed / 10)``."""

    seed: int = 0
    speed: float = 1.0
    step_seconds: float | None = None
    batch_size: int = 50
    batch_prefix: str = "L1"
    auto_batches: bool = True
    modules_per_cycle: int = 4
    optimal_temperature: float = 22.5
    time_of_day_h: float = 10.0
    """Hour of the day the hall climate's daily cycle starts at (keeps runs reproducible)."""
    setpoints: Setpoints = field(default_factory=Setpoints)
    materials: tuple[MaterialConfig, ...] = DEFAULT_MATERIALS

    @property
    def step(self) -> float:
        if self.step_seconds is not None:
            return self.step_seconds
        return 0.1 * max(1.0, self.speed / 10.0)


@dataclass(frozen=True, slots=True)
class MaterialUsage:
    """Material used by a batch, in kg."""

    consumption: float = 0.0
    waste: float = 0.0
    recycled: float = 0.0


@dataclass(frozen=True, slots=True)
class BatchRecord:
    """A batch as the MES sees it (an immutable copy; ``end_time`` is None while open)."""

    batch_id: str
    start_time: datetime
    end_time: datetime | None
    size: int
    modules_produced: int
    modules_passed: int
    modules_failed: int
    energy_kwh: float
    materials: Mapping[str, MaterialUsage]


@dataclass(frozen=True, slots=True)
class BatchStarted:
    batch: BatchRecord


@dataclass(frozen=True, slots=True)
class BatchEnded:
    batch: BatchRecord


@dataclass(frozen=True, slots=True)
class ModuleInspected:
    """End-of-line inspection of one module."""

    batch_id: str
    module_id: str
    passed: bool
    defect: str | None
    power_w: float
    time: datetime


@dataclass(frozen=True, slots=True)
class MaterialDelivered:
    material: str
    quantity_kg: float
    quality: float
    time: datetime


@dataclass(frozen=True, slots=True)
class SetpointsChanged:
    setpoints: Setpoints
    time: datetime


PlantEvent = BatchStarted | BatchEnded | ModuleInspected | MaterialDelivered | SetpointsChanged
Listener = Callable[[PlantEvent], None]


@dataclass(slots=True)
class _Store:
    config: MaterialConfig
    inventory: float
    quality: float
    pending: tuple[float, float, float] | None = None  # (due elapsed, kg, quality)


@dataclass(slots=True)
class _OpenBatch:
    batch_id: str
    start_time: datetime
    size: int
    produced: int = 0
    passed: int = 0
    failed: int = 0
    energy_kwh: float = 0.0
    usage: dict[str, list[float]] = field(default_factory=dict)  # name -> [cons, waste, recyc]

    def record(self, end_time: datetime | None) -> BatchRecord:
        return BatchRecord(
            batch_id=self.batch_id,
            start_time=self.start_time,
            end_time=end_time,
            size=self.size,
            modules_produced=self.produced,
            modules_passed=self.passed,
            modules_failed=self.failed,
            energy_kwh=self.energy_kwh,
            materials={
                name: MaterialUsage(values[0], values[1], values[2])
                for name, values in self.usage.items()
            },
        )


def _clip(value: float, low: float, high: float) -> float:
    return min(high, max(low, value))


def _ou(x: float, tau: float, sigma: float, dt: float, z: float) -> float:
    """One step of an Ornstein-Uhlenbeck process with stationary standard deviation sigma."""
    a = math.exp(-dt / tau)
    return x * a + sigma * math.sqrt(1.0 - a * a) * z


class Plant:
    """The PV-module line. Not thread-safe: use it from one thread (the event loop)."""

    def __init__(
        self, config: PlantConfig | None = None, *, clock: Callable[[], datetime] = utc_now
    ) -> None:
        self.config = config or PlantConfig()
        if self.config.batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        self._clock = clock
        self._rng = np.random.default_rng(self.config.seed)
        self._listeners: list[Listener] = []
        self._setpoints = self.config.setpoints
        self._validate(self._setpoints)
        self._elapsed = 0.0
        self._updated_at = clock()
        self._day_offset = self.config.time_of_day_h * 3600.0
        self._stores = {
            m.name: _Store(m, m.initial_kg, m.initial_quality) for m in self.config.materials
        }
        self._temperature = self._setpoints.target_temperature
        self._env_t_dev = 0.0
        self._env_h_dev = 0.0
        self._eff_noise = 0.0
        self._def_noise = 0.0
        self._rate_noise = 0.0
        self._power_noise = 0.0
        self._volt_noise = 0.0
        self._freq_noise = 0.0
        self._module_acc = 0.0
        self._modules_total = 0
        self._energy_total = 0.0
        self._batch_seq = 0
        self._batch: _OpenBatch | None = None
        self.completed_batches: deque[BatchRecord] = deque(maxlen=100)
        self._values: dict[str, Value] = {}
        self._status = "idle"
        self._compute(0.0, np.zeros(10))

    # -- listeners ---------------------------------------------------------------------------

    def subscribe(self, listener: Listener) -> Callable[[], None]:
        """Call ``listener`` with every :data:`PlantEvent`; returns the unsubscribe function."""
        self._listeners.append(listener)

        def unsubscribe() -> None:
            with contextlib.suppress(ValueError):
                self._listeners.remove(listener)

        return unsubscribe

    def _emit(self, event: PlantEvent) -> None:
        for listener in list(self._listeners):
            try:
                listener(event)
            except Exception:
                log.exception("plant listener %r failed on %s", listener, type(event).__name__)

    # -- setpoints and batches ----------------------------------------------------------------

    @property
    def setpoints(self) -> Setpoints:
        return self._setpoints

    @staticmethod
    def _validate(setpoints: Setpoints) -> None:
        validate_setpoints(setpoints)

    def set_setpoints(
        self,
        *,
        target_temperature: float | None = None,
        cycle_time: float | None = None,
        running: bool | None = None,
    ) -> Setpoints:
        """Change setpoints (only the given ones); ValueError if a value is out of range."""
        new = self._setpoints
        if target_temperature is not None:
            new = replace(new, target_temperature=float(target_temperature))
        if cycle_time is not None:
            new = replace(new, cycle_time=float(cycle_time))
        if running is not None:
            new = replace(new, running=bool(running))
        self._validate(new)
        if new != self._setpoints:
            self._setpoints = new
            self._refresh_setpoint_values()
            self._emit(SetpointsChanged(new, self._clock()))
        return new

    @property
    def batch(self) -> BatchRecord | None:
        """The open batch, or None."""
        return self._batch.record(None) if self._batch is not None else None

    def start_batch(self, batch_id: str | None = None) -> BatchRecord:
        """End the open batch (if any) and start a new one; ``None``/``""`` picks the next id."""
        if batch_id is not None:
            batch_id = batch_id.strip()
            if len(batch_id) > MAX_BATCH_ID_LENGTH or not batch_id.isprintable():
                raise ValueError(f"invalid batch id {batch_id!r}")
        self.end_batch()
        self._batch_seq += 1
        if not batch_id:
            batch_id = f"{self.config.batch_prefix}-{self._batch_seq:05d}"
        self._batch = _OpenBatch(
            batch_id,
            self._clock(),
            self.config.batch_size,
            usage={name: [0.0, 0.0, 0.0] for name in self._stores},
        )
        self._refresh_batch_values()
        record = self._batch.record(None)
        self._emit(BatchStarted(record))
        return record

    def end_batch(self) -> BatchRecord | None:
        """End the open batch; returns its final record (None if no batch was open)."""
        if self._batch is None:
            return None
        record = self._batch.record(self._clock())
        self._batch = None
        self.completed_batches.append(record)
        self._refresh_batch_values()
        self._emit(BatchEnded(record))
        return record

    # -- time ----------------------------------------------------------------------------------

    @property
    def elapsed(self) -> float:
        """Simulated seconds since the plant was created."""
        return self._elapsed

    @property
    def updated_at(self) -> datetime:
        """Wall-clock time (UTC) of the last step: the source timestamp of the values."""
        return self._updated_at

    def advance(self, seconds: float) -> None:
        """Advance by ``seconds`` of simulated time in fixed steps of ``config.step``."""
        step = self.config.step
        target = self._elapsed + seconds
        while self._elapsed + step <= target + 1e-9:
            self.step(step)

    def step(self, dt: float) -> None:
        """Advance the model by ``dt`` simulated seconds."""
        if dt <= 0:
            return
        z = self._rng.standard_normal(10)
        self._compute(dt, z)

    # -- the model -----------------------------------------------------------------------------

    def _compute(self, dt: float, z: np.ndarray[Any, np.dtype[np.float64]]) -> None:
        cfg = self.config
        sp = self._setpoints
        t = self._elapsed + dt
        day = 2.0 * math.pi * ((self._day_offset + t) % 86400.0) / 86400.0
        # hall climate: warmest mid-afternoon, most humid at night
        self._env_t_dev = _ou(self._env_t_dev, 600.0, 0.3, dt, float(z[0])) if dt else 0.0
        self._env_h_dev = _ou(self._env_h_dev, 900.0, 2.0, dt, float(z[1])) if dt else 0.0
        env_t = _clip(22.0 + 1.5 * math.sin(day - 2.2) + self._env_t_dev, -20.0, 60.0)
        env_h = _clip(45.0 + 5.0 * math.sin(day + 1.0) + self._env_h_dev, 5.0, 95.0)

        has_material = all(s.inventory >= s.config.per_module_kg for s in self._stores.values())
        running = sp.running and has_material
        self._status = "running" if running else "idle"

        if dt:
            tau = 30.0 if running else 120.0
            equilibrium = (
                sp.target_temperature
                + 0.08 * (env_t - sp.target_temperature)
                + (0.2 if running else 0.0)
            )
            self._temperature += (equilibrium - self._temperature) * (1.0 - math.exp(-dt / tau))
            self._temperature += 0.05 * math.sqrt(dt) * float(z[2])
            self._eff_noise = _ou(self._eff_noise, 60.0, 0.004, dt, float(z[3]))
            self._def_noise = _ou(self._def_noise, 60.0, 0.002, dt, float(z[4]))
            self._rate_noise = _ou(self._rate_noise, 30.0, 0.01, dt, float(z[5]))
            self._power_noise = _ou(self._power_noise, 10.0, 1.0, dt, float(z[6]))
            self._volt_noise = _ou(self._volt_noise, 20.0, 2.0, dt, float(z[7]))
            self._freq_noise = _ou(self._freq_noise, 20.0, 0.02, dt, float(z[8]))
        temperature = _clip(self._temperature, -20.0, 80.0)

        q_wafer = self._quality("silicon_wafer")
        q_glass = self._quality("solar_glass")
        dev = temperature - cfg.optimal_temperature
        fast = max(0.0, 30.0 - sp.cycle_time)
        efficiency = _clip(
            0.93 - 0.006 * dev * dev - 0.003 * fast - 0.1 * (1.0 - q_wafer) + self._eff_noise,
            0.0,
            1.0,
        )
        defect_rate = _clip(
            0.01
            + 0.004 * dev * dev
            + 0.0015 * fast
            + 0.2 * (1.0 - q_wafer)
            + 0.1 * (1.0 - q_glass)
            + 0.001 * max(0.0, env_h - 60.0)
            + self._def_noise,
            0.0,
            1.0,
        )
        rate = (
            max(0.0, cfg.modules_per_cycle * 60.0 / sp.cycle_time * (1.0 + self._rate_noise))
            if running
            else 0.0
        )
        power = max(
            0.0,
            35.0
            + ((60.0 + 3.5 * rate) if running else 0.0)
            + 4.0 * abs(sp.target_temperature - env_t)
            + self._power_noise,
        )
        self._energy_total += power * dt / 3600.0
        if self._batch is not None:
            self._batch.energy_kwh += power * dt / 3600.0

        if running and dt:
            self._module_acc += rate / 60.0 * dt
            while self._module_acc >= 1.0:
                self._module_acc -= 1.0
                if not self._produce_module(defect_rate, efficiency):
                    self._module_acc = 0.0
                    break
        if dt:
            self._deliveries(t)

        voltage = 400.0 + self._volt_noise
        power_factor = _clip(0.88 + 0.08 * min(1.0, power / 150.0), 0.0, 1.0)
        current = power * 1000.0 / (math.sqrt(3.0) * voltage * power_factor)
        self._elapsed = t
        self._updated_at = self._clock()

        values = self._values
        values["production_line.status"] = self._status
        values["production_line.temperature"] = temperature
        values["production_line.energy_consumption"] = power
        values["production_line.production_rate"] = rate
        values["production_line.efficiency"] = efficiency
        values["production_line.defect_rate"] = defect_rate
        values["production_line.modules_produced"] = self._modules_total
        for name, store in self._stores.items():
            values[f"materials.{name}.inventory"] = store.inventory
            values[f"materials.{name}.quality"] = store.quality
            values[f"alarms.{name}_low"] = store.inventory < store.config.reorder_level_kg
        values["environment.temperature"] = env_t
        values["environment.humidity"] = env_h
        values["energy_meter.active_power"] = power
        values["energy_meter.energy_total"] = self._energy_total
        values["energy_meter.voltage"] = voltage
        values["energy_meter.current"] = current
        values["energy_meter.power_factor"] = power_factor
        values["energy_meter.frequency"] = 50.0 + self._freq_noise
        values["alarms.temperature"] = not (
            TEMPERATURE_ALARM[0] <= temperature <= TEMPERATURE_ALARM[1]
        )
        values["alarms.humidity"] = not HUMIDITY_ALARM[0] <= env_h <= HUMIDITY_ALARM[1]
        values["alarms.defect_rate"] = defect_rate > DEFECT_RATE_ALARM
        self._refresh_setpoint_values()
        self._refresh_batch_values()

    def _refresh_setpoint_values(self) -> None:
        sp = self._setpoints
        self._values["production_line.target_temperature"] = sp.target_temperature
        self._values["production_line.cycle_time"] = sp.cycle_time
        self._values["production_line.running"] = sp.running

    def _refresh_batch_values(self) -> None:
        batch = self._batch
        self._values["batch.id"] = batch.batch_id if batch else ""
        self._values["batch.modules_produced"] = batch.produced if batch else 0
        self._values["batch.size"] = self.config.batch_size
        self._values["production_line.modules_produced"] = self._modules_total

    def _quality(self, name: str) -> float:
        store = self._stores.get(name)
        return store.quality if store is not None else 1.0

    def _produce_module(self, defect_rate: float, efficiency: float) -> bool:
        if any(s.inventory < s.config.per_module_kg for s in self._stores.values()):
            return False
        if self._batch is None:
            if not self.config.auto_batches:
                return False
            self.start_batch(None)
        batch = self._batch
        assert batch is not None
        failed = bool(self._rng.random() < defect_rate)
        defect = DEFECT_TYPES[int(self._rng.integers(len(DEFECT_TYPES)))] if failed else None
        power_w = 405.0 * efficiency / 0.93 * (0.85 if failed else 1.0)
        power_w += float(self._rng.normal(0.0, 2.0))
        for name, store in self._stores.items():
            per = store.config.per_module_kg
            store.inventory -= per
            waste = per if failed else per * store.config.scrap_fraction
            usage = batch.usage.setdefault(name, [0.0, 0.0, 0.0])
            usage[0] += per
            usage[1] += waste
            usage[2] += waste * store.config.recycle_fraction
        batch.produced += 1
        if failed:
            batch.failed += 1
        else:
            batch.passed += 1
        self._modules_total += 1
        now = self._clock()
        self._emit(
            ModuleInspected(
                batch.batch_id,
                f"{batch.batch_id}-{batch.produced:04d}",
                not failed,
                defect,
                round(power_w, 2),
                now,
            )
        )
        if batch.produced >= batch.size:
            self.end_batch()
        else:
            self._refresh_batch_values()
        return True

    def _deliveries(self, t: float) -> None:
        for store in self._stores.values():
            cfg = store.config
            if store.pending is None and store.inventory < cfg.reorder_level_kg:
                lot_quality = _clip(cfg.initial_quality + float(self._rng.normal(0, 0.01)), 0.8, 1)
                store.pending = (t + cfg.lead_time_s, cfg.delivery_kg, lot_quality)
            if store.pending is not None and t >= store.pending[0]:
                _, kg, lot_quality = store.pending
                store.pending = None
                total = store.inventory + kg
                store.quality = (store.inventory * store.quality + kg * lot_quality) / total
                store.inventory = total
                self._emit(MaterialDelivered(cfg.name, kg, lot_quality, self._clock()))

    # -- views ---------------------------------------------------------------------------------

    def snapshot(self) -> dict[str, Value]:
        """Every tag value by twin path (see :data:`simulators.tags.TAGS`)."""
        return dict(self._values)

    def state(self) -> dict[str, Any]:
        """The digital-twin state structure of the spec (section 3.1)."""
        v = self._values
        return {
            "timestamp": self._updated_at.isoformat(),
            "system_status": self._status,
            "production_line": {
                key: v[f"production_line.{key}"]
                for key in (
                    "status",
                    "temperature",
                    "energy_consumption",
                    "production_rate",
                    "efficiency",
                    "defect_rate",
                )
            },
            "materials": {
                name: {
                    "inventory": v[f"materials.{name}.inventory"],
                    "quality": v[f"materials.{name}.quality"],
                }
                for name in self._stores
            },
            "environment": {
                "temperature": v["environment.temperature"],
                "humidity": v["environment.humidity"],
            },
        }


class PlantRunner(Lifecycle):
    """Advances a :class:`Plant` in real time (``speed`` x wall clock) while entered.

    ``async with PlantRunner(plant):`` runs a task that, every ``tick`` seconds, steps the plant
    in fixed steps until its simulated time has caught up with ``speed`` x the wall time since
    the start. If the machine cannot keep up, simulated time is dropped rather than piled up.
    """

    def __init__(self, plant: Plant, *, speed: float | None = None, tick: float = 0.05) -> None:
        self.plant = plant
        self._speed = float(speed if speed is not None else plant.config.speed)
        if self._speed <= 0:
            raise ValueError("speed must be positive")
        self.tick = tick
        self._task: asyncio.Task[None] | None = None
        self._anchor_wall = 0.0
        self._anchor_sim = 0.0
        self.paused = False

    @property
    def speed(self) -> float:
        return self._speed

    @speed.setter
    def speed(self, value: float) -> None:
        if value <= 0:
            raise ValueError("speed must be positive")
        self._rebase()
        self._speed = float(value)

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    def _rebase(self) -> None:
        self._anchor_wall = time.monotonic()
        self._anchor_sim = self.plant.elapsed

    async def _run(self) -> None:
        self._rebase()
        step = self.plant.config.step
        max_steps = max(10, int(5.0 / step))
        while True:
            await asyncio.sleep(self.tick)
            if self.paused:
                self._rebase()
                continue
            target = self._anchor_sim + (time.monotonic() - self._anchor_wall) * self._speed
            steps = int((target - self.plant.elapsed) / step + 1e-9)
            if steps > max_steps:
                steps = max_steps
                self._anchor_sim = self.plant.elapsed + steps * step
                self._anchor_wall = time.monotonic()
            for _ in range(steps):
                self.plant.step(step)

    async def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="plant-runner")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
