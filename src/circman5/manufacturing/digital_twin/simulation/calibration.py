"""Calibration: fit the process model's parameters to the recorded history of the connected line.

:func:`calibrate` takes plain arrays (a :class:`PathHistory` per twin path: times in seconds and
values; the readers that produce them live at the edge, in :mod:`circman5.sinks.history`),
resamples them onto one grid of ``time_step_s`` seconds (last value held) and fits, per path,
the equation of :class:`~.process_models.PVManufacturingModel` that drives it, with
``scipy.optimize.least_squares`` on the one-step residuals (bounded parameters):

==============================================  ==============================================
path                                            fitted parameters (inputs from other paths)
==============================================  ==============================================
``production_line.temperature``                 ``temperature_regulation``, ``temperature_noise``
                                                (input ``production_line.target_temperature``;
                                                without it also ``target_temperature``)
``production_line.production_rate``             ``nominal_production_rate``,
                                                ``production_rate_increment``,
                                                ``production_rate_noise`` (input ``cycle_time``)
``production_line.energy_consumption``          ``idle_power``, ``energy_per_module``,
                                                ``energy_consumption_increment``, ``energy_noise``
                                                (inputs ``production_rate``, ``efficiency``)
``production_line.efficiency``                  ``base_efficiency``,
                                                ``efficiency_temperature_sensitivity``
``production_line.defect_rate``                 ``base_defect_rate``,
                                                ``defect_temperature_sensitivity``
``environment.temperature``                     ``ambient_temperature``, ``environment_reversion``,
                                                ``environment_temperature_noise``
``environment.humidity``                        ``ambient_humidity``, ``environment_reversion``,
                                                ``humidity_noise``
==============================================  ==============================================

The fit is judged on a **free run**: the model, started from the first measured value and driven
only by the measured inputs (no measured value of the path itself after the start), is compared
with the measurement. R² of that run and the RMSE of the one-step residuals are reported with the
window and the number of grid points. A path whose free-run R² is below ``min_r2`` (default 0.8)
is reported ``not explained``: its parameters are *not* used (the statistical forecaster keeps
it). A path that does not move in the window (no setpoint change, only noise) cannot be
identified and is not explained either. Offsets (targets, ambient values) are bounded to the
range the path was seen in, widened by a quarter of that range, so a drift is never passed off
as a far-away setpoint.

A calibration is saved as JSON under ``<data dir>/calibrations/`` (``calibration-000001.json``,
numbered monotonically) with an ``active.json`` pointer; :func:`load_active_calibration` returns
the active one, whose :attr:`Calibration.parameters` (of the accepted paths only) override
``SIMULATION_PARAMETERS`` in the simulation engine, Monte Carlo and scenarios.
"""

from __future__ import annotations

import datetime
import json
import logging
import math
import os
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray

from circman5.adapters.config.simulation_parameters import SimulationParameters
from circman5.errors import ConfigError, InvalidInputError

logger = logging.getLogger(__name__)

__all__ = [
    "CALIBRATED_PATHS",
    "Calibration",
    "CalibrationOptions",
    "PathFit",
    "PathHistory",
    "calibrate",
    "calibrations_dir",
    "format_report",
    "list_calibrations",
    "load_active_calibration",
    "load_calibration",
    "save_calibration",
]

FloatArray = NDArray[np.float64]
BoolArray = NDArray[np.bool_]
FitStatus = Literal["accepted", "not explained", "no data"]

_FORMAT = "circman5.calibration/1"
_FILE = re.compile(r"^calibration-(\d{6,})\.json$")
_ACTIVE = "active.json"
_MIN_EFFICIENCY = 0.1  # as in the process model's energy equation

TEMPERATURE = "production_line.temperature"
TARGET = "production_line.target_temperature"
RATE = "production_line.production_rate"
CYCLE = "production_line.cycle_time"
ENERGY = "production_line.energy_consumption"
EFFICIENCY = "production_line.efficiency"
DEFECTS = "production_line.defect_rate"
ENV_TEMPERATURE = "environment.temperature"
HUMIDITY = "environment.humidity"

