"""Process models of the PV-module line (implementation guide 4.5.2, technical manual 5.3, 16.3.1).

Why this module is long: the line's equations exist twice, per state (one trajectory) and on numpy
arrays (a Monte Carlo ensemble), and must stay side by side so they stay the same equations.

:class:`PVManufacturingModel` is the discrete-time state-space model ``x[t+1] = f(x[t], u, w[t])``
of the twin state (technical manual 4.1), driven by ``SIMULATION_PARAMETERS``. Per step:

* **line temperature** (spec):
  ``T += (T_target - T) * temperature_regulation + N(0, temperature_noise)``; ``T_target`` is
  ``production_line.target_temperature`` when the state has it, else the configured
  ``target_temperature``.
* **efficiency / defect rate** worsen with the square of the distance ``dT`` from the configured
  ``target_temperature`` (the process optimum):
  ``base_efficiency - efficiency_temperature_sensitivity * dT**2`` (at least 0) and
  ``base_defect_rate + defect_temperature_sensitivity * dT**2`` (at most 1).
* **production rate** (modules per step): a running line ramps (at most
  ``production_rate_increment`` per step, plus noise) towards
  ``nominal_production_rate * nominal_cycle_time / cycle_time``; any other status stops
  production at once. Output is capped by the material on hand.
* **materials**: each produced module draws ``<material>_consumption_rate`` of every modelled
  material (one with an ``inventory`` in the state and a configured rate). Inventory never goes
  negative. The running totals ``consumption``, ``waste`` (drawn * (``material_waste_fraction``
  + defect rate)) and ``recycled`` (waste * ``recycling_rate``) are kept per material.
* **energy consumption** (power, kW): ramps (at most ``energy_consumption_increment`` per step,
  plus noise) towards ``idle_power + energy_per_module * output / efficiency``; never negative.
* **environment**: temperature and humidity drift back to ``ambient_*`` by
  ``environment_reversion`` per step, with noise; humidity stays within 0..100 %.

Only fields present in the state are written (plus the material totals); everything else is
passed through unchanged. Noise is five standard normal draws per step from a
``numpy.random.Generator``, always in the same order, so a seed reproduces a run, and stepping
one state at a time gives the same trajectory as a whole run.

The single-trajectory loop works on plain floats and builds each state's dicts once (a new dict
only for each section that changes; untouched sub-objects are shared between consecutive
states). :meth:`PVManufacturingModel.simulate_ensemble` runs the same equations on numpy arrays,
one element per Monte Carlo iteration.

Custom models (implementation guide 10.1) are any object with ``simulate_step(current_state)`` or
``simulate_step(current_state, rng)`` returning a *new* state dict; see :func:`as_step_function`.
"""

from __future__ import annotations

import contextlib
import datetime
import gc
import logging
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
from numpy.typing import NDArray

from circman5.adapters.config.simulation_parameters import SimulationParameters
from circman5.errors import InvalidInputError
from circman5.manufacturing.digital_twin.simulation.custom_models import (
    ProcessModel,
    SimpleProcessModel,
    as_step_function,
)
from circman5.manufacturing.digital_twin.simulation.model_parameters import (
    load_simulation_parameters,
    parameter_bounds,
)
from circman5.quantities import require_finite

logger = logging.getLogger(__name__)

__all__ = [
    "GAIN_NAMES",
    "LINE_STATUSES",
    "NOISE_TERMS",
    "PVManufacturingModel",
    "ProcessModel",
    "SimpleProcessModel",
    "as_step_function",
    "load_simulation_parameters",
    "parameter_bounds",
]

FloatArray = NDArray[np.float64]

#: Values accepted for ``production_line.status`` in simulation parameters.
LINE_STATUSES: tuple[str, ...] = (
    "running",
    "idle",
    "stopped",
    "starting",
    "stopping",
    "maintenance",
    "error",
)

#: The standard normal draws of one step, in draw order.
NOISE_TERMS: tuple[str, ...] = (
    "production_line.temperature",
    "production_line.energy_consumption",
    "production_line.production_rate",
    "environment.temperature",
    "environment.humidity",
)
_N_NOISE = len(NOISE_TERMS)

