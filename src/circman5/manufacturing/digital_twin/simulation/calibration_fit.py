"""The fitting behind :func:`~.calibration.calibrate`: resample the history onto one grid, fit
each path's equation of the process model with ``scipy.optimize.least_squares`` (one-step
residuals, bounded parameters) and judge it on a free run (see :mod:`.calibration`).

Why this module is long: one fitting procedure (resampling, one least-squares problem per equation
of the process model, a free-run judgement) whose steps share the grid and the parameter bounds.
"""

from __future__ import annotations

import datetime
import logging
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np

from circman5.adapters.config.simulation_parameters import SimulationParameters
from circman5.errors import InvalidInputError, TooFewPoints
from circman5.manufacturing.digital_twin.simulation.calibration import (
    CALIBRATED_PATHS,
    CYCLE,
    DEFECTS,
    EFFICIENCY,
    ENERGY,
    ENV_TEMPERATURE,
    HUMIDITY,
    RATE,
    TARGET,
    TEMPERATURE,
    BoolArray,
    Calibration,
    CalibrationOptions,
    FitStatus,
    FloatArray,
    PathFit,
    PathHistory,
    iso_time,
)

logger = logging.getLogger(__name__)

__all__ = ["fit_history"]

_MIN_EFFICIENCY = 0.1  # as in the process model's energy equation


@dataclass(frozen=True)
class _Grid:
    """The resampled history: ``values[path]`` on ``times`` (NaN outside a path's samples)."""

    times: FloatArray
    values: dict[str, FloatArray]

    def has(self, *paths: str) -> bool:
        return all(p in self.values for p in paths)

    def window(self, *paths: str) -> BoolArray:
        """Mask of the grid points where all ``paths`` have a value (:class:`TooFewPoints` when
        fewer than three)."""
        mask = np.ones(self.times.shape, dtype=bool)
        for p in paths:
            mask &= np.isfinite(self.values[p])
        count = int(mask.sum())
        if count < 3:
            raise TooFewPoints(count)
        return mask


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


def fit_history(
    history: Mapping[str, PathHistory],
    base: SimulationParameters,
    options: CalibrationOptions,
    source: str,
) -> Calibration:
    """Fit the process model to ``history``; an unsaved calibration (version 0)."""
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
        except TooFewPoints as err:
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
            "start": iso_time(float(times[0])) if points else None,
            "end": iso_time(float(times[-1])) if points else None,
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
        start=iso_time(float(times[0])) if times.size else None,
        end=iso_time(float(times[-1])) if times.size else None,
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