#: The paths a calibration fits, in fitting order.
CALIBRATED_PATHS: tuple[str, ...] = (
    TEMPERATURE,
    RATE,
    ENERGY,
    EFFICIENCY,
    DEFECTS,
    ENV_TEMPERATURE,
    HUMIDITY,
)
#: Input paths the fits read besides the calibrated ones.
INPUT_PATHS: tuple[str, ...] = (TARGET, CYCLE, "production_line.running")


@dataclass(frozen=True)
class PathHistory:
    """Recorded values of one path: ``times_s`` (Unix seconds, ascending) and ``values``."""

    times_s: FloatArray
    values: FloatArray

    @classmethod
    def of(cls, times_s: Iterable[float], values: Iterable[float]) -> PathHistory:
        t = np.asarray(times_s if isinstance(times_s, np.ndarray) else list(times_s), np.float64)
        v = np.asarray(values if isinstance(values, np.ndarray) else list(values), np.float64)
        if t.shape != v.shape or t.ndim != 1:
            raise InvalidInputError("times and values must be 1-D arrays of the same length")
        keep = np.isfinite(t) & np.isfinite(v)
        t, v = t[keep], v[keep]
        order = np.argsort(t, kind="stable")
        return cls(t[order], v[order])

    def __len__(self) -> int:
        return int(self.times_s.shape[0])


@dataclass(frozen=True)
class CalibrationOptions:
    """``min_r2``: acceptance (free-run R²); ``min_points``: grid points a path needs;
    ``step_s``: the grid (default the base parameters' ``time_step_s``); ``start_s`` / ``end_s``:
    the window (Unix seconds; default all of the history)."""

    min_r2: float = 0.8
    min_points: int = 30
    step_s: float | None = None
    start_s: float | None = None
    end_s: float | None = None

    def __post_init__(self) -> None:
        if not 0.0 <= self.min_r2 <= 1.0:
            raise InvalidInputError(f"min_r2 must be between 0 and 1, got {self.min_r2}")
        if self.min_points < 3:
            raise InvalidInputError(f"min_points must be at least 3, got {self.min_points}")
        if self.step_s is not None and not (math.isfinite(self.step_s) and self.step_s > 0):
            raise InvalidInputError(f"step_s must be a positive number, got {self.step_s}")


@dataclass(frozen=True)
class PathFit:
    """The fit of one path. ``parameters``: the fitted values (``SIMULATION_PARAMETERS`` keys);
    ``r2``: free-run R²; ``rmse``: one-step residual RMSE; ``points``: grid points used."""

    path: str
    status: FitStatus
    r2: float | None = None
    rmse: float | None = None
    points: int = 0
    start: str | None = None
    end: str | None = None
    parameters: dict[str, float] = field(default_factory=dict)
    time_constant_s: float | None = None
    reason: str = ""

    @property
    def accepted(self) -> bool:
        return self.status == "accepted"

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "status": self.status,
            "r2": self.r2,
            "rmse": self.rmse,
            "points": self.points,
            "start": self.start,
            "end": self.end,
            "parameters": dict(self.parameters),
            "time_constant_s": self.time_constant_s,
            "reason": self.reason,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> PathFit:
        status = str(data["status"])
        if status not in ("accepted", "not explained", "no data"):
            raise ValueError(f"unknown status {status!r}")
        return cls(
            path=str(data["path"]),
            status=status,  # type: ignore[arg-type]
            r2=_opt_float(data.get("r2")),
            rmse=_opt_float(data.get("rmse")),
            points=int(data.get("points", 0)),
            start=data.get("start"),
            end=data.get("end"),
            parameters={str(k): float(v) for k, v in dict(data.get("parameters", {})).items()},
            time_constant_s=_opt_float(data.get("time_constant_s")),
            reason=str(data.get("reason", "")),
        )


def _opt_float(value: Any) -> float | None:
    return None if value is None else float(value)