#: Model coefficients that Monte Carlo varies by ``1 ± uncertainty`` per iteration (followed by
#: one consumption rate per configured material, in :meth:`SimulationParameters.consumption_rates`
#: order).
GAIN_NAMES: tuple[str, ...] = (
    "temperature_regulation",
    "nominal_production_rate",
    "idle_power",
    "energy_per_module",
    "efficiency_temperature_sensitivity",
    "defect_temperature_sensitivity",
)

_MIN_EFFICIENCY_FOR_ENERGY = 0.1
# Long runs build many small dicts that are never garbage: the cyclic collector's repeated
# scans of the growing result cost ~40 % of the loop. It is paused for runs this long.
_GC_PAUSE_STEPS = 5_000


@contextlib.contextmanager
def _gc_paused(active: bool) -> Iterator[None]:
    """Pause the cyclic garbage collector (if it runs) while building a long trajectory.

    Only acyclic dicts and floats are allocated meanwhile, so nothing is lost; the collector
    is re-enabled on the way out, also on errors. Reference counting frees memory as usual.
    """
    if not active or not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


# -- the PV line model --------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class _Coefficients:
    """The model's constants as plain floats (or, for an ensemble, per-iteration arrays)."""

    regulation: Any
    target_temperature: float
    temperature_noise: float
    production_rate_increment: float
    production_rate_noise: float
    nominal_production_rate: Any
    nominal_cycle_time: float
    energy_increment: float
    energy_noise: float
    idle_power: Any
    energy_per_module: Any
    base_efficiency: float
    efficiency_sensitivity: Any
    base_defect_rate: float
    defect_sensitivity: Any
    waste_fraction: float
    recycling_rate: float
    ambient_temperature: float
    ambient_humidity: float
    environment_reversion: float
    environment_temperature_noise: float
    humidity_noise: float
    time_step_s: float
    consumption_rates: dict[str, Any]

    @classmethod
    def from_parameters(cls, p: SimulationParameters) -> _Coefficients:
        return cls(
            regulation=p.temperature_regulation,
            target_temperature=p.target_temperature,
            temperature_noise=p.temperature_noise,
            production_rate_increment=p.production_rate_increment,
            production_rate_noise=p.production_rate_noise,
            nominal_production_rate=p.nominal_production_rate,
            nominal_cycle_time=p.nominal_cycle_time,
            energy_increment=p.energy_consumption_increment,
            energy_noise=p.energy_noise,
            idle_power=p.idle_power,
            energy_per_module=p.energy_per_module,
            base_efficiency=p.base_efficiency,
            efficiency_sensitivity=p.efficiency_temperature_sensitivity,
            base_defect_rate=p.base_defect_rate,
            defect_sensitivity=p.defect_temperature_sensitivity,
            waste_fraction=p.material_waste_fraction,
            recycling_rate=p.recycling_rate,
            ambient_temperature=p.ambient_temperature,
            ambient_humidity=p.ambient_humidity,
            environment_reversion=p.environment_reversion,
            environment_temperature_noise=p.environment_temperature_noise,
            humidity_noise=p.humidity_noise,
            time_step_s=p.time_step_s,
            consumption_rates=p.consumption_rates(),
        )

    def varied(self, factors: Iterable[float | FloatArray]) -> _Coefficients:
        """The gains of :data:`GAIN_NAMES` (then the consumption rates) times ``factors``.

        ``factors`` is a sequence of floats (one trajectory) or of arrays (an ensemble).
        """
        mul = list(factors)
        n_gains = len(GAIN_NAMES)
        rates = {
            name: rate * mul[n_gains + i]
            for i, (name, rate) in enumerate(self.consumption_rates.items())
        }
        return replace(
            self,
            regulation=np.minimum(self.regulation * mul[0], 1.0),
            nominal_production_rate=self.nominal_production_rate * mul[1],
            idle_power=self.idle_power * mul[2],
            energy_per_module=self.energy_per_module * mul[3],
            efficiency_sensitivity=self.efficiency_sensitivity * mul[4],
            defect_sensitivity=self.defect_sensitivity * mul[5],
            consumption_rates=rates,
        )

    @property
    def n_gains(self) -> int:
        return len(GAIN_NAMES) + len(self.consumption_rates)