@dataclass(frozen=True)
class Calibration:
    """A calibration: per-path fits and the parameters of the accepted paths.

    ``version`` is 0 until :func:`save_calibration` numbers it.
    """

    version: int
    created_at: str
    source: str
    start: str | None
    end: str | None
    step_s: float
    min_r2: float
    fits: tuple[PathFit, ...]
    parameters: dict[str, float]

    @property
    def accepted_paths(self) -> frozenset[str]:
        """The paths the process model explains (where the model forecaster may be used)."""
        return frozenset(f.path for f in self.fits if f.accepted)

    @property
    def label(self) -> str:
        """How results name this parameter set: ``calibration 3``."""
        return f"calibration {self.version}"

    def fit(self, path: str) -> PathFit | None:
        return next((f for f in self.fits if f.path == path), None)

    def simulation_parameters(self, base: SimulationParameters) -> SimulationParameters:
        """``base`` with this calibration's parameters (accepted paths only) applied."""
        if not self.parameters:
            return base
        return base.model_copy(update=dict(self.parameters))

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": _FORMAT,
            "version": self.version,
            "created_at": self.created_at,
            "source": self.source,
            "window": {"start": self.start, "end": self.end, "step_s": self.step_s},
            "min_r2": self.min_r2,
            "accepted_paths": sorted(self.accepted_paths),
            "parameters": dict(self.parameters),
            "paths": [f.to_dict() for f in self.fits],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Calibration:
        if data.get("format") != _FORMAT:
            raise ValueError(f"format is {data.get('format')!r}, expected {_FORMAT!r}")
        window = dict(data["window"])
        parameters = {str(k): float(v) for k, v in dict(data["parameters"]).items()}
        unknown = set(parameters) - set(SimulationParameters.model_fields)
        if unknown:
            raise ValueError(f"unknown parameters {sorted(unknown)}")
        # the values must be valid model parameters (pydantic's ValidationError is a ValueError)
        SimulationParameters.model_validate({**SimulationParameters().model_dump(), **parameters})
        return cls(
            version=int(data["version"]),
            created_at=str(data["created_at"]),
            source=str(data["source"]),
            start=window.get("start"),
            end=window.get("end"),
            step_s=float(window["step_s"]),
            min_r2=float(data["min_r2"]),
            fits=tuple(PathFit.from_dict(f) for f in data["paths"]),
            parameters=parameters,
        )


# -- fitting -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Grid:
    """The resampled history: ``values[path]`` on ``times`` (NaN outside a path's samples)."""

    times: FloatArray
    values: dict[str, FloatArray]

    def has(self, *paths: str) -> bool:
        return all(p in self.values for p in paths)

    def window(self, *paths: str) -> BoolArray:
        """Mask of the grid points where all ``paths`` have a value (:class:`_TooFew` when
        fewer than three)."""
        mask = np.ones(self.times.shape, dtype=bool)
        for p in paths:
            mask &= np.isfinite(self.values[p])
        count = int(mask.sum())
        if count < 3:
            raise _TooFew(count)
        return mask


class _TooFew(Exception):
    def __init__(self, count: int) -> None:
        super().__init__(f"{count} points in the window")
        self.count = count


def _resample(
    history: Mapping[str, PathHistory], options: CalibrationOptions, step: float
) -> _Grid:
    starts = [h.times_s[0] for h in history.values() if len(h)]
    ends = [h.times_s[-1] for h in history.values() if len(h)]
    if not starts:
        return _Grid(np.empty(0), {})
    start = options.start_s if options.start_s is not None else min(starts)
    end = options.end_s if options.end_s is not None else max(ends)
    span = (end - start) / step if end >= start else -1.0
    if not math.isfinite(span) or span > 2_000_000:
        raise InvalidInputError(
            f"the window holds more than 2,000,000 steps of {step:g} s; narrow it or use a "
            "longer step"
        )
    count = math.floor(span) + 1 if span >= 0 else 0
    if count > 2_000_000:
        raise InvalidInputError(
            f"the window holds {count:,} steps of {step:g} s; narrow it or use a longer step"
        )
    times = start + step * np.arange(max(count, 0), dtype=np.float64)
    values: dict[str, FloatArray] = {}
    for path, h in history.items():
        if not len(h):
            continue
        index = np.searchsorted(h.times_s, times, side="right") - 1
        held = np.full(times.shape, np.nan)
        valid = (index >= 0) & (times <= h.times_s[-1] + step)
        held[valid] = h.values[index[valid]]
        values[path] = held
    return _Grid(times, values)


def _iso(seconds: float) -> str:
    return datetime.datetime.fromtimestamp(seconds, datetime.UTC).isoformat()


def _r2(measured: FloatArray, predicted: FloatArray) -> float | None:
    spread = float(np.sum((measured - measured.mean()) ** 2))
    if spread <= 1e-12 * max(1.0, float(np.sum(measured**2))):
        return None
    return 1.0 - float(np.sum((measured - predicted) ** 2)) / spread


def _offset_bounds(values: FloatArray) -> tuple[float, float]:
    low, high = float(values.min()), float(values.max())
    margin = 0.25 * (high - low) + 1e-9
    return low - margin, high + margin


@dataclass(frozen=True)
class _Result:
    parameters: dict[str, float]
    simulated: FloatArray
    residual: FloatArray
    time_constant_s: float | None = None


def _least_squares(
    residual: Callable[[FloatArray], FloatArray],
    x0: list[float],
    bounds: tuple[list[float], list[float]],
) -> FloatArray:
    from scipy.optimize import least_squares

    low, high = np.asarray(bounds[0], np.float64), np.asarray(bounds[1], np.float64)
    start = np.clip(np.asarray(x0, np.float64), low + 1e-12 * (high - low), high)
    start = np.minimum(start, high - 1e-12 * (high - low))
    solution = least_squares(residual, start, bounds=(low, high), x_scale="jac", method="trf")
    result: FloatArray = np.asarray(solution.x, dtype=np.float64)
    return result


def _first_order_run(x0: float, gain: float, inputs: FloatArray) -> FloatArray:
    """``s[0] = x0``, ``s[k+1] = s[k] + gain * (u[k] - s[k])`` (an IIR filter)."""
    from scipy.signal import lfilter

    n = inputs.shape[0]
    if n == 0:
        return np.empty(0)
    # s[k+1] - (1-g) s[k] = g u[k]
    zi = np.array([(1.0 - gain) * x0])
    out, _ = lfilter([gain], [1.0, -(1.0 - gain)], inputs[:-1], zi=zi)
    return np.concatenate(([x0], np.asarray(out, dtype=np.float64)))


def _fit_first_order(
    x: FloatArray,
    inputs: FloatArray | None,
    gain_name: str,
    offset_name: str | None,
    noise_name: str,
    base: SimulationParameters,
    step: float,
) -> _Result:
    """``x[k+1] = x[k] + g (u[k] - x[k]) + e``; ``u`` measured or a fitted constant."""
    dx = np.diff(x)
    prev = x[:-1]
    g0 = float(getattr(base, gain_name))
    if inputs is not None:
        u = inputs[:-1]

        def residual(p: FloatArray) -> FloatArray:
            r: FloatArray = dx - p[0] * (u - prev)
            return r

        (gain,) = _least_squares(residual, [g0], ([1e-6], [1.0]))
        c = None
        drive = inputs
    else:
        assert offset_name is not None
        lo, hi = _offset_bounds(x)
        c0 = float(np.clip(float(getattr(base, offset_name)), lo, hi))

        def residual(p: FloatArray) -> FloatArray:
            r: FloatArray = dx - p[0] * (p[1] - prev)
            return r

        gain, c = _least_squares(residual, [g0, c0], ([1e-6, lo], [1.0, hi]))
        drive = np.full(x.shape, c)
    one_step = dx - gain * (drive[:-1] - prev)
    parameters = {gain_name: float(gain), noise_name: float(np.std(one_step))}
    if c is not None and offset_name is not None:
        parameters[offset_name] = float(c)
    tau = -step / math.log(1.0 - gain) if gain < 1.0 else 0.0
    simulated = _first_order_run(float(x[0]), float(gain), drive)
    return _Result(parameters, simulated, one_step, tau)


def _ramp_run(x0: float, targets: FloatArray, limit: float, lead: int) -> FloatArray:
    out = np.empty(targets.shape)
    value = x0
    out[0] = value
    for k in range(targets.shape[0] - 1):
        move = targets[k + lead] - value
        move = limit if move > limit else (-limit if move < -limit else move)
        value = max(value + move, 0.0)
        out[k + 1] = value
    return out