@dataclass(slots=True)
class _Start:
    """The modelled values of one state as floats, and which of them the state has."""

    line: dict[str, Any] | None
    environment: dict[str, Any] | None
    materials: dict[str, Any] | None
    running: bool
    target_temperature: float
    cycle_time: float
    temperature: float
    energy: float
    rate: float
    efficiency: float
    defect_rate: float
    env_temperature: float
    humidity: float
    has: frozenset[str]
    material_names: list[str]
    rates: list[Any]
    inventory: list[float]
    consumption: list[float]
    waste: list[float]
    recycled: list[float]


def _read_start(state: Mapping[str, Any], c: _Coefficients) -> _Start:
    line = state.get("production_line")
    if line is not None and not isinstance(line, Mapping):
        raise InvalidInputError("state 'production_line' is not a mapping")
    env = state.get("environment")
    if env is not None and not isinstance(env, Mapping):
        raise InvalidInputError("state 'environment' is not a mapping")
    materials = state.get("materials")
    if materials is not None and not isinstance(materials, Mapping):
        raise InvalidInputError("state 'materials' is not a mapping")
    has: set[str] = set()

    def get(section: Mapping[str, Any] | None, prefix: str, key: str, default: float) -> float:
        if section is None or key not in section:
            return default
        has.add(key if prefix == "production_line" else f"{prefix}.{key}")
        return require_finite(f"{prefix}.{key}", section[key], "state value at ")

    target = get(line, "production_line", "target_temperature", c.target_temperature)
    cycle = get(line, "production_line", "cycle_time", c.nominal_cycle_time)
    if cycle <= 0:
        raise InvalidInputError(f"production_line.cycle_time must be > 0, got {cycle}")
    temperature = get(line, "production_line", "temperature", target)
    names: list[str] = []
    rates: list[Any] = []
    inventory: list[float] = []
    consumption: list[float] = []
    waste: list[float] = []
    recycled: list[float] = []
    if line is not None and materials is not None:
        for name, rate in c.consumption_rates.items():
            entry = materials.get(name)
            if not isinstance(entry, Mapping) or "inventory" not in entry:
                continue
            prefix = f"materials.{name}"
            names.append(name)
            rates.append(rate)
            inventory.append(
                max(
                    require_finite(f"{prefix}.inventory", entry["inventory"], "state value at "),
                    0.0,
                )
            )
            consumption.append(
                require_finite(
                    f"{prefix}.consumption", entry.get("consumption", 0.0), "state value at "
                )
            )
            waste.append(
                require_finite(f"{prefix}.waste", entry.get("waste", 0.0), "state value at ")
            )
            recycled.append(
                require_finite(f"{prefix}.recycled", entry.get("recycled", 0.0), "state value at ")
            )
    dev = temperature - c.target_temperature
    start = _Start(
        line=dict(line) if line is not None else None,
        environment=dict(env) if env is not None else None,
        materials=dict(materials) if materials is not None else None,
        running=line is not None and line.get("status", "idle") == "running",
        target_temperature=target,
        cycle_time=cycle,
        temperature=temperature,
        energy=get(line, "production_line", "energy_consumption", c.idle_power),
        rate=get(line, "production_line", "production_rate", 0.0),
        efficiency=get(
            line,
            "production_line",
            "efficiency",
            max(c.base_efficiency - c.efficiency_sensitivity * (dev * dev), 0.0),
        ),
        defect_rate=get(
            line,
            "production_line",
            "defect_rate",
            min(c.base_defect_rate + c.defect_sensitivity * (dev * dev), 1.0),
        ),
        env_temperature=get(env, "environment", "temperature", c.ambient_temperature),
        humidity=get(env, "environment", "humidity", c.ambient_humidity),
        has=frozenset(has),
        material_names=names,
        rates=rates,
        inventory=inventory,
        consumption=consumption,
        waste=waste,
        recycled=recycled,
    )
    return start