def _fit_ramp(
    x: FloatArray,
    target_of: Callable[[FloatArray], FloatArray],
    names: tuple[str, ...],
    x0: list[float],
    bounds: tuple[list[float], list[float]],
    limit_name: str,
    noise_name: str,
    lead: int = 0,
) -> _Result:
    """``x[k+1] = x[k] + clip(target(p)[k + lead] - x[k], +-limit) + e``; fits ``p`` and the
    limit. ``lead`` 1: the target of the same step (the model's power follows the new rate)."""
    dx = np.diff(x)
    n = x.shape[0]
    prev = x[:-1]
    biggest = max(float(np.max(np.abs(dx))) if dx.size else 1.0, 1e-3)

    def residual(p: FloatArray) -> FloatArray:
        move = np.clip(target_of(p[:-1])[lead : n - 1 + lead] - prev, -p[-1], p[-1])
        r: FloatArray = dx - move
        return r

    # Start with the limit at the largest step seen (nothing clipped, so the coefficients have
    # a gradient), then let the fit pull it down to where the ramps saturate.
    solution = _least_squares(
        residual, [*x0, biggest], ([*bounds[0], 1e-6], [*bounds[1], biggest * 2.0])
    )
    coefficients, limit = solution[:-1], float(solution[-1])
    one_step = residual(solution)
    parameters = {name: float(v) for name, v in zip(names, coefficients, strict=True)}
    parameters[limit_name] = limit
    parameters[noise_name] = float(np.std(one_step))
    simulated = _ramp_run(float(x[0]), target_of(coefficients), limit, lead)
    return _Result(parameters, simulated, one_step)


def _fit_quadratic(
    y: FloatArray, temperature: FloatArray, optimum: float, names: tuple[str, str], sign: float
) -> _Result:
    """``y = base + sign * s * (T - T_opt)**2`` (static)."""
    d2 = (temperature - optimum) ** 2

    def residual(p: FloatArray) -> FloatArray:
        r: FloatArray = y - (p[0] + sign * p[1] * d2)
        return r

    base0 = float(np.median(y))
    solution = _least_squares(residual, [base0, 1e-3], ([0.0, 0.0], [1.0, 10.0]))
    predicted = solution[0] + sign * solution[1] * d2
    return _Result(
        {names[0]: float(solution[0]), names[1]: float(solution[1])},
        predicted,
        y - predicted,
    )


def _fit_path(
    path: str, grid: _Grid, base: SimulationParameters, step: float, params: dict[str, float]
) -> tuple[_Result, BoolArray] | str:
    """The fit of ``path`` and its grid mask, or why it cannot be fitted."""
    v = grid.values
    if path == TEMPERATURE:
        if grid.has(TARGET):
            mask = grid.window(TEMPERATURE, TARGET)
            fit = _fit_first_order(
                v[TEMPERATURE][mask],
                v[TARGET][mask],
                "temperature_regulation",
                None,
                "temperature_noise",
                base,
                step,
            )
        else:
            mask = grid.window(TEMPERATURE)
            fit = _fit_first_order(
                v[TEMPERATURE][mask],
                None,
                "temperature_regulation",
                "target_temperature",
                "temperature_noise",
                base,
                step,
            )
        return fit, mask
    if path == RATE:
        cycle_known = grid.has(CYCLE)
        mask = grid.window(RATE, CYCLE) if cycle_known else grid.window(RATE)
        cycle = v[CYCLE][mask] if cycle_known else np.full(int(mask.sum()), base.nominal_cycle_time)
        running = (
            v["production_line.running"][mask] > 0.5
            if grid.has("production_line.running")
            else np.ones(cycle.shape, dtype=bool)
        )
        scale = np.where(running, base.nominal_cycle_time / cycle, 0.0)
        x = v[RATE][mask]
        top = max(float(np.max(x)) * 4.0, 1.0) * float(np.max(cycle)) / base.nominal_cycle_time
        producing = scale > 0
        g0 = (
            float(np.median(x[producing] / scale[producing]))
            if producing.any()
            else base.nominal_production_rate
        )

        def rate_target(p: FloatArray) -> FloatArray:
            out: FloatArray = p[0] * scale
            return out

        fit = _fit_ramp(
            x,
            rate_target,
            ("nominal_production_rate",),
            [g0],
            ([0.0], [top]),
            "production_rate_increment",
            "production_rate_noise",
        )
        return fit, mask
    if path == ENERGY:
        if not grid.has(RATE):
            return f"needs {RATE} as input"
        paths = (ENERGY, RATE, EFFICIENCY) if grid.has(EFFICIENCY) else (ENERGY, RATE)
        mask = grid.window(*paths)
        rate = v[RATE][mask]
        eff = (
            v[EFFICIENCY][mask]
            if grid.has(EFFICIENCY)
            else np.full(rate.shape, params.get("base_efficiency", base.base_efficiency))
        )
        load = rate / np.maximum(eff, _MIN_EFFICIENCY)
        x = v[ENERGY][mask]
        top = max(float(np.max(x)) * 2.0, 1.0)
        design = np.column_stack([np.ones(load.shape), load])
        (idle0, per_module0), *_ = np.linalg.lstsq(design, x, rcond=None)

        def energy_target(p: FloatArray) -> FloatArray:
            out: FloatArray = p[0] + p[1] * load
            return out

        fit = _fit_ramp(
            x,
            energy_target,
            ("idle_power", "energy_per_module"),
            [float(idle0), float(per_module0)],
            ([0.0, 0.0], [top, top]),
            "energy_consumption_increment",
            "energy_noise",
            lead=1,
        )
        return fit, mask
    if path in (EFFICIENCY, DEFECTS):
        if not grid.has(TEMPERATURE):
            return f"needs {TEMPERATURE} as input"
        mask = grid.window(path, TEMPERATURE)
        optimum = params.get("target_temperature", base.target_temperature)
        if path == EFFICIENCY:
            names = ("base_efficiency", "efficiency_temperature_sensitivity")
            sign = -1.0
        else:
            names = ("base_defect_rate", "defect_temperature_sensitivity")
            sign = 1.0
        return _fit_quadratic(v[path][mask], v[TEMPERATURE][mask], optimum, names, sign), mask
    if path in (ENV_TEMPERATURE, HUMIDITY):
        mask = grid.window(path)
        offset, noise = (
            ("ambient_temperature", "environment_temperature_noise")
            if path == ENV_TEMPERATURE
            else ("ambient_humidity", "humidity_noise")
        )
        return (
            _fit_first_order(
                v[path][mask], None, "environment_reversion", offset, noise, base, step
            ),
            mask,
        )
    return "not a modelled path"


def calibrate(
    history: Mapping[str, PathHistory],
    base: SimulationParameters | None = None,
    options: CalibrationOptions | None = None,
    source: str = "history",
) -> Calibration:
    """Fit the process model to ``history`` (see the module doc); an unsaved calibration."""
    options = options or CalibrationOptions()
    if base is None:
        from circman5.manufacturing.digital_twin.simulation.process_models import (
            load_simulation_parameters,
        )

        base = load_simulation_parameters()
    step = options.step_s or base.time_step_s
    grid = _resample(history, options, step)
    fits: list[PathFit] = []
    accepted: dict[str, float] = {}
    shared_from: dict[str, float] = {}  # parameter -> R² of the path it came from
    for path in CALIBRATED_PATHS:
        if path not in grid.values:
            fits.append(PathFit(path, "no data", reason="not in the history"))
            continue
        try:
            outcome = _fit_path(path, grid, base, step, accepted)
        except _TooFew as err:
            fits.append(PathFit(path, "no data", points=err.count, reason=str(err)))
            continue
        except (ValueError, FloatingPointError, np.linalg.LinAlgError) as err:
            fits.append(PathFit(path, "not explained", reason=f"the fit failed: {err}"))
            continue
        if isinstance(outcome, str):
            fits.append(PathFit(path, "no data", reason=outcome))
            continue
        result, mask = outcome
        points = int(mask.sum())
        times = grid.times[mask]
        window = {
            "points": points,
            "start": _iso(float(times[0])) if points else None,
            "end": _iso(float(times[-1])) if points else None,
        }
        if points < options.min_points:
            fits.append(
                PathFit(
                    path,
                    "no data",
                    reason=f"{points} points in the window, {options.min_points} needed",
                    **window,  # type: ignore[arg-type]
                )
            )
            continue
        measured = grid.values[path][mask]
        r2 = _r2(measured, result.simulated)
        rmse = float(np.sqrt(np.mean(result.residual**2)))
        if r2 is None:
            status: FitStatus = "not explained"
            reason = "the path does not move in the window: nothing to identify"
        elif r2 >= options.min_r2:
            status, reason = "accepted", ""
        else:
            status = "not explained"
            reason = f"free-run R² {r2:.3f} below {options.min_r2:g}"
        fit = PathFit(
            path,
            status,
            r2=r2,
            rmse=rmse,
            parameters=result.parameters,
            time_constant_s=result.time_constant_s,
            reason=reason,
            **window,  # type: ignore[arg-type]
        )
        fits.append(fit)
        if status == "accepted":
            assert r2 is not None
            for name, value in result.parameters.items():
                if name not in accepted or r2 > shared_from[name]:
                    accepted[name] = value
                    shared_from[name] = r2
    if accepted:
        accepted["time_step_s"] = step
    times = grid.times
    calibration = Calibration(
        version=0,
        created_at=datetime.datetime.now(datetime.UTC).isoformat(),
        source=source,
        start=_iso(float(times[0])) if times.size else None,
        end=_iso(float(times[-1])) if times.size else None,
        step_s=step,
        min_r2=options.min_r2,
        fits=tuple(fits),
        parameters=_valid(accepted, base),
    )
    logger.info(
        "calibration from %s: %d of %d paths explained",
        source,
        len(calibration.accepted_paths),
        len(fits),
    )
    return calibration