def _timestamps(initial: Any, steps: int, step_s: float) -> list[str]:
    """ISO 8601 timestamps ``initial + k * step_s`` for k = 1..steps (offset kept)."""
    start: datetime.datetime | None = None
    if isinstance(initial, str):
        try:
            start = datetime.datetime.fromisoformat(initial)
        except ValueError:
            logger.debug("unparsable timestamp %r; simulating from now", initial)
    if start is None:
        start = datetime.datetime.now(datetime.UTC)
    suffix = start.isoformat(timespec="microseconds")[26:]
    wall = np.datetime64(start.replace(tzinfo=None), "us")
    step = np.timedelta64(round(step_s * 1e6), "us")
    stamps = wall + np.arange(1, steps + 1, dtype=np.int64) * step
    text: list[str] = np.datetime_as_string(stamps, unit="us").tolist()
    if suffix:
        return [t + suffix for t in text]
    return text


class PVManufacturingModel:
    """Physics-based model of the PV-module line (implementation guide 4.5.2).

    ``parameters``: a :class:`SimulationParameters`, or a mapping overriding keys of the
    configured ``SIMULATION_PARAMETERS`` (e.g. ``{"temperature_regulation": 0.2}``), or None for
    the configuration as is. ``rng``: the generator used when a method is called without one.
    """

    def __init__(
        self,
        parameters: SimulationParameters | Mapping[str, Any] | None = None,
        rng: np.random.Generator | None = None,
    ) -> None:
        self.config: SimulationParameters = load_simulation_parameters(parameters)
        #: The model's constants as a plain dict (the spec's ``self.parameters``).
        self.parameters: dict[str, Any] = self.config.model_dump()
        self._coefficients = _Coefficients.from_parameters(self.config)
        self._rng = rng if rng is not None else np.random.default_rng()

    # -- the spec's single-quantity models ----------------------------------------------------
    def simulate_temperature_dynamics(
        self, current_temp: float, target_temp: float, rng: np.random.Generator | None = None
    ) -> float:
        """``T + (T_target - T) * temperature_regulation + N(0, temperature_noise)``."""
        current = require_finite("current_temp", current_temp, "state value at ")
        target = require_finite("target_temp", target_temp, "state value at ")
        noise = float((rng or self._rng).standard_normal())
        c = self._coefficients
        return float(current + (target - current) * c.regulation + c.temperature_noise * noise)

    def production_rate_target(self, status: str, cycle_time: float | None = None) -> float:
        """Modules per step the line heads for: 0 unless ``status == "running"``."""
        if status != "running":
            return 0.0
        c = self._coefficients
        cycle = (
            c.nominal_cycle_time
            if cycle_time is None
            else require_finite("cycle_time", cycle_time, "state value at ")
        )
        if cycle <= 0:
            raise InvalidInputError(f"cycle_time must be > 0, got {cycle}")
        return float(c.nominal_production_rate * c.nominal_cycle_time / cycle)

    def efficiency_at(self, temperature: float) -> float:
        """Efficiency at a line temperature (best at the configured target temperature)."""
        c = self._coefficients
        dev = require_finite("temperature", temperature, "state value at ") - c.target_temperature
        return float(max(c.base_efficiency - c.efficiency_sensitivity * (dev * dev), 0.0))

    def defect_rate_at(self, temperature: float) -> float:
        """Defect rate at a line temperature (lowest at the configured target temperature)."""
        c = self._coefficients
        dev = require_finite("temperature", temperature, "state value at ") - c.target_temperature
        return float(min(c.base_defect_rate + c.defect_sensitivity * (dev * dev), 1.0))

    def energy_target(self, output: float, efficiency: float) -> float:
        """The power (kW) the line heads for at ``output`` modules per step."""
        c = self._coefficients
        eff = max(efficiency, _MIN_EFFICIENCY_FOR_ENERGY)
        return float(c.idle_power + c.energy_per_module * output / eff)

    @property
    def n_gains(self) -> int:
        """How many coefficients Monte Carlo varies (see :data:`GAIN_NAMES`)."""
        return self._coefficients.n_gains

    # -- stepping -----------------------------------------------------------------------------
    def simulate_step(
        self, current_state: Mapping[str, Any], rng: np.random.Generator | None = None
    ) -> dict[str, Any]:
        """One step: a new state; ``current_state`` is not modified."""
        return self.run_trajectory(current_state, 1, rng)[0]

    def run_trajectory(
        self,
        state: Mapping[str, Any],
        steps: int,
        rng: np.random.Generator | None = None,
        gain_factors: Sequence[float] | None = None,
    ) -> list[dict[str, Any]]:
        """The ``steps`` states after ``state`` (not including it); ``state`` is not modified.

        The new states share sub-objects the model does not change (with ``state`` and with
        each other); treat them as read-only or copy them. ``gain_factors`` (Monte Carlo)
        multiply the coefficients of :data:`GAIN_NAMES` and the consumption rates.
        """
        c = self._coefficients
        if gain_factors is not None:
            c = c.varied([float(f) for f in gain_factors])
        s = _read_start(state, c)
        if steps <= 0:
            return []
        draws = (rng or self._rng).standard_normal((steps, _N_NOISE))
        # Scale by each term's standard deviation here, vectorized (x * s == s * x exactly).
        scale = np.array(
            [
                c.temperature_noise,
                c.energy_noise,
                c.production_rate_noise,
                c.environment_temperature_noise,
                c.humidity_noise,
            ]
        )
        noise: list[list[float]] = (draws * scale).tolist()
        stamps = _timestamps(state.get("timestamp"), steps, c.time_step_s)
        with _gc_paused(steps >= _GC_PAUSE_STEPS):
            return self._loop(state, s, c, noise, stamps)

    def _loop(  # one flat loop on purpose: it is the hot path
        self,
        state: Mapping[str, Any],
        s: _Start,
        c: _Coefficients,
        noise: list[list[float]],
        stamps: list[str],
    ) -> list[dict[str, Any]]:
        # Everything the loop touches is a local: attribute look-ups cost more than the maths.
        # ``noise`` is already scaled by each term's standard deviation.
        reg = float(c.regulation)
        t_target, t_opt = s.target_temperature, c.target_temperature
        base_eff, s_eff = c.base_efficiency, float(c.efficiency_sensitivity)
        base_dfc, s_dfc = c.base_defect_rate, float(c.defect_sensitivity)
        running = s.running
        rate_target = float(c.nominal_production_rate) * c.nominal_cycle_time / s.cycle_time
        d_rate = c.production_rate_increment
        idle, per_module = float(c.idle_power), float(c.energy_per_module)
        d_energy = c.energy_increment
        waste_fraction, recycling = c.waste_fraction, c.recycling_rate
        amb_t, amb_h, rev = c.ambient_temperature, c.ambient_humidity, c.environment_reversion
        min_eff = _MIN_EFFICIENCY_FOR_ENERGY

        temp, energy, rate = s.temperature, s.energy, s.rate
        eff, dfc = s.efficiency, s.defect_rate
        env_t, hum = s.env_temperature, s.humidity
        names = s.material_names
        n_mat = len(names)
        rates = [float(r) for r in s.rates]
        inv, cons, wst, rec = (
            list(s.inventory),
            list(s.consumption),
            list(s.waste),
            list(s.recycled),
        )
        mat_range = range(n_mat)

        has = s.has
        w_temp = "temperature" in has
        w_energy = "energy_consumption" in has
        w_rate = "production_rate" in has
        w_eff = "efficiency" in has
        w_dfc = "defect_rate" in has
        w_env_t = "environment.temperature" in has
        w_hum = "environment.humidity" in has

        line_prev = s.line
        env_prev = s.environment
        mats_prev: dict[str, Any] = s.materials if s.materials is not None else {}
        mat_prev = [mats_prev[n] for n in names]
        base = dict(state)
        out_states: list[dict[str, Any]] = []
        append = out_states.append

        for (z0, z1, z2, z3, z4), stamp in zip(noise, stamps, strict=True):
            nxt = base.copy()
            nxt["timestamp"] = stamp
            if line_prev is not None:
                temp = temp + (t_target - temp) * reg + z0
                dev = temp - t_opt
                dev2 = dev * dev
                eff = base_eff - s_eff * dev2
                if eff < 0.0:
                    eff = 0.0
                dfc = base_dfc + s_dfc * dev2
                if dfc > 1.0:
                    dfc = 1.0
                if running:
                    step = rate_target - rate
                    if step > d_rate:
                        step = d_rate
                    elif step < -d_rate:
                        step = -d_rate
                    rate = rate + step + z2
                    if rate < 0.0:
                        rate = 0.0
                    for i in mat_range:
                        r = rates[i]
                        if r > 0.0:
                            cap = inv[i] / r
                            if rate > cap:
                                rate = cap
                else:
                    rate = 0.0
                if n_mat:
                    wf = waste_fraction + dfc
                    if wf > 1.0:
                        wf = 1.0
                    mats = dict(mats_prev)
                    for i in mat_range:
                        drawn = rate * rates[i]
                        left = inv[i] - drawn
                        inv[i] = left if left > 0.0 else 0.0
                        waste = drawn * wf
                        cons[i] += drawn
                        wst[i] += waste
                        rec[i] += waste * recycling
                        entry = dict(mat_prev[i])
                        entry["inventory"] = inv[i]
                        entry["consumption"] = cons[i]
                        entry["waste"] = wst[i]
                        entry["recycled"] = rec[i]
                        mats[names[i]] = entry
                    nxt["materials"] = mats
                e_eff = eff if eff > min_eff else min_eff
                step = idle + per_module * rate / e_eff - energy
                if step > d_energy:
                    step = d_energy
                elif step < -d_energy:
                    step = -d_energy
                energy = energy + step + z1
                if energy < 0.0:
                    energy = 0.0
                line = line_prev.copy()
                if w_temp:
                    line["temperature"] = temp
                if w_energy:
                    line["energy_consumption"] = energy
                if w_rate:
                    line["production_rate"] = rate
                if w_eff:
                    line["efficiency"] = eff
                if w_dfc:
                    line["defect_rate"] = dfc
                nxt["production_line"] = line
            if env_prev is not None:
                env_t = env_t + (amb_t - env_t) * rev + z3
                hum = hum + (amb_h - hum) * rev + z4
                if hum < 0.0:
                    hum = 0.0
                elif hum > 100.0:
                    hum = 100.0
                env = env_prev.copy()
                if w_env_t:
                    env["temperature"] = env_t
                if w_hum:
                    env["humidity"] = hum
                nxt["environment"] = env
            append(nxt)
        return out_states

    # -- the ensemble (vectorized Monte Carlo) ------------------------------------------------
    def simulate_ensemble(
        self,
        state: Mapping[str, Any],
        steps: int,
        iterations: int,
        rng: np.random.Generator,
        gain_factors: FloatArray | None = None,
        overrides: Mapping[str, FloatArray] | None = None,
    ) -> Iterator[dict[str, FloatArray]]:
        """Run ``iterations`` trajectories at once; yield the modelled values per step.

        Yields ``steps + 1`` dicts (step 0 first) mapping each modelled path present in
        ``state`` to an array of shape ``(iterations,)``; the arrays are reused between steps,
        so copy what you keep. ``gain_factors`` has shape ``(iterations, n_gains)``;
        ``overrides`` maps a known parameter path to per-iteration start values. Noise is drawn
        per step as ``rng.standard_normal((5, iterations))``: with one iteration the trajectory
        equals :meth:`run_trajectory` with the same generator and factors.
        """
        n = iterations
        c = self._coefficients
        s = _read_start(state, c)  # plain floats; the varied gains come in below
        if gain_factors is not None:
            c = c.varied(list(np.asarray(gain_factors, dtype=np.float64).T))
        ov = dict(overrides or {})

        def start(path: str, value: float) -> FloatArray:
            if path in ov:
                return np.array(ov[path], dtype=np.float64)
            return np.full(n, value, dtype=np.float64)

        def coefficient(value: float | FloatArray) -> FloatArray:
            return np.broadcast_to(np.asarray(value, dtype=np.float64), (n,)).copy()

        has_line = s.line is not None
        has_env = s.environment is not None
        target = start("production_line.target_temperature", s.target_temperature)
        cycle = start("production_line.cycle_time", s.cycle_time)
        temp = start("production_line.temperature", s.temperature)
        energy = (
            start("production_line.energy_consumption", s.energy)
            if "energy_consumption" in s.has
            else coefficient(c.idle_power)  # the default start, as in run_trajectory
        )
        rate = start("production_line.production_rate", s.rate)
        eff = start("production_line.efficiency", s.efficiency)
        dfc = start("production_line.defect_rate", s.defect_rate)
        env_t = start("environment.temperature", s.env_temperature)
        hum = start("environment.humidity", s.humidity)
        names = s.material_names
        inv = [
            np.maximum(start(f"materials.{m}.inventory", s.inventory[i]), 0.0)
            for i, m in enumerate(names)
        ]
        cons = [start(f"materials.{m}.consumption", s.consumption[i]) for i, m in enumerate(names)]
        wst = [start(f"materials.{m}.waste", s.waste[i]) for i, m in enumerate(names)]
        rec = [start(f"materials.{m}.recycled", s.recycled[i]) for i, m in enumerate(names)]
        rates = [coefficient(c.consumption_rates[m]) for m in names]
        safe_rates = [np.where(r > 0.0, r, 1.0) for r in rates]
        reg = coefficient(c.regulation)
        s_eff = coefficient(c.efficiency_sensitivity)
        s_dfc = coefficient(c.defect_sensitivity)
        idle = coefficient(c.idle_power)
        per_module = coefficient(c.energy_per_module)
        rate_target = coefficient(c.nominal_production_rate) * c.nominal_cycle_time / cycle
        running = s.running
        d_rate, d_energy = c.production_rate_increment, c.energy_increment
        has = s.has

        def snapshot() -> dict[str, FloatArray]:
            values: dict[str, FloatArray] = {}
            if has_line:
                for key, arr in (
                    ("temperature", temp),
                    ("energy_consumption", energy),
                    ("production_rate", rate),
                    ("efficiency", eff),
                    ("defect_rate", dfc),
                ):
                    if key in has:
                        values[f"production_line.{key}"] = arr
            for i, m in enumerate(names):
                values[f"materials.{m}.inventory"] = inv[i]
                values[f"materials.{m}.consumption"] = cons[i]
                values[f"materials.{m}.waste"] = wst[i]
                values[f"materials.{m}.recycled"] = rec[i]
            if has_env:
                if "environment.temperature" in has:
                    values["environment.temperature"] = env_t
                if "environment.humidity" in has:
                    values["environment.humidity"] = hum
            return values

        yield snapshot()
        for _ in range(steps):
            z = rng.standard_normal((_N_NOISE, n))
            if has_line:
                temp = temp + (target - temp) * reg + c.temperature_noise * z[0]
                dev = temp - c.target_temperature
                dev2 = dev * dev
                eff = np.maximum(c.base_efficiency - s_eff * dev2, 0.0)
                dfc = np.minimum(c.base_defect_rate + s_dfc * dev2, 1.0)
                if running:
                    step = np.clip(rate_target - rate, -d_rate, d_rate)
                    rate = np.maximum(rate + step + c.production_rate_noise * z[2], 0.0)
                    for i in range(len(names)):
                        cap = np.where(rates[i] > 0.0, inv[i] / safe_rates[i], np.inf)
                        rate = np.minimum(rate, cap)
                else:
                    rate = np.zeros(n)
                if names:
                    wf = np.minimum(c.waste_fraction + dfc, 1.0)
                    for i in range(len(names)):
                        drawn = rate * rates[i]
                        inv[i] = np.maximum(inv[i] - drawn, 0.0)
                        waste = drawn * wf
                        cons[i] = cons[i] + drawn
                        wst[i] = wst[i] + waste
                        rec[i] = rec[i] + waste * c.recycling_rate
                e_eff = np.maximum(eff, _MIN_EFFICIENCY_FOR_ENERGY)
                step = np.clip(idle + per_module * rate / e_eff - energy, -d_energy, d_energy)
                energy = np.maximum(energy + step + c.energy_noise * z[1], 0.0)
            if has_env:
                env_t = (
                    env_t
                    + (c.ambient_temperature - env_t) * c.environment_reversion
                    + c.environment_temperature_noise * z[3]
                )
                hum = np.clip(
                    hum
                    + (c.ambient_humidity - hum) * c.environment_reversion
                    + c.humidity_noise * z[4],
                    0.0,
                    100.0,
                )
            yield snapshot()