def _valid(parameters: dict[str, float], base: SimulationParameters) -> dict[str, float]:
    """Clip fitted values into the ranges ``SimulationParameters`` accepts."""
    out: dict[str, float] = {}
    for name, value in parameters.items():
        clipped = value
        if name in (
            "temperature_regulation",
            "environment_reversion",
            "base_efficiency",
            "base_defect_rate",
        ):
            clipped = min(max(value, 0.0), 1.0)
        elif name == "ambient_humidity":
            clipped = min(max(value, 0.0), 100.0)
        elif name in ("target_temperature", "ambient_temperature"):
            clipped = min(max(value, -60.0 if name == "ambient_temperature" else -100.0), 500.0)
        else:
            clipped = max(value, 0.0)
        out[name] = float(clipped)
    SimulationParameters.model_validate({**base.model_dump(), **out})
    return out


# -- storage -------------------------------------------------------------------------------------
def calibrations_dir(data_dir: Path | None = None) -> Path:
    """``<data dir>/calibrations`` (not created)."""
    if data_dir is None:
        from circman5 import paths

        data_dir = paths.data_dir(create=False)
    return Path(data_dir) / "calibrations"


def list_calibrations(data_dir: Path | None = None) -> list[int]:
    """The saved calibration versions, ascending."""
    folder = calibrations_dir(data_dir)
    if not folder.is_dir():
        return []
    found = (_FILE.match(p.name) for p in folder.iterdir())
    return sorted(int(m.group(1)) for m in found if m)


def save_calibration(
    calibration: Calibration, data_dir: Path | None = None, activate: bool = True
) -> Calibration:
    """Save ``calibration`` as the next version (and make it the active one); returns it
    numbered."""
    folder = calibrations_dir(data_dir)
    folder.mkdir(parents=True, exist_ok=True)
    version = (list_calibrations(data_dir) or [0])[-1] + 1
    while True:
        numbered = _with_version(calibration, version)
        target = folder / f"calibration-{version:06d}.json"
        try:
            with target.open("x", encoding="utf-8") as out:
                json.dump(numbered.to_dict(), out, indent=2)
                out.write("\n")
        except FileExistsError:  # another writer took this number
            version += 1
            continue
        break
    if activate:
        _write_atomically(folder / _ACTIVE, {"version": version, "file": target.name})
    logger.info("calibration %d saved to %s", version, target)
    return numbered


def activate_calibration(version: int, data_dir: Path | None = None) -> None:
    """Make a saved version the active one."""
    folder = calibrations_dir(data_dir)
    target = folder / f"calibration-{version:06d}.json"
    if not target.is_file():
        raise InvalidInputError(f"no calibration {version} in {folder}")
    _write_atomically(folder / _ACTIVE, {"version": version, "file": target.name})


def _with_version(calibration: Calibration, version: int) -> Calibration:
    from dataclasses import replace

    return replace(calibration, version=version)


def _write_atomically(path: Path, data: Mapping[str, Any]) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def load_calibration(version: int, data_dir: Path | None = None) -> Calibration:
    """A saved version; :class:`ConfigError` (file, key, reason) when it is not usable."""
    path = calibrations_dir(data_dir) / f"calibration-{version:06d}.json"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as err:
        raise ConfigError(str(path), "(file)", "file not found") from err
    except (OSError, ValueError) as err:
        raise ConfigError(str(path), "(syntax)", f"not readable JSON: {err}") from err
    try:
        return Calibration.from_dict(data)
    except (KeyError, TypeError, ValueError) as err:
        raise ConfigError(str(path), "(content)", f"not a circman5 calibration: {err}") from err


def load_active_calibration(data_dir: Path | None = None) -> Calibration | None:
    """The active calibration, or None when none was saved (a broken file raises
    :class:`ConfigError` naming it)."""
    pointer = calibrations_dir(data_dir) / _ACTIVE
    try:
        data = json.loads(pointer.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as err:
        raise ConfigError(str(pointer), "(syntax)", f"not readable JSON: {err}") from err
    version = data.get("version") if isinstance(data, dict) else None
    if isinstance(version, bool) or not isinstance(version, int):
        raise ConfigError(str(pointer), "version", "must be an integer")
    return load_calibration(version, data_dir)


def active_calibration_stamp(data_dir: Path | None = None) -> tuple[int, int] | None:
    """A cheap change marker of the active pointer (inode, mtime), or None without one."""
    try:
        st = (calibrations_dir(data_dir) / _ACTIVE).stat()
    except FileNotFoundError:
        return None
    return st.st_ino, st.st_mtime_ns


# -- report --------------------------------------------------------------------------------------
def _number(value: float | None, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}g}"


def format_report(calibration: Calibration) -> str:
    """The per-path fit table (what ``circman5 calibrate`` prints)."""
    title = (
        f"calibration {calibration.version or '(not saved)'} from {calibration.source}: "
        f"{calibration.start or '-'} .. {calibration.end or '-'} "
        f"(step {calibration.step_s:g} s, accept R² >= {calibration.min_r2:g})"
    )
    header = f"{'path':<38} {'status':<14} {'R²':>7} {'RMSE':>9} {'points':>7}  parameters"
    lines = [title, header, "-" * len(header)]
    for f in calibration.fits:
        params = ", ".join(f"{k}={v:.4g}" for k, v in f.parameters.items())
        if f.time_constant_s is not None:
            params += f" (tau {f.time_constant_s:.3g} s)"
        note = params if f.status != "no data" else f.reason
        if f.status == "not explained" and f.reason:
            note = f"{f.reason}; {params}" if params else f.reason
        lines.append(
            f"{f.path:<38} {f.status:<14} {_number(f.r2):>7} {_number(f.rmse):>9} "
            f"{f.points:>7}  {note}"
        )
    accepted = sorted(calibration.accepted_paths)
    lines.append(
        f"explained by the model: {', '.join(accepted) if accepted else 'none'}; "
        "the others are left to the statistical forecaster"
    )
    return "\n".join(lines)


# -- history from twin states ----------------------------------------------------------------------
def _seconds(stamp: Any) -> float | None:
    if isinstance(stamp, int | float) and not isinstance(stamp, bool):
        return float(stamp)
    if isinstance(stamp, str):
        try:
            moment = datetime.datetime.fromisoformat(stamp)
        except ValueError:
            return None
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=datetime.UTC)
        return moment.timestamp()
    if isinstance(stamp, datetime.datetime):
        return stamp.timestamp()
    return None


def history_from_states(states: Iterable[Mapping[str, Any]]) -> dict[str, PathHistory]:
    """The calibrated and input paths of twin states (each with a ``timestamp``), e.g. the
    StateManager's history; ``production_line.status`` becomes ``production_line.running``."""
    wanted = [p for p in (*CALIBRATED_PATHS, *INPUT_PATHS) if p != "production_line.running"]
    columns: dict[str, tuple[list[float], list[float]]] = {}
    for state in states:
        t = _seconds(state.get("timestamp"))
        if t is None:
            continue
        line = state.get("production_line")
        if isinstance(line, Mapping) and isinstance(line.get("status"), str):
            times, values = columns.setdefault("production_line.running", ([], []))
            times.append(t)
            values.append(1.0 if line["status"] == "running" else 0.0)
        for path in wanted:
            section, _, key = path.partition(".")
            node = state.get(section)
            value = node.get(key) if isinstance(node, Mapping) else None
            if isinstance(value, int | float) and not isinstance(value, bool):
                times, values = columns.setdefault(path, ([], []))
                times.append(t)
                values.append(float(value))
    return {path: PathHistory.of(t, v) for path, (t, v) in columns.items()}
